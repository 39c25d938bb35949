"""The training loop: a recipe and a dataset folder in, a run folder out.

:func:`run` trains what a :class:`~trainer.recipe.Recipe` describes on a dataset in the official
layout (:mod:`trainer.inputs`), then scores the trained networks on the validation and test
sets and writes everything the export needs (:func:`trainer.evaluation.finalize`) into the run
folder (:mod:`trainer.rundir`).

The recipe's strategy (:mod:`trainer.strategies`) decides the stages: one (``train``) for the
standard and co-teaching strategies; two (``teacher`` and ``student``) for the noisy student,
with the teacher's pseudo-labels in between. :class:`RunStages` is what the run does for a
strategy: train a stage (:func:`train_stage`), label tracks.

Each epoch of a stage: every network enters its optimiser phase (a new optimiser at a phase
boundary, from the best weights so far when the phase says so; :mod:`trainer.schedule`) and
gets its learning rate; one pass over random training crops, augmented as the recipe says,
updates them through the strategy's step; each network is scored on the validation tracks
(:func:`trainer.evaluation.validate`); the best weights by the recipe's selection metric are
kept; SWA adds weights and takes snapshots when due; the epoch is logged and checkpointed
(:mod:`trainer.checkpoint`), so ``resume`` continues exactly where an interrupted run stopped.
A stage ends after the recipe's epochs or when no network improved for ``patience`` epochs.

Devices and processes (:mod:`trainer.processes`): on CUDA, the networks run in channels-last
layout under bf16 autocast (no-ops on the CPU); under ``torchrun`` every process trains on its
share of the batches and only rank 0 writes. Each process first fits its DataLoader workers and
torch intra-op threads into its share of the cores (:func:`trainer.processes.share_cores`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from moodlib.models import build_model
from moodlib.vocabulary import TAGS
from trainer.builders import build_augmentation, build_loss, build_network
from trainer.checkpoint import (
    CHECKPOINT,
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
)
from trainer.context import Context, RunOptions
from trainer.data.augment import Augmentation, single_label
from trainer.data.tracks import CropDataset, SegmentDataset
from trainer.evaluation import finalize, predict, unscored_tags, validate
from trainer.inputs import inputs_from_audio, read_data, train_loader, unlabeled_tracks
from trainer.processes import available_cores, share_cores, start_processes, stop_processes
from trainer.recipe import AugmentSpec, NetworkSpec, Recipe
from trainer.rundir import RunError, RunLog, prepare_run_dir
from trainer.schedule import LearningRate, make_optimizer
from trainer.strategies import build_strategy
from trainer.strategies.averaging import WeightAveraging
from trainer.strategies.base import Members, Network, StateDict, Strategy, TrainingLoss

log = logging.getLogger("trainer")


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    finished: bool
    result: dict[str, Any] | None = None


def run(recipe: Recipe, options: RunOptions) -> RunResult:
    """Train ``recipe`` as ``options`` say; return where the run is and whether it finished."""
    processes, device = start_processes(options.device)
    threads = torch.get_num_threads()
    share = share_cores(
        cores=available_cores(),
        processes=processes.local_world_size,
        workers=options.workers,
        threads=threads,
    )
    torch.set_num_threads(share.threads)
    options = dataclasses.replace(options, workers=share.workers)
    run_dir = Path(options.out_dir)
    try:
        prepare_run_dir(recipe, run_dir, options.resume, processes)
        if options.audio_dir is None:
            split = read_data(
                Path(options.data_dir), split=options.split, sources=recipe.data.inputs
            )
        else:
            split, unlabeled_dir = inputs_from_audio(
                recipe, data_dir=options.data_dir, split=options.split,
                audio_dir=options.audio_dir, unlabeled_dir=options.unlabeled_dir,
                workers=options.workers, show_progress=options.show_progress,
                processes=processes, device=device,
            )  # fmt: skip
            options = dataclasses.replace(options, unlabeled_dir=unlabeled_dir)
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
                "%s: %s on %s (%d process%s; %d loader workers and %d threads each), run folder %s",
                recipe.name,
                recipe.paper.row,
                device,
                processes.world_size,
                "" if processes.world_size == 1 else "es",
                share.workers,
                share.threads,
                run_dir,
            )
        _check_validation_tags(context)
        try:
            strategy = build_strategy(recipe.strategy)
            members = strategy.train(RunStages(context, strategy))
            if members is None:
                return RunResult(run_dir, finished=False)
            result = finalize(context, members)
        finally:
            runlog.close()
        return RunResult(run_dir, finished=True, result=result)
    finally:
        torch.set_num_threads(threads)
        stop_processes(processes)


def _check_validation_tags(context: Context) -> None:
    """Say which tags validation cannot score (no positive or no negative track there); refuse
    a validation set that scores none."""
    unscored = unscored_tags(context.validation.targets)
    if len(unscored) == len(TAGS):
        raise RunError(
            f"{context.options.data_dir}: no tag has both a positive and a negative validation "
            "track, so no epoch can be scored"
        )
    if unscored and context.processes.main:
        log.warning(
            "%d tag(s) without a positive or without a negative validation track, left out of "
            "the validation metrics and of the choice of the best epoch: %s",
            len(unscored),
            ", ".join(unscored),
        )


class RunStages:
    """What the run does for its strategy (:class:`~trainer.strategies.base.StageRunner`)."""

    def __init__(self, context: Context, strategy: Strategy) -> None:
        self.context = context
        self.strategy = strategy
        self.recipe = context.recipe

    def labelled(self) -> CropDataset:
        split = self.context.split
        targets = split.targets("train")
        if self.recipe.data.balancing == "single_label":
            targets = single_label(targets, self.context.train_counts)
        return CropDataset(
            split.inputs(split.subsets["train"]),
            targets,
            crop_frames=self.recipe.data.crop_frames,
            crop_mode=self.recipe.data.crop_mode,
        )

    def train(
        self, stage: str, specs: Sequence[NetworkSpec], crops: CropDataset, augment: AugmentSpec
    ) -> Members | None:
        return train_stage(self.context, self.strategy, stage, specs, crops, augment)

    def pseudo_labelled(
        self,
        teacher: tuple[NetworkSpec, StateDict],
        label: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    ) -> tuple[list[tuple[Path, ...]], np.ndarray, np.ndarray]:
        """The teacher's pseudo-labels of the unlabeled tracks (cached in the run folder)."""
        context = self.context
        cache = context.run_dir / "pseudo_labels.npz"
        tracks, origin = unlabeled_tracks(context.split, context.options.unlabeled_dir)
        if cache.exists():
            stored = np.load(cache, allow_pickle=False)
            return tracks, stored["targets"], stored["masks"]
        spec, state = teacher
        network = build_model(spec.architecture, **spec.config).to(context.device)
        network.load_state_dict(state)
        dataset = SegmentDataset(
            tracks, np.zeros((len(tracks), len(TAGS)), np.float32),
            segmenting=self.recipe.data.segmenting,
        )  # fmt: skip
        targets, masks = label(predict(context, network, dataset))
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

    def observe(self, epoch: int, score: float) -> None:
        """Keep the weights of ``epoch`` when its validation ``score`` is the best so far."""
        if score > self.best_score:
            self.best_score, self.best_epoch = score, epoch
            self.best_state = _cpu_state(self.network.module)
        self.schedule.observe(score)

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


@dataclass
class Stage:
    """A stage being trained: its name, networks, and what each epoch feeds them."""

    name: str
    trainees: list[Trainee]
    loader: DataLoader
    sampler: Sampler
    loss: TrainingLoss
    augmentation: Augmentation


def train_stage(
    context: Context,
    strategy: Strategy,
    name: str,
    specs: Sequence[NetworkSpec],
    crops: CropDataset,
    augment: AugmentSpec,
) -> Members | None:
    """Train ``specs`` as stage ``name`` with ``strategy``'s step; their members (best weights,
    SWA snapshots), or None when the session stopped early (``stop_after``)."""
    recipe = context.recipe
    processes = context.processes
    checkpoint_path = context.run_dir / name / CHECKPOINT
    # Each stage starts from its own seed, so that a stage begun afresh after a resumed one
    # draws what it would have drawn in an uninterrupted run.
    seed_everything(recipe.train.seed + processes.rank + zlib.crc32(name.encode()))
    trainees = [_trainee(context, spec) for spec in specs]
    first_epoch, finished = 0, False
    if checkpoint_path.exists():
        checkpoint = load_checkpoint(checkpoint_path, processes)
        for trainee in trainees:
            trainee.load_state_dict(checkpoint.networks[trainee.spec.name])
        first_epoch, finished = checkpoint.epochs_done, checkpoint.finished
        if processes.main:
            log.info("%s: resuming after epoch %d", name, first_epoch)
    if not finished:
        loader, sampler = train_loader(
            crops, recipe.data, seed=recipe.train.seed, processes=processes,
            workers=context.options.workers, device=context.device,
        )  # fmt: skip
        stage = Stage(
            name,
            trainees,
            loader,
            sampler,
            build_loss(recipe.loss, crops.targets),
            build_augmentation(augment, spec_rows=context.split.leading_rows()),
        )
        stop_after = context.options.stop_after
        for epoch in range(first_epoch, recipe.train.epochs):
            if stop_after is not None and context.epochs_this_session >= stop_after:
                return None
            finished = train_epoch(context, strategy, stage, epoch)
            states = {t.spec.name: t.state_dict() for t in trainees}
            save_checkpoint(checkpoint_path, Checkpoint(epoch + 1, finished, states), processes)
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


def _trainee(context: Context, spec: NetworkSpec) -> Trainee:
    recipe = context.recipe
    network = build_network(spec, context.device, context.processes)
    averaging = None
    if recipe.swa is not None:
        averaging = WeightAveraging(
            network.module,
            every=recipe.swa.every,
            start_epoch=recipe.swa.start_epoch,
            snapshots=recipe.swa.snapshots,
        )
    return Trainee(spec, network, LearningRate(recipe.optim, recipe.schedule), averaging=averaging)


def train_epoch(context: Context, strategy: Strategy, stage: Stage, epoch: int) -> bool:
    """One epoch of training, validation, averaging and logging; True when training ends."""
    recipe = context.recipe
    rates = [trainee.enter_epoch(epoch) for trainee in stage.trainees]
    train_losses = _train_batches(context, strategy, stage, epoch)
    selection = recipe.train.selection_metric
    stalled = []
    for trainee, lr, train_loss in zip(stage.trainees, rates, train_losses, strict=True):
        metrics = validate(context, trainee.network.module)
        trainee.observe(epoch, metrics[selection])
        context.runlog.row(
            stage=stage.name,
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
                stage.name,
                trainee.spec.name,
                epoch + 1,
                recipe.train.epochs,
                train_loss,
                selection,
                metrics[selection],
                trainee.best_score,
                trainee.best_epoch + 1,
            )
        if trainee.averaging is not None and trainee.averaging.due(epoch + 1):
            _average(context, stage, epoch, trainee)
        patience = recipe.train.patience
        stalled.append(patience is not None and epoch - trainee.best_epoch >= patience)
    if all(stalled):
        if context.processes.main:
            log.info(
                "%s: no better validation %s for %s epochs, stopping",
                stage.name,
                selection,
                recipe.train.patience,
            )
        return True
    return epoch + 1 >= recipe.train.epochs


def _train_batches(context: Context, strategy: Strategy, stage: Stage, epoch: int) -> list[float]:
    """One pass over the stage's batches through the strategy's step; each network's mean
    training loss."""
    if hasattr(stage.sampler, "set_epoch"):
        stage.sampler.set_epoch(epoch)
    networks = [trainee.network for trainee in stage.trainees]
    for network in networks:
        network.trainable.train()
    strategy.begin_epoch(epoch)
    totals = torch.zeros(len(networks), device=context.device)
    batches = 0
    bar = tqdm(
        stage.loader,
        desc=f"{context.recipe.name} {stage.name} epoch {epoch + 1}/{context.recipe.train.epochs}",
        disable=not (context.options.show_progress and context.processes.main),
        leave=False,
        dynamic_ncols=True,
    )
    for batch in bar:
        batch = tuple(part.to(context.device, non_blocking=True) for part in batch)
        values = strategy.step(
            networks,
            stage.loss,
            batch,
            augment=stage.augmentation,
            autocast=context.autocast,
        )
        totals += torch.stack([value.float() for value in values])
        batches += 1
    return (totals / max(batches, 1)).tolist()


def _average(context: Context, stage: Stage, epoch: int, trainee: Trainee) -> None:
    """Add the trainee's weights to its SWA average and take a snapshot (batch norm
    re-estimated on the training batches), validated and logged as ``NAME-swa``."""
    averaging = trainee.averaging
    averaging.add(trainee.network.module)
    inputs = (batch[0] for batch in stage.loader)
    state = averaging.snapshot(inputs, device=context.device)
    if context.processes.distributed:
        # Every process re-estimated batch norm on its own share; keep rank 0's everywhere.
        state = context.processes.broadcast(state)
    averaging.snapshots[-1] = state
    network = build_model(trainee.spec.architecture, **trainee.spec.config).to(context.device)
    network.load_state_dict(state)
    metrics = validate(context, network)
    context.runlog.row(
        stage=stage.name, epoch=epoch + 1, network=f"{trainee.spec.name}-swa", **metrics
    )
    if context.processes.main:
        log.info(
            "%s %s: SWA of %d weight sets, validation %s %.4f",
            stage.name,
            trainee.spec.name,
            averaging.count,
            context.recipe.train.selection_metric,
            metrics[context.recipe.train.selection_metric],
        )


def _cpu_state(module: nn.Module) -> StateDict:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
