"""Pitch-class profiles of a dataset's audio, stored next to its mel-spectrograms.

Mirable's networks read a 12-bin HPCP under the mel bands. MTG-Jamendo distributes
mel-spectrograms but no HPCPs, so :func:`write_hpcp` computes them once from the audio with
:class:`moodlib.audio.features.HPCP` (12 kHz, hop 256: frame ``t`` lines up with mel frame
``t``, as the app's frontend stacks them) and writes ``DATA/hpcp/NN/ID.npy``, float32
``(12, frames)``, the layout the trainer reads (``[data] inputs = ["melspecs", "hpcp"]``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from moodlib.audio.decode import DecodeError, decode
from moodlib.audio.features import HPCP
from trainer.data.jamendo import SUBSETS, mel_path, read_split, split_file

SOURCE = "hpcp"


@dataclass
class HpcpReport:
    written: int = 0
    skipped: int = 0
    """Already there."""
    failed: list[str] = field(default_factory=list)
    """One line per track whose audio could not be read: the file and the reason."""


def write_hpcp(
    data_dir: str | Path,
    audio_dir: str | Path,
    *,
    split: int = 0,
    config: dict[str, Any] | None = None,
    progress: bool = True,
) -> HpcpReport:
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
        :class:`~moodlib.audio.features.HPCP` keywords (default: its defaults, aligned with the
        dataset's mel frames).

    Tracks whose file exists are skipped, so an interrupted run continues; a track whose audio
    cannot be decoded is reported and the others go on.
    """
    data_dir, audio_dir = Path(data_dir), Path(audio_dir)
    hpcp = HPCP(**(config or {})).eval()
    report = HpcpReport()
    tracks = [
        track
        for subset in SUBSETS
        for track in read_split(split_file(data_dir / f"split-{split}", subset))
    ]
    for track in _progress(tracks, progress):
        destination = mel_path(data_dir / SOURCE, track.path)
        if destination.exists():
            report.skipped += 1
            continue
        try:
            waveform = decode(audio_dir / track.path, sample_rate=hpcp.sample_rate)
        except DecodeError as error:
            report.failed.append(str(error))
            continue
        with torch.inference_mode():
            profile = hpcp(torch.from_numpy(waveform)[None])[0].numpy()
        destination.parent.mkdir(parents=True, exist_ok=True)
        temporary = destination.with_suffix(".tmp.npy")
        np.save(temporary, profile.astype(np.float32), allow_pickle=False)
        temporary.replace(destination)
        report.written += 1
    return report


def _progress(tracks: list, enabled: bool) -> Iterable:
    return tqdm(tracks, desc="HPCP", disable=not enabled, dynamic_ncols=True)
