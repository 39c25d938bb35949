"""What a run reads: the split's tracks, the files of their input sources, the training loader.

A dataset in the official layout has the split files (``DATA/split-N/autotagging_moodtheme-
{train,validation,test}.tsv``) and one folder per input source with the split's paths
(``DATA/melspecs/NN/ID.npy``, ``DATA/hpcp/NN/ID.npy``); a recipe reads the sources of its
``[data] inputs``, stacked row-wise. :func:`read_data` finds them; :func:`inputs_from_audio`
computes them from audio files instead, into the audio cache (:mod:`trainer.data.audio_cache`).
:func:`unlabeled_tracks` finds the noisy student's tracks without labels, :func:`train_loader`
draws a stage's training batches.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler

from trainer import TrainerError
from trainer.data import audio_cache
from trainer.data.augment import ClassAwareSampler
from trainer.data.jamendo import SUBSETS, Track, mel_path, read_split, split_file, tag_matrix
from trainer.data.tracks import CropDataset
from trainer.processes import Processes
from trainer.recipe import DataSpec, Recipe

log = logging.getLogger("trainer")


@dataclass(frozen=True)
class Split:
    """The tracks of the three subsets and where their input sources are."""

    root: Path
    subsets: dict[str, list[Track]]
    sources: tuple[str, ...]

    def inputs(self, tracks: Sequence[Track], root: Path | None = None) -> list[tuple[Path, ...]]:
        """Each track's source files, in the order of :attr:`sources`."""
        base = self.root if root is None else root
        return [tuple(mel_path(base / source, t.path) for source in self.sources) for t in tracks]

    def targets(self, subset: str) -> np.ndarray:
        return tag_matrix(self.subsets[subset])

    def leading_rows(self) -> int | None:
        """The rows of the first source when other sources follow it (SpecAugment masks only
        the mel bands, not the HPCP rows after them); None for a single source."""
        if len(self.sources) == 1:
            return None
        first = self.inputs(self.subsets["validation"][:1])[0][0]
        return int(np.load(first, mmap_mode="r").shape[0])


def read_data(data_dir: Path, *, split: int, sources: Sequence[str]) -> Split:
    """The split files of ``data_dir/split-N`` and the source folders the recipe reads."""
    split_dir = data_dir / f"split-{split}"
    subsets = {subset: read_split(split_file(split_dir, subset)) for subset in SUBSETS}
    for source in sources:
        if not (data_dir / source).is_dir():
            hint = " (moodlib-train hpcp computes it from the audio)" if source == "hpcp" else ""
            raise TrainerError(f"{data_dir / source}: the recipe reads this folder{hint}")
    return Split(root=data_dir, subsets=subsets, sources=tuple(sources))


def inputs_from_audio(
    recipe: Recipe,
    *,
    data_dir: Path,
    split: int,
    audio_dir: Path,
    unlabeled_dir: Path | None,
    workers: int,
    show_progress: bool,
    processes: Processes,
    device: torch.device,
) -> tuple[Split, Path | None]:
    """The split with the recipe's inputs computed from the audio files under ``audio_dir``
    (rank 0 fills the cache, every process then reads it), and where the unlabeled audio's
    inputs were cached (None without ``unlabeled_dir``).

    A track whose audio cannot be decoded is logged and left out of its subset.
    """
    split_dir = Path(data_dir) / f"split-{split}"
    subsets = {subset: read_split(split_file(split_dir, subset)) for subset in SUBSETS}
    try:
        modules = audio_cache.source_modules(recipe.frontend, recipe.data.inputs)
    except audio_cache.AudioCacheError as error:
        raise TrainerError(str(error)) from error
    cache_root = Path(data_dir) / audio_cache.CACHE_DIR
    listed = sorted({track.path for tracks in subsets.values() for track in tracks})
    jobs = [(cache_root, Path(audio_dir), listed)]
    unlabeled_root = None
    if unlabeled_dir is not None:
        unlabeled_root = cache_root / "unlabeled"
        jobs.append((unlabeled_root, Path(unlabeled_dir), audio_cache.audio_files(unlabeled_dir)))
    if processes.main:
        for root, audio_root, paths in jobs:
            log.info("%d audio files of %s to %s", len(paths), audio_root, ", ".join(modules))
            _, report = audio_cache.cache_inputs(
                root, audio_root, paths, modules, device=device,
                workers=max(1, workers), show_progress=show_progress,
            )  # fmt: skip
            log.info("%d computed, %d cached before, %d failed", report.computed,
                     report.reused, len(report.failed))  # fmt: skip
            for line in report.failed:
                log.warning("left out: %s", line)
    processes.barrier()
    sources = tuple(audio_cache.cache_folder(s, m) for s, m in modules.items())

    def cached(path: str) -> bool:
        return all(mel_path(cache_root / source, path).is_file() for source in sources)

    kept = {subset: [t for t in tracks if cached(t.path)] for subset, tracks in subsets.items()}
    empty = [subset for subset, tracks in kept.items() if not tracks]
    if empty:
        raise TrainerError(f"no track of {', '.join(empty)} could be read from {audio_dir}")
    return Split(root=cache_root, subsets=kept, sources=sources), unlabeled_root


def unlabeled_tracks(
    split: Split, unlabeled_dir: Path | None
) -> tuple[list[tuple[Path, ...]], str]:
    """Input files of the tracks the noisy student's teacher labels, and where they come from.

    ``unlabeled_dir`` when given (every file of its first source folder, ``melspecs``);
    otherwise the tracks of the data folder that no split lists; failing those, the training
    tracks themselves.
    """
    root = split.root if unlabeled_dir is None else unlabeled_dir
    first = root / split.sources[0]
    listed = set()
    if unlabeled_dir is None:
        listed = {mel_path(first, t.path) for tracks in split.subsets.values() for t in tracks}
    found = sorted(p for p in first.rglob("*.npy") if p not in listed)
    if found:
        relative = [p.relative_to(first) for p in found]
        return [tuple(root / s / r for s in split.sources) for r in relative], str(root)
    return split.inputs(split.subsets["train"]), "the training tracks (no other tracks found)"


def train_loader(
    dataset: CropDataset,
    data: DataSpec,
    *,
    seed: int,
    processes: Processes,
    workers: int,
    device: torch.device,
) -> tuple[DataLoader, Sampler]:
    """Batches of ``dataset`` for one stage, and their sampler (``set_epoch`` each epoch).

    The recipe's sampler (``shuffle``, or ``class_aware``: a tag uniformly, then a track of it);
    under ``torchrun`` each process draws its share.
    """
    sampler: Sampler
    if data.sampler == "class_aware":
        sampler = ClassAwareSampler(
            dataset.targets * dataset.masks,
            seed=seed,
            rank=processes.rank,
            world_size=processes.world_size,
        )
    elif processes.distributed:
        sampler = DistributedSampler(
            dataset,
            num_replicas=processes.world_size,
            rank=processes.rank,
            shuffle=True,
            seed=seed,
        )
    else:
        sampler = RandomSampler(dataset)
    loader = DataLoader(
        dataset,
        batch_size=data.batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        # A last batch of one example breaks batch norm in training mode.
        drop_last=len(sampler) > data.batch_size,
    )
    return loader, sampler
