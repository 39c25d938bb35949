"""The training loop: a recipe and a dataset folder in, a run folder out.

:func:`run` trains what a :class:`~trainer.recipe.Recipe` describes on a dataset in the official
layout (``DATA/split-N/autotagging_moodtheme-*.tsv`` and one folder per input source,
``DATA/melspecs/NN/ID.npy``, ``DATA/hpcp/NN/ID.npy``), then scores the trained networks on the
validation and test sets and writes everything the export needs. The run folder::

    RUN/recipe.json            the merged recipe (a resumed run must match it)
    RUN/log.csv                one row per network and epoch: lr, loss, validation metrics
    RUN/tensorboard/           the same scalars, when tensorboard is installed
    RUN/STAGE/checkpoint.pt    the resume point of a stage, written after every epoch
    RUN/members/NAME.safetensors, RUN/predictions/{validation,test}/NAME.npy
    RUN/result.json            ensemble members and weights, thresholds, metrics

Each epoch: every network of the stage enters its optimiser phase (a new optimiser at a phase
boundary, from the best weights so far when the phase says so) and gets its learning rate; one
pass over random training crops, augmented as the recipe says, updates them through the
strategy's step; each network is scored on the validation tracks (all segments of a track,
cut as the exported pack cuts them, probabilities averaged); the best weights by the recipe's
selection metric are kept; SWA adds weights and takes snapshots when due; the epoch is logged
and checkpointed (networks, optimisers, schedules, best weights, averages, RNG states), so
``resume`` continues exactly where an interrupted run stopped. Training ends after the recipe's
epochs or when no network improved for ``patience`` epochs.

Stages: a standard or co-teaching recipe has one (``train``); the noisy student has two
(``teacher`` and ``student``) with the teacher's pseudo-labels in between.

Devices and processes: on CUDA, the networks run in channels-last layout under bf16 autocast
(no-ops on the CPU). Under ``torchrun`` every process trains on its share of the batches
(``DistributedSampler``, ``DistributedDataParallel``; gloo on CPU, NCCL on CUDA), validation is
split between the processes and gathered, and only rank 0 writes logs, checkpoints and results.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import json
import logging
import math
import os
import random
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist
from safetensors.torch import save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler, Subset
from tqdm import tqdm

import moodlib
from moodlib.audio.features import build_frontend
from moodlib.inference import resolve_device
from moodlib.models import build_model
from trainer import TrainerError
from trainer.data import audio_cache
from trainer.data.augment import Augmentation, ClassAwareSampler, SpecAugment, single_label
from trainer.data.jamendo import SUBSETS, Track, mel_path, read_split, split_file, tag_matrix
from trainer.data.tracks import CropDataset, SegmentDataset, collate_segments
from trainer.ensemble import combine, fit_weights, thresholds_and_metrics
from trainer.losses import (
    BinaryCrossEntropy,
    ClassBalancedFocalLoss,
    DistributionBalancedLoss,
    FocalLoss,
)
from trainer.metrics import evaluate, head_middle_tail_pr_auc
from trainer.recipe import (
    AugmentSpec,
    NetworkSpec,
    PhaseSpec,
    Recipe,
    ScheduleSpec,
    merge,
    network_spec,
)
from trainer.strategies.averaging import StateDict, WeightAveraging
from trainer.strategies.coteaching import coteaching_step, forget_rate
from trainer.strategies.noisy_student import pseudo_labels, student_spec
from trainer.strategies.standard import Network, TrainingLoss, standard_step

log = logging.getLogger("trainer")

CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"
RECIPE_FILE = "recipe.json"
LOG_METRICS = ("ROC-AUC-macro", "PR-AUC-macro", "ROC-AUC-micro", "PR-AUC-micro")


class RunError(TrainerError):
    """A run that cannot start or go on (a run folder in the way, a changed recipe)."""


@dataclass(frozen=True)
class RunOptions:
    """Where and how to run a recipe (everything that is not the recipe)."""

    data_dir: Path
    out_dir: Path
    device: str = "auto"
    resume: bool = False
    workers: int = 0
    progress: bool = True
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


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    finished: bool
    result: dict[str, Any] | None = None


# -- processes and devices ---------------------------------------------------------------------


@dataclass(frozen=True)
class Processes:
    """This process's place among the ``torchrun`` processes (rank 0 of 1 when alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

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
    wanted = resolve_device(device)
    if wanted.type == "cuda":
        torch.cuda.set_device(local_rank)
        wanted = torch.device("cuda", local_rank)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if wanted.type == "cuda" else "gloo")
    return Processes(torch_dist.get_rank(), world_size, local_rank), wanted


def autocast_for(device: torch.device) -> Callable[[], Any] | None:
    """bf16 autocast on CUDA; nothing elsewhere."""
    if device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return None


# -- data ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """The tracks of the three subsets and where their input sources are."""

    root: Path
    subsets: dict[str, list[Track]]
    sources: tuple[str, ...]

    def inputs(self, tracks: Sequence[Track], root: Path | None = None) -> list[tuple[Path, ...]]:
        base = self.root if root is None else root
        return [tuple(mel_path(base / source, t.path) for source in self.sources) for t in tracks]

    def targets(self, subset: str) -> np.ndarray:
        return tag_matrix(self.subsets[subset])


def read_data(data_dir: Path, *, split: int, sources: Sequence[str]) -> Split:
    """The split files of ``data_dir/split-N`` and the source folders the recipe reads."""
    split_dir = data_dir / f"split-{split}"
    subsets = {subset: read_split(split_file(split_dir, subset)) for subset in SUBSETS}
    for source in sources:
        if not (data_dir / source).is_dir():
            hint = " (moodlib-train hpcp computes it from the audio)" if source == "hpcp" else ""
            raise TrainerError(f"{data_dir / source}: the recipe reads this folder{hint}")
    return Split(root=data_dir, subsets=subsets, sources=tuple(sources))


def _inputs_from_audio(
    recipe: Recipe, options: RunOptions, processes: Processes, device: torch.device
) -> tuple[Split, RunOptions]:
    """The split with the recipe's inputs computed from ``options.audio_dir`` (rank 0 fills the
    cache, every process then reads it), and the options with the unlabeled audio's cache."""
    data_dir = Path(options.data_dir)
    split_dir = data_dir / f"split-{options.split}"
    subsets = {subset: read_split(split_file(split_dir, subset)) for subset in SUBSETS}
    try:
        modules = audio_cache.source_modules(recipe.frontend, recipe.data.inputs)
    except audio_cache.AudioCacheError as error:
        raise TrainerError(str(error)) from error
    cache_root = data_dir / audio_cache.CACHE_DIR
    listed = sorted({track.path for tracks in subsets.values() for track in tracks})
    jobs = [(cache_root, Path(options.audio_dir), listed)]
    unlabeled_root = None
    if options.unlabeled_dir is not None:
        unlabeled_root = cache_root / "unlabeled"
        files = audio_cache.audio_files(options.unlabeled_dir)
        jobs.append((unlabeled_root, Path(options.unlabeled_dir), files))
    if processes.main:
        for root, audio_root, paths in jobs:
            log.info("%d audio files of %s to %s", len(paths), audio_root, ", ".join(modules))
            _, report = audio_cache.cache_inputs(
                root, audio_root, paths, modules, device=device,
                workers=max(1, options.workers), progress=options.progress,
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
        raise TrainerError(f"no track of {', '.join(empty)} could be read from {options.audio_dir}")
    split = Split(root=cache_root, subsets=kept, sources=sources)
    return split, dataclasses.replace(options, unlabeled_dir=unlabeled_root)


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


# -- networks, losses, optimisers and schedules ------------------------------------------------


def build_network(spec: NetworkSpec, device: torch.device, processes: Processes) -> Network:
    """Build ``spec`` on ``device`` (channels-last on CUDA), wrapped for DDP when distributed."""
    module = build_model(spec.architecture, **spec.config)
    if spec.output_bias_prior is not None:
        init_output_bias(module, spec.output_bias_prior)
    module = module.to(device)
    if device.type == "cuda":
        module = module.to(memory_format=torch.channels_last)
    trainable: nn.Module = module
    if processes.distributed:
        trainable = DistributedDataParallel(
            module,
            device_ids=[device.index] if device.type == "cuda" else None,
        )
    return Network(spec.name, module, trainable)


def init_output_bias(module: nn.Module, prior: float, num_classes: int = 56) -> None:
    """Set the output layer's biases to ``-log((1 - prior) / prior)`` (Lin et al. 2017).

    The output layer is the last ``nn.Linear`` with ``num_classes`` outputs; USC SAIL start
    their focal-loss networks this way (prior 0.01) so that the many easy negatives do not
    swamp the first updates.
    """
    layers = [m for m in module.modules() if isinstance(m, nn.Linear)]
    layers = [m for m in layers if m.out_features == num_classes and m.bias is not None]
    if not layers:
        raise TrainerError(f"{type(module).__name__}: no output layer with biases to initialise")
    with torch.no_grad():
        layers[-1].bias.fill_(-math.log((1 - prior) / prior))


def build_loss(spec: dict[str, Any], targets: np.ndarray) -> TrainingLoss:
    """The recipe's loss; the class-balanced ones count tags over ``targets``."""
    params = {k: v for k, v in spec.items() if k != "name"}
    name = spec["name"]
    counts = np.maximum(targets.sum(axis=0), 1)
    if name == "bce":
        loss: nn.Module = BinaryCrossEntropy(**params)
    elif name == "focal":
        loss = FocalLoss(**params)
    elif name == "cb_focal":
        loss = ClassBalancedFocalLoss(counts, **params)
    else:
        counts = np.minimum(counts, len(targets) - 1)
        loss = DistributionBalancedLoss(counts, len(targets), **params)
    return TrainingLoss(loss)


def build_augmentation(spec: AugmentSpec, *, spec_rows: int | None) -> Augmentation:
    specaugment = None
    if spec.specaugment is not None:
        specaugment = SpecAugment(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in spec.specaugment.items()}
        )
    return Augmentation(
        specaugment=specaugment,
        mixup=spec.mixup,
        noise_weight=spec.gaussian_noise,
        spec_rows=spec_rows,
    )


def make_optimizer(phase: PhaseSpec, parameters: Iterator[nn.Parameter]) -> torch.optim.Optimizer:
    if phase.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=phase.lr, weight_decay=phase.weight_decay)
    return torch.optim.SGD(
        parameters,
        lr=phase.lr,
        momentum=phase.momentum,
        nesterov=phase.nesterov,
        weight_decay=phase.weight_decay,
    )


class LearningRate:
    """Optimiser phases and the learning-rate shape of a recipe, per epoch.

    Shapes (``[schedule] name``), with ``t`` the epoch inside the phase and ``lr`` the phase's:

    - ``constant``: ``lr``.
    - ``warmup_linear`` (CP-JKU): linear warm-up over ``warmup_epochs`` (``lr * (t + 1) /
      warmup_epochs``), ``lr`` for ``hold_epochs``, a linear fall to ``final_lr`` over
      ``decay_epochs``, then ``final_lr``.
    - ``plateau`` (SELAB-HCMUS): ``lr`` times ``factor`` to the power of the number of times the
      selection metric went ``patience`` epochs without improving (Keras' and torch's
      ``ReduceLROnPlateau``, counting "after N epochs without improvement" as the papers say).
    """

    def __init__(self, phases: Sequence[PhaseSpec], schedule: ScheduleSpec) -> None:
        self.phases = tuple(phases)
        self.schedule = schedule
        self.scale = 1.0
        self.best = -math.inf
        self.bad_epochs = 0

    def phase_index(self, epoch: int) -> int:
        end = 0
        for index, phase in enumerate(self.phases):
            if phase.epochs is None:
                return index
            end += phase.epochs
            if epoch < end:
                return index
        return len(self.phases) - 1

    def phase_start(self, index: int) -> int:
        return sum(phase.epochs or 0 for phase in self.phases[:index])

    def lr(self, epoch: int) -> float:
        index = self.phase_index(epoch)
        phase = self.phases[index]
        t = epoch - self.phase_start(index)
        params = self.schedule.params
        if self.schedule.name == "warmup_linear":
            warmup = int(params.get("warmup_epochs", 0))
            hold = int(params.get("hold_epochs", 0))
            decay = int(params.get("decay_epochs", 0))
            final = float(params["final_lr"])
            if t < warmup:
                return phase.lr * (t + 1) / warmup
            if t < warmup + hold:
                return phase.lr
            if t < warmup + hold + decay:
                done = (t - warmup - hold + 1) / decay
                return final * done + phase.lr * (1 - done)
            return final
        if self.schedule.name == "plateau":
            return max(phase.lr * self.scale, float(params.get("min_lr", 0.0)))
        return phase.lr

    def observe(self, score: float) -> None:
        """Feed the epoch's validation score (the plateau shape counts on it)."""
        if score > self.best:
            self.best, self.bad_epochs = score, 0
            return
        self.bad_epochs += 1
        if self.schedule.name == "plateau" and self.bad_epochs >= int(
            self.schedule.params.get("patience", 5)
        ):
            self.scale *= float(self.schedule.params.get("factor", 0.1))
            self.bad_epochs = 0

    def state_dict(self) -> dict[str, float]:
        return {"scale": self.scale, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.scale = float(state["scale"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])


@dataclass
class Trainee:
    """A network of a stage and everything the loop keeps about it."""

    spec: NetworkSpec
    network: Network
    schedule: LearningRate
    phase: int = -1
    best_score: float = -math.inf
    best_epoch: int = -1
    best_state: StateDict | None = None
    averaging: WeightAveraging | None = None

    def enter_epoch(self, epoch: int) -> float:
        """Switch optimiser at a phase boundary, set and return this epoch's learning rate."""
        index = self.schedule.phase_index(epoch)
        if index != self.phase:
            phase = self.schedule.phases[index]
            if phase.reload_best and self.best_state is not None:
                self.network.module.load_state_dict(self.best_state)
            self.network.optimizer = make_optimizer(phase, self.network.module.parameters())
            self.phase = index
        lr = self.schedule.lr(epoch)
        for group in self.network.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def state_dict(self) -> dict[str, Any]:
        return {
            "module": self.network.module.state_dict(),
            "optimizer": self.network.optimizer.state_dict(),
            "phase": self.phase,
            "schedule": self.schedule.state_dict(),
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "averaging": self.averaging.state_dict() if self.averaging else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.module.load_state_dict(state["module"])
        self.phase = int(state["phase"])
        self.network.optimizer = make_optimizer(
            self.schedule.phases[self.phase], self.network.module.parameters()
        )
        self.network.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.best_score = float(state["best_score"])
        self.best_epoch = int(state["best_epoch"])
        self.best_state = state["best_state"]
        if self.averaging is not None and state["averaging"] is not None:
            self.averaging.load_state_dict(state["averaging"])


# -- logging -------------------------------------------------------------------------------------


class RunLog:
    """The run's CSV log and, when tensorboard is installed, its TensorBoard scalars (rank 0)."""

    FIELDS = ("stage", "epoch", "network", "phase", "lr", "train_loss", *LOG_METRICS, "best")

    def __init__(self, run_dir: Path, *, enabled: bool) -> None:
        self.enabled = enabled
        self.path = run_dir / "log.csv"
        self.writer = None
        if not enabled:
            return
        if not self.path.exists():
            with self.path.open("w", newline="", encoding="utf-8") as handle:
                csv.writer(handle).writerow(self.FIELDS)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.info("tensorboard is not installed: logging to %s only", self.path)
        else:
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def row(self, **values: Any) -> None:
        if not self.enabled:
            return
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerow([_cell(values.get(name)) for name in self.FIELDS])
        if self.writer is not None:
            tag = f"{values['stage']}/{values['network']}"
            for name in ("lr", "train_loss", *LOG_METRICS):
                if values.get(name) is not None:
                    self.writer.add_scalar(f"{tag}/{name}", values[name], values["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _cell(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else ("" if value is None else value)


# -- the run -------------------------------------------------------------------------------------


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
    validation: SegmentDataset = field(init=False)
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


def run(recipe: Recipe, options: RunOptions) -> RunResult:
    """Train ``recipe`` as ``options`` say; return where the run is and whether it finished."""
    processes, device = start_processes(options.device)
    run_dir = Path(options.out_dir)
    try:
        _prepare_run_dir(recipe, run_dir, options.resume, processes)
        if options.audio_dir is None:
            split = read_data(
                Path(options.data_dir), split=options.split, sources=recipe.data.inputs
            )
        else:
            split, options = _inputs_from_audio(recipe, options, processes, device)
        seed_everything(recipe.train.seed + processes.rank)
        runlog = RunLog(run_dir, enabled=processes.main)
        context = Context(
            recipe=recipe,
            options=options,
            processes=processes,
            device=device,
            run_dir=run_dir,
            split=split,
            runlog=runlog,
            train_counts=split.targets("train").sum(axis=0),
        )
        if processes.main:
            log.info(
                "%s: %s on %s (%d process%s), run folder %s",
                recipe.name,
                recipe.paper.row,
                device,
                processes.world_size,
                "" if processes.world_size == 1 else "es",
                run_dir,
            )
        try:
            if recipe.strategy.name == "noisy_student":
                members = _noisy_student(context)
            else:
                members = _single_stage(context)
            if members is None:
                return RunResult(run_dir, finished=False)
            result = finalize(context, members)
        finally:
            runlog.close()
        return RunResult(run_dir, finished=True, result=result)
    finally:
        if processes.distributed and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def _prepare_run_dir(recipe: Recipe, run_dir: Path, resume: bool, processes: Processes) -> None:
    """Rank 0 checks the folder (and writes the recipe into a new one); every process gets
    its verdict, so that all of them stop on a refusal."""
    problem = None
    if processes.main:
        try:
            _claim_run_dir(recipe, run_dir, resume)
        except RunError as error:
            problem = str(error)
    problem = processes.broadcast(problem)
    if problem is not None:
        raise RunError(problem)


def _claim_run_dir(recipe: Recipe, run_dir: Path, resume: bool) -> None:
    stored = run_dir / RECIPE_FILE
    described = {"name": recipe.name, "source": recipe.source, "recipe": _jsonable(recipe.raw)}
    if stored.exists():
        if not resume:
            raise RunError(f"{run_dir}: a run is already there; resume it or choose another folder")
        previous = json.loads(stored.read_text(encoding="utf-8"))
        if previous["recipe"] != described["recipe"]:
            raise RunError(f"{run_dir}: the run was started with a different recipe")
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    stored.write_text(json.dumps(described, indent=2) + "\n", encoding="utf-8")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def stage_networks(recipe: Recipe) -> list[NetworkSpec]:
    """The networks a one-stage recipe trains: its model, and co-teaching's peer."""
    specs = [recipe.model]
    if recipe.strategy.name == "coteaching":
        specs.append(network_spec(recipe.strategy.params["peer"], default_name="peer"))
    return specs


def _single_stage(context: Context) -> dict[str, tuple[NetworkSpec, StateDict]] | None:
    recipe = context.recipe
    specs = stage_networks(recipe)
    targets = context.split.targets("train")
    if recipe.data.balancing == "single_label":
        targets = single_label(targets, context.train_counts)
    train_set = CropDataset(
        context.split.inputs(context.split.subsets["train"]),
        targets,
        crop_frames=recipe.data.crop_frames,
        crop_mode=recipe.data.crop_mode,
    )
    return train_stage(context, "train", specs, train_set, recipe.augment)


def _noisy_student(context: Context) -> dict[str, tuple[NetworkSpec, StateDict]] | None:
    recipe = context.recipe
    params = recipe.strategy.params
    split = context.split
    labelled = CropDataset(
        split.inputs(split.subsets["train"]),
        split.targets("train"),
        crop_frames=recipe.data.crop_frames,
        crop_mode=recipe.data.crop_mode,
    )
    teacher_spec = dataclasses.replace(recipe.model, name="teacher")
    teachers = train_stage(context, "teacher", [teacher_spec], labelled, recipe.augment)
    if teachers is None:
        return None
    unlabeled, targets, masks = _pseudo_labelled(context, *teachers["teacher"])
    student_set = CropDataset(
        labelled.tracks + unlabeled,
        np.concatenate([labelled.targets, targets]),
        masks=np.concatenate([labelled.masks, masks]),
        crop_frames=recipe.data.crop_frames,
        crop_mode=recipe.data.crop_mode,
    )
    student_augment = AugmentSpec(
        **merge(dataclasses.asdict(recipe.augment), params.get("student_augment", {}))
    )
    students = train_stage(
        context,
        "student",
        [student_spec(recipe.model, params)],
        student_set,
        student_augment,
    )
    if students is None:
        return None
    return {**teachers, **students}


def _pseudo_labelled(
    context: Context, spec: NetworkSpec, state: StateDict
) -> tuple[list[tuple[Path, ...]], np.ndarray, np.ndarray]:
    """The teacher's confident pseudo-labels of the unlabeled tracks (cached in the run)."""
    cache = context.run_dir / "pseudo_labels.npz"
    tracks, origin = unlabeled_tracks(context.split, context.options.unlabeled_dir)
    if cache.exists():
        stored = np.load(cache, allow_pickle=False)
        return tracks, stored["targets"], stored["masks"]
    teacher = build_model(spec.architecture, **spec.config).to(context.device)
    teacher.load_state_dict(state)
    dataset = SegmentDataset(
        tracks, np.zeros((len(tracks), 56), np.float32), segmenting=context.recipe.data.segmenting
    )
    probabilities = predict(context, teacher, dataset)
    params = context.recipe.strategy.params
    targets, masks = pseudo_labels(
        probabilities,
        positive_above=float(params.get("positive_above", 0.1)),
        negative_below=float(params.get("negative_below", 1e-6)),
    )
    if context.processes.main:
        np.savez(cache, targets=targets, masks=masks)
        log.info(
            "teacher pseudo-labels for %d tracks from %s: %.1f%% of the cells confident, "
            "%.2f positives per track",
            len(tracks),
            origin,
            100 * masks.mean(),
            targets.sum(axis=1).mean(),
        )
    context.processes.barrier()
    return tracks, targets, masks


def train_stage(
    context: Context,
    stage: str,
    specs: Sequence[NetworkSpec],
    train_set: CropDataset,
    augment: AugmentSpec,
) -> dict[str, tuple[NetworkSpec, StateDict]] | None:
    """Train ``specs`` for one stage; their members (best weights, SWA snapshots) or None when
    the session stopped early (``stop_after``)."""
    recipe = context.recipe
    processes = context.processes
    checkpoint_path = context.run_dir / stage / CHECKPOINT
    # Each stage starts from its own seed, so that a stage begun afresh after a resumed one
    # draws what it would have drawn in an uninterrupted run.
    seed_everything(recipe.train.seed + processes.rank + zlib.crc32(stage.encode()))
    trainees = []
    for spec in specs:
        network = build_network(spec, context.device, processes)
        averaging = None
        if recipe.swa is not None:
            averaging = WeightAveraging(
                network.module,
                every=recipe.swa.every,
                start_epoch=recipe.swa.start_epoch,
                snapshots=recipe.swa.snapshots,
            )
        trainees.append(
            Trainee(spec, network, LearningRate(recipe.optim, recipe.schedule), averaging=averaging)
        )
    first_epoch, finished = 0, False
    if checkpoint_path.exists():
        first_epoch, finished = _load_checkpoint(checkpoint_path, trainees, processes)
        if processes.main:
            log.info("%s: resuming after epoch %d", stage, first_epoch)
    if not finished:
        loader, sampler = _train_loader(context, train_set)
        loss = build_loss(recipe.loss, train_set.targets)
        augmentation = build_augmentation(augment, spec_rows=_spec_rows(context))
        stop_after = context.options.stop_after
        for epoch in range(first_epoch, recipe.train.epochs):
            if stop_after is not None and context.epochs_this_session >= stop_after:
                return None
            finished = _train_epoch(
                context, stage, epoch, trainees, loader, sampler, loss, augmentation
            )
            _save_checkpoint(checkpoint_path, epoch + 1, finished, trainees, processes)
            context.epochs_this_session += 1
            if finished:
                break
    members = {}
    for trainee in trainees:
        members[trainee.spec.name] = (trainee.spec, trainee.best_state)
        if trainee.averaging is not None:
            for number, state in enumerate(trainee.averaging.snapshots, start=1):
                members[f"{trainee.spec.name}-swa-{number}"] = (trainee.spec, state)
    return members


def _spec_rows(context: Context) -> int | None:
    """SpecAugment masks the mel bands only when other rows (HPCP) follow them."""
    if len(context.split.sources) == 1:
        return None
    first = context.validation.tracks[0][0]
    return int(np.load(first, mmap_mode="r").shape[0])


def _train_loader(context: Context, dataset: CropDataset) -> tuple[DataLoader, Sampler]:
    recipe = context.recipe
    processes = context.processes
    sampler: Sampler
    if recipe.data.sampler == "class_aware":
        sampler = ClassAwareSampler(
            dataset.targets * dataset.masks,
            seed=recipe.train.seed,
            rank=processes.rank,
            world_size=processes.world_size,
        )
    elif processes.distributed:
        sampler = DistributedSampler(
            dataset,
            num_replicas=processes.world_size,
            rank=processes.rank,
            shuffle=True,
            seed=recipe.train.seed,
        )
    else:
        sampler = RandomSampler(dataset)
    loader = DataLoader(
        dataset,
        batch_size=recipe.data.batch_size,
        sampler=sampler,
        num_workers=context.options.workers,
        pin_memory=context.device.type == "cuda",
        # A last batch of one example breaks batch norm in training mode.
        drop_last=len(sampler) > recipe.data.batch_size,
    )
    return loader, sampler


def _train_epoch(
    context: Context,
    stage: str,
    epoch: int,
    trainees: list[Trainee],
    loader: DataLoader,
    sampler: Sampler,
    loss: TrainingLoss,
    augmentation: Augmentation,
) -> bool:
    """One epoch of training, validation, averaging and logging; True when training ends."""
    recipe = context.recipe
    rates = [trainee.enter_epoch(epoch) for trainee in trainees]
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    for trainee in trainees:
        trainee.network.trainable.train()
    totals = torch.zeros(len(trainees), device=context.device)
    batches = 0
    coteaching = recipe.strategy.name == "coteaching"
    forget = 0.0
    if coteaching:
        forget = forget_rate(
            epoch,
            final=float(recipe.strategy.params.get("forget_rate", 0.05)),
            ramp_epochs=int(recipe.strategy.params.get("ramp_epochs", 10)),
        )
    progress = tqdm(
        loader,
        desc=f"{recipe.name} {stage} epoch {epoch + 1}/{recipe.train.epochs}",
        disable=not (context.options.progress and context.processes.main),
        leave=False,
        dynamic_ncols=True,
    )
    for batch in progress:
        batch = tuple(part.to(context.device, non_blocking=True) for part in batch)
        if coteaching:
            first, second = trainees
            values = coteaching_step(
                first.network,
                second.network,
                loss,
                batch,
                forget=forget,
                augment=augmentation,
                autocast=context.autocast,
            )
        else:
            values = (
                standard_step(
                    trainees[0].network,
                    loss,
                    batch,
                    augment=augmentation,
                    autocast=context.autocast,
                ),
            )
        totals += torch.stack([value.float() for value in values])
        batches += 1
    train_losses = (totals / max(batches, 1)).tolist()

    selection = recipe.train.selection_metric
    stalled = []
    for trainee, lr, train_loss in zip(trainees, rates, train_losses, strict=True):
        metrics = validate(context, trainee.network.module)
        score = metrics[selection]
        if score > trainee.best_score:
            trainee.best_score, trainee.best_epoch = score, epoch
            trainee.best_state = _cpu_state(trainee.network.module)
        trainee.schedule.observe(score)
        context.runlog.row(
            stage=stage,
            epoch=epoch + 1,
            network=trainee.spec.name,
            phase=trainee.phase,
            lr=lr,
            train_loss=train_loss,
            best=trainee.best_epoch + 1,
            **metrics,
        )
        if context.processes.main:
            log.info(
                "%s %s epoch %d/%d: loss %.4f, validation %s %.4f (best %.4f, epoch %d)",
                stage,
                trainee.spec.name,
                epoch + 1,
                recipe.train.epochs,
                train_loss,
                selection,
                score,
                trainee.best_score,
                trainee.best_epoch + 1,
            )
        if trainee.averaging is not None and trainee.averaging.due(epoch + 1):
            _average(context, stage, epoch, trainee, loader)
        patience = recipe.train.patience
        stalled.append(patience is not None and epoch - trainee.best_epoch >= patience)
    if all(stalled):
        if context.processes.main:
            log.info(
                "%s: no better validation %s for %s epochs, stopping",
                stage,
                selection,
                recipe.train.patience,
            )
        return True
    return epoch + 1 >= recipe.train.epochs


def _average(
    context: Context, stage: str, epoch: int, trainee: Trainee, loader: DataLoader
) -> None:
    averaging = trainee.averaging
    averaging.add(trainee.network.module)
    inputs = (batch[0] for batch in loader)
    state = averaging.snapshot(inputs, device=context.device)
    if context.processes.distributed:
        # Every process re-estimated batch norm on its own share; keep rank 0's everywhere.
        state = context.processes.broadcast(state)
    averaging.snapshots[-1] = state
    network = build_model(trainee.spec.architecture, **trainee.spec.config).to(context.device)
    network.load_state_dict(state)
    metrics = validate(context, network)
    context.runlog.row(stage=stage, epoch=epoch + 1, network=f"{trainee.spec.name}-swa", **metrics)
    if context.processes.main:
        log.info(
            "%s %s: SWA of %d weight sets, validation %s %.4f",
            stage,
            trainee.spec.name,
            averaging.count,
            context.recipe.train.selection_metric,
            metrics[context.recipe.train.selection_metric],
        )


def _cpu_state(module: nn.Module) -> StateDict:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


# -- evaluation ----------------------------------------------------------------------------------


def predict(context: Context, module: nn.Module, dataset: SegmentDataset) -> np.ndarray:
    """Track probabilities ``(tracks, 56)``: the mean over each track's segments of the
    network's sigmoid outputs, the tracks shared between the processes and gathered."""
    processes = context.processes
    indices = list(range(processes.rank, len(dataset), processes.world_size))
    segmenting = context.recipe.data.segmenting
    per_track = {"uniform": segmenting.count or 1, "center": 1}.get(segmenting.mode, 8)
    budget = context.recipe.data.eval_batch_segments
    loader = DataLoader(
        Subset(dataset, indices),
        batch_size=max(1, budget // per_track),
        collate_fn=collate_segments,
        num_workers=context.options.workers,
    )
    was_training = module.training
    module.eval()
    rows = []
    autocast = context.autocast
    with torch.inference_mode():
        for segments, counts, _ in loader:
            probabilities = []
            for chunk in segments.split(budget):
                chunk = chunk.to(context.device, non_blocking=True)
                with autocast() if autocast else contextlib.nullcontext():
                    logits = module(chunk)
                probabilities.append(torch.sigmoid(logits.float()).cpu())
            for track in torch.cat(probabilities).split(counts):
                rows.append(track.mean(dim=0).numpy())
    module.train(was_training)
    local = np.stack(rows) if rows else np.zeros((0, 56), np.float32)
    gathered = processes.gather((indices, local))
    result = np.zeros((len(dataset), 56), dtype=np.float32)
    for part_indices, part in gathered:
        result[part_indices] = part
    return result


def validate(context: Context, module: nn.Module) -> dict[str, float]:
    """The official metrics of ``module`` on the validation tracks."""
    probabilities = predict(context, module, context.validation)
    return evaluate(context.validation.targets, probabilities)


def finalize(
    context: Context, members: dict[str, tuple[NetworkSpec, StateDict]]
) -> dict[str, Any] | None:
    """Score every member on validation and test, weigh the exported ones, fit thresholds on
    validation, write the members, predictions and ``result.json``; return the result (rank 0;
    the other processes get None)."""
    recipe = context.recipe
    split = context.split
    processes = context.processes
    predictions: dict[str, dict[str, np.ndarray]] = {"validation": {}, "test": {}}
    groundtruth = {subset: split.targets(subset) for subset in predictions}
    datasets = {
        subset: SegmentDataset(
            split.inputs(split.subsets[subset]),
            groundtruth[subset],
            segmenting=recipe.data.segmenting,
        )
        for subset in predictions
    }
    for name, (spec, state) in members.items():
        module = build_model(spec.architecture, **spec.config).to(context.device)
        module.load_state_dict(state)
        for subset, dataset in datasets.items():
            predictions[subset][name] = predict(context, module, dataset)
    if not processes.main:
        processes.barrier()
        return None

    exported = select_members(members, recipe.export.members)
    if recipe.export.weights == "fit":
        weights = fit_weights(
            [predictions["validation"][n] for n in exported],
            groundtruth["validation"],
            metric=recipe.train.selection_metric,
        )
    elif recipe.export.weights == "equal":
        weights = np.full(len(exported), 1.0 / len(exported))
    else:
        weights = np.asarray(recipe.export.weights, dtype=np.float64)
        if len(weights) != len(exported):
            raise RunError(f"{len(weights)} export weights for members {exported}")
    thresholds, metrics = thresholds_and_metrics(
        {subset: [predictions[subset][n] for n in exported] for subset in predictions},
        groundtruth,
        weights,
    )
    test_scores = combine([predictions["test"][n] for n in exported], weights)
    metrics["test"].update(
        head_middle_tail_pr_auc(groundtruth["test"], test_scores, context.train_counts)
    )
    members_dir = context.run_dir / "members"
    members_dir.mkdir(parents=True, exist_ok=True)
    for name, (_, state) in members.items():
        tensors = {k: v.contiguous() for k, v in state.items()}
        save_file(tensors, str(members_dir / f"{name}.safetensors"))
    for subset in predictions:
        folder = context.run_dir / "predictions" / subset
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "groundtruth.npy", groundtruth[subset])
        for name, matrix in predictions[subset].items():
            np.save(folder / f"{name}.npy", matrix)
    result = {
        "recipe": recipe.name,
        "recipe_source": recipe.source,
        "paper": dataclasses.asdict(recipe.paper),
        "frontend": build_frontend(recipe.frontend).config(),
        "segmenting": recipe.data.segmenting.to_dict(),
        "inputs": list(split.sources),
        "members": [
            {
                "name": name,
                "architecture": spec.architecture,
                "config": spec.config,
                "weights": f"members/{name}.safetensors",
                "validation": evaluate(groundtruth["validation"], predictions["validation"][name]),
                "test": evaluate(groundtruth["test"], predictions["test"][name]),
            }
            for name, (spec, _) in members.items()
        ],
        "ensemble": {name: float(w) for name, w in zip(exported, weights, strict=True)},
        "thresholds": [float(t) for t in thresholds],
        "metrics": metrics,
        "data": {"folder": str(context.options.data_dir), "split": context.options.split},
        "epochs": recipe.train.epochs,
        "seed": recipe.train.seed,
        "moodlib": moodlib.__version__,
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    (context.run_dir / RESULT).write_text(
        json.dumps(_without_nan(result), indent=2) + "\n", encoding="utf-8"
    )
    log.info(
        "%s: test PR-AUC-macro %.4f, ROC-AUC-macro %.4f (paper: %s)",
        recipe.name,
        metrics["test"]["PR-AUC-macro"],
        metrics["test"]["ROC-AUC-macro"],
        ", ".join(f"{k} {v}" for k, v in recipe.paper.metrics.items()) or "no numbers",
    )
    processes.barrier()
    return result


def _without_nan(value: Any) -> Any:
    """JSON has no NaN: an undefined metric (a frequency group without tags) becomes null."""
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def select_members(members: Sequence[str] | dict[str, Any], patterns: Sequence[str]) -> list[str]:
    """Member names matching ``patterns`` (``fnmatch``), in pattern order, each once."""
    chosen: list[str] = []
    for pattern in patterns:
        chosen += [name for name in members if fnmatch(name, pattern) and name not in chosen]
    if not chosen:
        raise RunError(f"no trained network matches the export members {list(patterns)}")
    return chosen


# -- checkpoints ----------------------------------------------------------------------------------


def _save_checkpoint(
    path: Path, epochs_done: int, finished: bool, trainees: list[Trainee], processes: Processes
) -> None:
    rng = processes.gather(rng_state())
    if processes.main:
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "epochs_done": epochs_done,
            "finished": finished,
            "trainees": {t.spec.name: t.state_dict() for t in trainees},
            "rng": rng,
        }
        temporary = path.with_suffix(".tmp")
        torch.save(state, temporary)
        os.replace(temporary, path)
    processes.barrier()


def _load_checkpoint(path: Path, trainees: list[Trainee], processes: Processes) -> tuple[int, bool]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise RunError(f"{path}: cannot read the checkpoint ({error})") from error
    for trainee in trainees:
        trainee.load_state_dict(state["trainees"][trainee.spec.name])
    rng = state["rng"]
    if len(rng) == processes.world_size:
        set_rng_state(rng[processes.rank])
    elif processes.main:
        log.warning("%s was written by %d processes: random streams restart", path, len(rng))
    return int(state["epochs_done"]), bool(state["finished"])


def rng_state() -> dict[str, Any]:
    """The random generators' states (torch, CUDA, numpy, Python) in loadable types."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached),
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    random.setstate(state["python"])
