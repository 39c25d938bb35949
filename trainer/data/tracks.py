"""What the training loop reads: training crops of tracks and evaluation segments of tracks.

A track is one or more frame-aligned ``.npy`` arrays ``(rows, frames)`` (its sources: the
mel-spectrogram, and for Mirable's networks its pitch-class profile), stacked row-wise into the
network's input, with a target row. Training items are one crop per track and epoch, placed by
:func:`trainer.data.augment.crop_start`, with a mask row saying which targets are known (all of
them for annotated tracks; the confident ones for pseudo-labelled tracks). Evaluation items are
every segment of a track, cut exactly as the app's ``Tagger`` cuts them for the exported pack
(``Segmenting.starts``), so validation scores are the pack's scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from moodlib.packs import Segmenting
from trainer.data.augment import crop, crop_start
from trainer.data.jamendo import DatasetError

Sources = Sequence[Path]
"""The files of one track, one per source, stacked in this order."""


class CropDataset(Dataset):
    """One crop per track: ``(input (rows, crop_frames), targets (tags,), mask (tags,))``."""

    def __init__(
        self,
        tracks: Sequence[Sources],
        targets: np.ndarray,
        *,
        crop_frames: int,
        crop_mode: str = "random",
        masks: np.ndarray | None = None,
    ) -> None:
        if len(tracks) != len(targets):
            raise ValueError(f"{len(tracks)} tracks but {len(targets)} target rows")
        self.tracks = [tuple(sources) for sources in tracks]
        self.targets = np.asarray(targets, dtype=np.float32)
        self.masks = (
            np.ones_like(self.targets) if masks is None else np.asarray(masks, dtype=np.float32)
        )
        self.crop_frames = crop_frames
        self.crop_mode = crop_mode

    def __len__(self) -> int:
        return len(self.tracks)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        arrays = [load_rows(path) for path in self.tracks[index]]
        start = crop_start(arrays[0].shape[1], self.crop_frames, mode=self.crop_mode)
        piece = np.concatenate([crop(array, start, self.crop_frames) for array in arrays])
        return (
            torch.from_numpy(piece),
            torch.from_numpy(self.targets[index]),
            torch.from_numpy(self.masks[index]),
        )


class SegmentDataset(Dataset):
    """All segments of a track: ``(segments (n, rows, frames), targets (tags,))``."""

    def __init__(
        self,
        tracks: Sequence[Sources],
        targets: np.ndarray,
        *,
        segmenting: Segmenting,
    ) -> None:
        if len(tracks) != len(targets):
            raise ValueError(f"{len(tracks)} tracks but {len(targets)} target rows")
        self.tracks = [tuple(sources) for sources in tracks]
        self.targets = np.asarray(targets, dtype=np.float32)
        self.segmenting = segmenting

    def __len__(self) -> int:
        return len(self.tracks)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        arrays = [load_rows(path) for path in self.tracks[index]]
        frames = self.segmenting.frames
        starts = self.segmenting.starts(arrays[0].shape[1])
        segments = np.stack(
            [np.concatenate([crop(array, s, frames) for array in arrays]) for s in starts]
        )
        return torch.from_numpy(segments), torch.from_numpy(self.targets[index])


def load_rows(path: str | Path) -> np.ndarray:
    """A source array ``(rows, frames)``, memory-mapped; :class:`DatasetError` if unusable."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path}: cannot read the array ({error})") from error
    if array.ndim != 2 or array.shape[1] == 0:
        raise DatasetError(f"{path}: expected rows x frames, found shape {array.shape}")
    return array


def collate_segments(
    items: Sequence[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, list[int], torch.Tensor]:
    """Stack the segments of several tracks: ``(segments, segments per track, targets)``."""
    segments = torch.cat([item[0] for item in items])
    counts = [len(item[0]) for item in items]
    targets = torch.stack([item[1] for item in items])
    return segments, counts, targets
