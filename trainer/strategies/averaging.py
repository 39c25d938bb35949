"""Weight averaging: stochastic weight averaging (SWA) and CP-JKU's snapshot averaging.

CP-JKU (Koutini et al., MediaEval 2019, sec. 3.4) follow Izmailov et al. (2018): from some
epoch on, the network's weights are added to a running average every 3 epochs; the averaged
network, whose batch-norm statistics are re-estimated on the training data (they are not
averages of the members'), beats each single one. Their final prediction then averages five
snapshots: the network with the best validation PR-AUC and the last four SWA networks.

:class:`WeightAveraging` keeps the running average (``torch.optim.swa_utils.AveragedModel``,
equal weights) and the last ``snapshots`` averaged networks with re-estimated batch norm
(``update_bn``), as state dicts the run saves and the pack uses as ensemble members.
:func:`average_state_dicts` is the same average computed at once.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

from trainer.strategies.base import StateDict


class WeightAveraging:
    """SWA of one network every ``every`` epochs from ``start_epoch`` on, with snapshots.

    Parameters
    ----------
    module
        The network being trained (not a ``DistributedDataParallel`` wrapper).
    every
        Epochs between two additions to the average (CP-JKU: 3).
    start_epoch
        Epochs that must be completed before the first addition.
    snapshots
        How many of the latest averaged networks to keep.
    """

    def __init__(
        self, module: nn.Module, *, every: int = 3, start_epoch: int = 0, snapshots: int = 4
    ) -> None:
        if every < 1:
            raise ValueError(f"SWA needs every >= 1, not {every}")
        self.every = every
        self.start_epoch = start_epoch
        self.keep = snapshots
        self.average = AveragedModel(module)
        self.snapshots: list[StateDict] = []

    @property
    def count(self) -> int:
        """How many weight sets are in the average."""
        return int(self.average.n_averaged)

    def due(self, epochs_done: int) -> bool:
        """Whether the weights after ``epochs_done`` epochs join the average."""
        since = epochs_done - self.start_epoch
        return since > 0 and since % self.every == 0

    def add(self, module: nn.Module) -> None:
        """Add ``module``'s current parameters to the average."""
        self.average.update_parameters(module)

    def snapshot(self, loader: Iterable[Any], device: torch.device | None = None) -> StateDict:
        """The averaged network with batch norm re-estimated on ``loader``, kept as the newest
        snapshot (the oldest beyond ``snapshots`` is dropped) and returned."""
        network = copy.deepcopy(self.average.module)
        update_bn(loader, network, device=device)
        state = {k: v.detach().to("cpu").clone() for k, v in network.state_dict().items()}
        self.snapshots = [*self.snapshots, state][-self.keep :] if self.keep else []
        return state

    def state_dict(self) -> dict[str, Any]:
        return {"average": self.average.state_dict(), "snapshots": self.snapshots}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.average.load_state_dict(state["average"])
        self.snapshots = list(state["snapshots"])


def average_state_dicts(
    states: Sequence[StateDict], *, weights: Sequence[float] | None = None
) -> StateDict:
    """The (weighted) mean of state dicts with the same keys; integer tensors (batch-norm
    counters) are taken from the last one."""
    if not states:
        raise ValueError("nothing to average")
    weights = [1.0] * len(states) if weights is None else list(weights)
    total = sum(weights)
    averaged = {}
    for key, last in states[-1].items():
        if torch.is_floating_point(last):
            mean = sum(w * s[key].double() for w, s in zip(weights, states, strict=True)) / total
            averaged[key] = mean.to(last.dtype)
        else:
            averaged[key] = last.clone()
    return averaged
