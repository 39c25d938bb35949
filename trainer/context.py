"""What every part of a run shares: the options it was started with and the run's context.

:class:`RunOptions` is everything about a run that is not the recipe (where the data and the
run folder are, the device, resume, loader workers); :class:`Context` is what the stages, the
epoch loop and the evaluation share once the run has started: the recipe and options, this
process among the run's processes and its device, the run folder and its log, the split and
its validation tracks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.data.tracks import SegmentDataset
from trainer.inputs import Split
from trainer.processes import Processes, autocast_for
from trainer.recipe import Recipe
from trainer.rundir import RunLog


@dataclass(frozen=True)
class RunOptions:
    """Where and how to run a recipe (everything that is not the recipe)."""

    data_dir: Path
    out_dir: Path
    device: str = "auto"
    resume: bool = False
    workers: int = 0
    """DataLoader worker processes asked for; the run keeps the cores' share
    (:func:`trainer.processes.share_cores`)."""
    show_progress: bool = True
    split: int = 0
    unlabeled_dir: Path | None = None
    """Tracks without labels for the noisy student, in the dataset layout (default: the
    tracks under the data folder that no split file lists)."""
    stop_after: int | None = None
    """End this session after this many epochs, as an interruption would (resume goes on)."""
    audio_dir: Path | None = None
    """Train on audio (``audio_dir / PATH`` of each split line) through the recipe's frontend,
    cached under ``data_dir/audio-cache`` (:mod:`trainer.data.audio_cache`), instead of the
    dataset's mel-spectrograms. ``unlabeled_dir`` is then a folder of audio files too."""


@dataclass
class Context:
    """What every stage of a run shares."""

    recipe: Recipe
    options: RunOptions
    processes: Processes
    device: torch.device
    run_dir: Path
    split: Split
    runlog: RunLog
    train_counts: np.ndarray
    """Training tracks per tag."""
    validation: SegmentDataset = field(init=False)
    """The validation tracks, cut as the exported pack cuts a track."""
    epochs_this_session: int = 0

    def __post_init__(self) -> None:
        self.validation = SegmentDataset(
            self.split.inputs(self.split.subsets["validation"]),
            self.split.targets("validation"),
            segmenting=self.recipe.data.segmenting,
        )

    @property
    def autocast(self) -> Callable[[], Any] | None:
        return autocast_for(self.device)
