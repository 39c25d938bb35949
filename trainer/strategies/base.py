"""What every training strategy shares: the :class:`Strategy` interface, the network being
trained, the loss wrapper, and what a strategy asks of the run.

A :class:`Strategy` says which networks a stage trains (:meth:`Strategy.networks`), how one
batch updates them (:meth:`Strategy.step`: one optimiser step per network, their losses
returned in the same order), whatever changes per epoch (:meth:`Strategy.begin_epoch`), and
the stages of a run (:meth:`Strategy.train`: one ``train`` stage unless the strategy has
more). The run's side, training a stage and labelling tracks, is a :class:`StageRunner`
(:class:`trainer.loop.RunStages`).

:class:`TrainingLoss` wraps a loss of :mod:`trainer.losses` so that

- a mask can leave targets out (the noisy student's unconfident pseudo-labels): masked cells add
  nothing and the reduction counts only the known ones;
- a strategy can read one loss per example (co-teaching ranks examples by it);

and both keep the reduction of the loss's own equation (``mean`` over all cells for BCE and the
paper's distribution-balanced loss, ``batchmean`` for focal and class-balanced focal losses).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from trainer.data.tracks import CropDataset
from trainer.recipe import AugmentSpec, NetworkSpec, Recipe

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""``(inputs, targets, mask)`` on the training device."""

Augment = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Batch]

Autocast = Callable[[], Any] | None
"""A context manager factory the forward passes run under (bf16 on CUDA), or None."""

StateDict = dict[str, torch.Tensor]

Members = dict[str, tuple[NetworkSpec, StateDict]]
"""A stage's trained networks by name: their spec and kept weights (best, or SWA snapshots)."""


class TrainingLoss:
    """A :mod:`trainer.losses` module evaluated cell by cell, then masked and reduced.

    Parameters
    ----------
    loss
        A loss module with a ``reduction`` attribute (``"mean"`` or ``"batchmean"``); the
        wrapper reduces in its place, so the module itself is set to ``"none"``.
    """

    def __init__(self, loss: nn.Module) -> None:
        self.reduction = loss.reduction
        if self.reduction not in ("mean", "batchmean"):
            raise ValueError(f"cannot train with reduction {self.reduction!r}")
        loss.reduction = "none"
        self.loss = loss

    def cells(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Loss of every (example, tag), float32."""
        return self.loss(logits.float(), targets.float())

    def __call__(
        self, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The batch loss; with a mask, the reduction runs over the known cells only."""
        cells = self.cells(logits, targets)
        if mask is None:
            mask = torch.ones_like(cells)
        total = (cells * mask).sum()
        if self.reduction == "mean":
            return total / mask.sum().clamp(min=1)
        known_examples = (mask.sum(dim=1) > 0).sum()
        return total / known_examples.clamp(min=1)

    def per_example(
        self, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Each example's loss ``(batch,)``: the mean (``mean``) or sum (``batchmean``) of its
        known cells, so that the batch loss is the mean of these (without a mask)."""
        cells = self.cells(logits, targets)
        if mask is None:
            mask = torch.ones_like(cells)
        total = (cells * mask).sum(dim=1)
        if self.reduction == "mean":
            return total / mask.sum(dim=1).clamp(min=1)
        return total


@dataclass
class Network:
    """A network being trained: its module, what the step calls, and its optimiser."""

    name: str
    module: nn.Module
    """The plain module (what is saved and averaged)."""
    trainable: nn.Module
    """What the step calls: the module, or its ``DistributedDataParallel`` wrapper."""
    optimizer: torch.optim.Optimizer | None = None


def no_augment(inputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> Batch:
    return inputs, targets, mask


class StageRunner(Protocol):
    """What the run does for a strategy (:class:`trainer.loop.RunStages`)."""

    recipe: Recipe

    def labelled(self) -> CropDataset:
        """Crops of the training tracks with their targets (balanced as the recipe says)."""
        ...

    def train(
        self, stage: str, specs: Sequence[NetworkSpec], crops: CropDataset, augment: AugmentSpec
    ) -> Members | None:
        """Train ``specs`` as stage ``stage``; None when the session stopped before its end."""
        ...

    def pseudo_labelled(
        self,
        teacher: tuple[NetworkSpec, StateDict],
        label: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    ) -> tuple[list[tuple[Path, ...]], np.ndarray, np.ndarray]:
        """The unlabeled tracks and ``label(teacher probabilities)``: ``(tracks, targets,
        masks)``, computed once per run."""
        ...


class Strategy(ABC):
    """How a run's networks learn: the stages, each stage's networks, one batch's update.

    Parameters
    ----------
    params
        The recipe's ``[strategy]`` table without its ``name``.
    """

    name: ClassVar[str]

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params = dict(params or {})

    def networks(self, recipe: Recipe) -> list[NetworkSpec]:
        """The networks a stage trains together: the recipe's model."""
        return [recipe.model]

    def begin_epoch(self, epoch: int) -> None:  # noqa: B027 (a hook most strategies skip)
        """Set what the steps of epoch ``epoch`` (0-based) use; nothing by default."""

    @abstractmethod
    def step(
        self,
        networks: Sequence[Network],
        loss: TrainingLoss,
        batch: Batch,
        *,
        augment: Augment = no_augment,
        autocast: Autocast = None,
    ) -> tuple[torch.Tensor, ...]:
        """Update ``networks`` (those of :meth:`networks`, in order) on one batch; return each
        network's loss, detached."""

    def train(self, stages: StageRunner) -> Members | None:
        """Every stage of the run: one, ``train``, of :meth:`networks` on the training crops."""
        recipe = stages.recipe
        return stages.train("train", self.networks(recipe), stages.labelled(), recipe.augment)
