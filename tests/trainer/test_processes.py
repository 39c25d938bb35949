"""How a training process shares its cores between loader workers and intra-op threads."""

import itertools
import os

import pytest

from trainer.processes import CoreShare, available_cores, share_cores


def test_on_two_cores_one_loader_worker_and_one_thread_share_them():
    # The default --workers (up to 4) and torch's default threads (one per core).
    assert share_cores(cores=2, processes=1, workers=4, threads=2) == CoreShare(1, 1)


def test_a_large_machine_keeps_the_workers_and_gives_the_rest_to_threads():
    assert share_cores(cores=16, processes=1, workers=4, threads=16) == CoreShare(4, 12)


def test_torchrun_processes_on_one_machine_split_its_cores():
    assert share_cores(cores=16, processes=4, workers=4, threads=16) == CoreShare(3, 1)
    assert share_cores(cores=2, processes=2, workers=4, threads=2) == CoreShare(0, 1)


def test_what_is_asked_below_the_share_is_kept():
    # The tests' runs: no worker, one thread, whatever the machine.
    assert share_cores(cores=64, processes=1, workers=0, threads=1) == CoreShare(0, 1)


def test_workers_and_threads_never_exceed_the_share_or_what_was_asked():
    for cores, processes, workers, threads in itertools.product(
        range(1, 18), range(1, 5), range(0, 9), range(1, 18)
    ):
        share = share_cores(cores=cores, processes=processes, workers=workers, threads=threads)

        assert share.workers + share.threads <= max(1, cores // processes)
        assert 0 <= share.workers <= workers and 1 <= share.threads <= threads


def test_nonsense_is_refused():
    with pytest.raises(ValueError, match="cannot share 0 cores"):
        share_cores(cores=0, processes=1, workers=0, threads=1)


def test_the_available_cores_are_this_process_affinity():
    assert available_cores() == len(os.sched_getaffinity(0))
