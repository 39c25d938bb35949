"""Co-teaching (Han et al., NeurIPS 2018) as SELAB-HCMUS trained EfficientNet-B0 with ReXNet-100.

Two networks see the same batch. Each ranks the examples by its own loss and keeps the
``R(T)`` fraction with the smallest losses, the ones most likely to be labelled right; each
network is then updated on the examples its *peer* kept, so that the two filter different
label noise for each other (Han et al., Algorithm 1).

The forget rate ``1 - R(T)`` grows linearly from 0 in the first epoch to its final value
``tau`` over the first ``T_k`` epochs and stays there: SELAB-HCMUS set ``tau = 0.05``; they do not
state ``T_k``, so the recipes use Han et al.'s 10 (their released code ramps with
``linspace(0, tau, T_k)``, which :func:`forget_rate` reproduces). A batch keeps
``int((1 - forget_rate) * batch)`` examples, as that code does.

For multi-label tagging an example's loss is its loss over all tags
(:meth:`~trainer.strategies.base.TrainingLoss.per_example`). :class:`CoTeaching` trains the
recipe's model with the peer of its ``[strategy] peer`` table, in one stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch

from trainer.recipe import NetworkSpec, Recipe, network_spec
from trainer.strategies.base import (
    Augment,
    Autocast,
    Batch,
    Network,
    Strategy,
    TrainingLoss,
    no_augment,
)

FORGET_RATE = 0.05
"""SELAB-HCMUS's final forget rate ``tau``."""
RAMP_EPOCHS = 10
"""Han et al.'s ``T_k``: epochs over which the forget rate rises to its final value."""


def forget_rate(epoch: int, *, final: float = FORGET_RATE, ramp_epochs: int = RAMP_EPOCHS) -> float:
    """Share of each batch a network leaves out in ``epoch`` (0-based).

    ``final * epoch / (ramp_epochs - 1)`` during the ramp (0 in the first epoch, ``final`` in
    epoch ``ramp_epochs - 1``), ``final`` afterwards.

    Examples
    --------
    >>> [round(forget_rate(e, final=0.05, ramp_epochs=3), 3) for e in range(4)]
    [0.0, 0.025, 0.05, 0.05]
    """
    if not 0.0 <= final < 1.0:
        raise ValueError(f"the forget rate must be in [0, 1), not {final}")
    if ramp_epochs <= 1 or epoch >= ramp_epochs - 1:
        return final
    return final * epoch / (ramp_epochs - 1)


def small_loss_indices(losses: torch.Tensor, *, forget: float) -> torch.Tensor:
    """Indices of the ``int((1 - forget) * n)`` smallest of ``losses (n,)``, smallest first
    (at least one)."""
    keep = max(1, int((1.0 - forget) * losses.numel()))
    return torch.argsort(losses.detach(), stable=True)[:keep]


def coteaching_step(
    first: Network,
    second: Network,
    loss: TrainingLoss,
    batch: Batch,
    *,
    forget: float,
    augment: Augment = no_augment,
    autocast: Autocast = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Update each network on the small-loss examples its peer picked; return both losses.

    Both networks see the same augmented batch (the same mixup pairs and masks), so their
    rankings are comparable.
    """
    inputs, targets, mask = augment(*batch)
    with autocast() if autocast else torch.enable_grad():
        first_logits = first.trainable(inputs)
        second_logits = second.trainable(inputs)
    first_picks = small_loss_indices(loss.per_example(first_logits, targets, mask), forget=forget)
    second_picks = small_loss_indices(loss.per_example(second_logits, targets, mask), forget=forget)
    first_loss = loss(first_logits[second_picks], targets[second_picks], mask[second_picks])
    second_loss = loss(second_logits[first_picks], targets[first_picks], mask[first_picks])
    for network, value in ((first, first_loss), (second, second_loss)):
        network.optimizer.zero_grad(set_to_none=True)
        value.backward()
        network.optimizer.step()
    return first_loss.detach(), second_loss.detach()


class CoTeaching(Strategy):
    """The recipe's model and its peer (``[strategy] peer``, a ``[model]``-like table) trained
    by :func:`coteaching_step`, the forget rate following :func:`forget_rate` over the epochs
    (``forget_rate`` and ``ramp_epochs`` of the ``[strategy]`` table)."""

    name: ClassVar[str] = "coteaching"

    forget: float = 0.0
    """This epoch's forget rate."""

    def networks(self, recipe: Recipe) -> list[NetworkSpec]:
        return [recipe.model, network_spec(self.params["peer"], default_name="peer")]

    def begin_epoch(self, epoch: int) -> None:
        self.forget = forget_rate(
            epoch,
            final=float(self.params.get("forget_rate", FORGET_RATE)),
            ramp_epochs=int(self.params.get("ramp_epochs", RAMP_EPOCHS)),
        )

    def step(
        self,
        networks: Sequence[Network],
        loss: TrainingLoss,
        batch: Batch,
        *,
        augment: Augment = no_augment,
        autocast: Autocast = None,
    ) -> tuple[torch.Tensor, ...]:
        first, second = networks
        return coteaching_step(
            first, second, loss, batch, forget=self.forget, augment=augment, autocast=autocast
        )
