"""The standard strategy: one network, one loss, one optimiser step per batch.

Every paper's baseline step (and the MTG baseline's, CP-JKU's, HCMUS's, USC SAIL's and
Mirable's whole training): the batch is augmented, the network's loss on it is masked and
reduced by :class:`~trainer.strategies.base.TrainingLoss`, and the optimiser takes one step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch

from trainer.strategies.base import (
    Augment,
    Autocast,
    Batch,
    Network,
    Strategy,
    TrainingLoss,
    no_augment,
)


def standard_step(
    network: Network,
    loss: TrainingLoss,
    batch: Batch,
    *,
    augment: Augment = no_augment,
    autocast: Autocast = None,
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


class Standard(Strategy):
    """One network trained by :func:`standard_step`, in one stage."""

    name: ClassVar[str] = "standard"

    def step(
        self,
        networks: Sequence[Network],
        loss: TrainingLoss,
        batch: Batch,
        *,
        augment: Augment = no_augment,
        autocast: Autocast = None,
    ) -> tuple[torch.Tensor, ...]:
        [network] = networks
        return (standard_step(network, loss, batch, augment=augment, autocast=autocast),)
