"""The standard training step and the loss wrapper every strategy shares.

:class:`TrainingLoss` wraps a loss of :mod:`trainer.losses` so that

- a mask can leave targets out (the noisy student's unconfident pseudo-labels): masked cells add
  nothing and the reduction counts only the known ones;
- a strategy can read one loss per example (co-teaching ranks examples by it);

and both keep the reduction of the loss's own equation (``mean`` over all cells for BCE and the
distribution-balanced loss, ``batchmean`` for focal and class-balanced focal losses).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""``(inputs, targets, mask)`` on the training device."""

Augment = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Batch]


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


def standard_step(
    network: Network,
    loss: TrainingLoss,
    batch: Batch,
    *,
    augment: Augment = no_augment,
    autocast: Callable[[], object] | None = None,
) -> torch.Tensor:
    """One optimiser step of one network on one (augmented) batch; returns the loss, detached."""
    inputs, targets, mask = augment(*batch)
    with autocast() if autocast else torch.enable_grad():
        logits = network.trainable(inputs)
    value = loss(logits, targets, mask)
    network.optimizer.zero_grad(set_to_none=True)
    value.backward()
    network.optimizer.step()
    return value.detach()
