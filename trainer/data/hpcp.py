"""Pitch-class profiles of a dataset's audio, stored next to its mel-spectrograms.

Mirable's networks read a 12-bin HPCP under the mel bands. MTG-Jamendo distributes
mel-spectrograms but no HPCPs, so :func:`write_hpcp` computes them once from the audio with
:class:`moodlib.audio.hpcp.HPCP` (12 kHz, hop 256: frame ``t`` lines up with mel frame
``t``, as the app's frontend stacks them) and writes ``DATA/hpcp/NN/ID.npy``, float32
``(12, frames)``, the layout the trainer reads (``[data] inputs = ["melspecs", "hpcp"]``).
It is :func:`trainer.data.audio_cache.cache_inputs` with the folder named ``hpcp``; a run with
``--audio`` computes the same into its cache by itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moodlib.audio.hpcp import HPCP
from trainer.data.audio_cache import CacheReport, cache_inputs
from trainer.data.jamendo import SUBSETS, read_split, split_file

SOURCE = "hpcp"


def write_hpcp(
    data_dir: str | Path,
    audio_dir: str | Path,
    *,
    split: int = 0,
    config: dict[str, Any] | None = None,
    show_progress: bool = True,
    workers: int = 2,
) -> CacheReport:
    """Compute the HPCP of every track of ``split`` from ``audio_dir`` into ``data_dir/hpcp``.

    Parameters
    ----------
    data_dir
        The dataset folder (``split-N`` inside).
    audio_dir
        Root of the audio files; a track's audio is ``audio_dir / PATH`` of its split line.
    split
        Which ``split-N`` lists the tracks.
    config
        :class:`~moodlib.audio.hpcp.HPCP` keywords (default: its defaults, aligned with the
        dataset's mel frames).
    workers
        Decoding threads.

    Tracks whose file is newer than their audio are skipped, so an interrupted run continues;
    a track whose audio cannot be decoded is reported and the others go on.
    """
    data_dir = Path(data_dir)
    paths = sorted(
        {
            track.path
            for subset in SUBSETS
            for track in read_split(split_file(data_dir / f"split-{split}", subset))
        }
    )
    modules = {SOURCE: HPCP(**(config or {})).eval()}
    _, report = cache_inputs(
        data_dir, audio_dir, paths, modules, workers=workers, show_progress=show_progress,
        folders={SOURCE: SOURCE},
    )  # fmt: skip
    return report
