"""Training strategies of the MediaEval papers: the stages of a run and how one batch updates
the network(s), one :class:`~trainer.strategies.base.Strategy` per file.

- :mod:`~trainer.strategies.base`: the interface, and what every strategy shares (the network
  being trained, the masked loss wrapper :class:`~trainer.strategies.base.TrainingLoss`).
- :mod:`~trainer.strategies.standard`: one network, one loss (every paper's baseline step).
- :mod:`~trainer.strategies.coteaching`: two networks teach each other with their small-loss
  examples (Han et al. 2018; SELAB-HCMUS, MediaEval 2021).
- :mod:`~trainer.strategies.noisy_student`: teacher pseudo-labels with confidence thresholds and
  masks, a noisier student (Xie et al. 2020; Mirable, MediaEval 2021).
- :mod:`~trainer.strategies.averaging`: stochastic weight averaging every few epochs and the
  averaged snapshots (Izmailov et al. 2018; CP-JKU, MediaEval 2019). It is not a strategy of its
  own: the recipe's ``[swa]`` table adds it at the end of the epochs of any strategy.

:func:`build_strategy` makes the recipe's. The epoch loop, validation, checkpoints and logs are
:mod:`trainer.loop`'s.
"""

from __future__ import annotations

from trainer.recipe import StrategySpec
from trainer.strategies.base import Strategy
from trainer.strategies.coteaching import CoTeaching
from trainer.strategies.noisy_student import NoisyStudent
from trainer.strategies.standard import Standard

STRATEGIES: dict[str, type[Strategy]] = {
    strategy.name: strategy for strategy in (Standard, CoTeaching, NoisyStudent)
}


def build_strategy(spec: StrategySpec) -> Strategy:
    """The strategy a recipe's ``[strategy]`` table names, with its parameters."""
    try:
        strategy = STRATEGIES[spec.name]
    except KeyError:
        raise ValueError(f"no strategy {spec.name!r}; known: {', '.join(STRATEGIES)}") from None
    return strategy(spec.params)
