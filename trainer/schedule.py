"""Optimiser phases and the learning rate of each epoch.

A recipe's ``[optim] phases`` are stretches of epochs with one optimiser each (the MTG baseline
and USC SAIL go from Adam to SGD, each SGD phase from the best weights so far); its
``[schedule]`` shapes the learning rate inside a phase. :class:`LearningRate` answers, for an
epoch, which phase it is in and what its learning rate is; :func:`make_optimizer` builds a
phase's optimiser. The training loop (:class:`trainer.loop.Trainee`) switches optimisers at the
phase boundaries and feeds the schedule each epoch's validation score.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from trainer.recipe import PhaseSpec, ScheduleSpec


def make_optimizer(phase: PhaseSpec, parameters: Iterator[nn.Parameter]) -> torch.optim.Optimizer:
    """The phase's optimiser (Adam, or SGD with its momentum) over ``parameters``."""
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
