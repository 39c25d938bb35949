"""This process among a run's processes: its rank, its device and its share of the cores.

Under ``torchrun`` every process trains on its share of the batches (``DistributedSampler``,
``DistributedDataParallel``; gloo on the CPU, NCCL on CUDA), and only rank 0 writes logs,
checkpoints and results. :class:`Processes` is one process's place among them, with the
collective operations a run needs (barrier, broadcast, gather), which do nothing for a process
alone.

Cores. A DataLoader worker is a process of its own (torch gives it one intra-op thread), and
the training process runs its own intra-op threads beside the workers. When the two together
ask for more cores than the process has, they take turns on the cores, and on a shared machine
that cost a lot: two intra-op threads ran 3.5 to 13 times slower than one on the same recipe
while loader workers and other processes shared two cores. So :func:`share_cores` fits both
into the process's share of the cores it may run on (``os.sched_getaffinity``), divided
between the ``torchrun`` processes of the machine; the run applies it before anything else.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as torch_dist

from moodlib.inference import resolve_device


@dataclass(frozen=True)
class Processes:
    """This process's place among the ``torchrun`` processes (rank 0 of 1 when alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    """The processes on this machine, which share its cores."""

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            torch_dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value``, on every process."""
        if not self.distributed:
            return value
        holder = [value]
        torch_dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value``, in rank order."""
        if not self.distributed:
            return [value]
        values: list[Any] = [None] * self.world_size
        torch_dist.all_gather_object(values, value)
        return values


def start_processes(device: str) -> tuple[Processes, torch.device]:
    """Join the ``torchrun`` process group if launched by it; pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Processes(), resolve_device(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    wanted = resolve_device(device)
    if wanted.type == "cuda":
        torch.cuda.set_device(local_rank)
        wanted = torch.device("cuda", local_rank)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if wanted.type == "cuda" else "gloo")
    processes = Processes(torch_dist.get_rank(), world_size, local_rank, local_world_size)
    return processes, wanted


def stop_processes(processes: Processes) -> None:
    """Leave the ``torchrun`` process group (nothing for a process alone)."""
    if processes.distributed and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def autocast_for(device: torch.device) -> Callable[[], Any] | None:
    """bf16 autocast on CUDA; nothing elsewhere."""
    if device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return None


# -- cores ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoreShare:
    """What one training process runs on its cores."""

    workers: int
    """DataLoader worker processes."""
    threads: int
    """torch intra-op threads of the training process."""


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity; the CPU count where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def share_cores(*, cores: int, processes: int, workers: int, threads: int) -> CoreShare:
    """The loader workers and intra-op threads of one of ``processes`` processes on ``cores``
    cores: at most the ``workers`` and ``threads`` asked for, and together at most its share.

    The share is ``max(1, cores // processes)``. The workers leave a core to the training
    process (``min(workers, share - 1)``); the threads take the cores the workers leave
    (``min(threads, share - workers)``, at least one).

    Examples
    --------
    >>> share_cores(cores=2, processes=1, workers=4, threads=2)
    CoreShare(workers=1, threads=1)
    >>> share_cores(cores=16, processes=1, workers=4, threads=16)
    CoreShare(workers=4, threads=12)
    """
    if cores < 1 or processes < 1 or workers < 0 or threads < 1:
        raise ValueError(
            f"cannot share {cores} cores between {processes} processes "
            f"({workers} workers, {threads} threads asked)"
        )
    share = max(1, cores // processes)
    kept_workers = min(workers, share - 1)
    return CoreShare(workers=kept_workers, threads=max(1, min(threads, share - kept_workers)))
