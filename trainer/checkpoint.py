"""Checkpoints and random state: what lets a resumed run end as an uninterrupted one would.

``RUN/STAGE/checkpoint.pt`` is the resume point of one stage, written after every epoch: the
epochs done, whether the stage finished, each network's state (weights, optimiser, phase,
schedule, best weights and score, SWA average and snapshots: ``Trainee.state_dict`` of
:mod:`trainer.loop`) and the random generators of every process (torch, CUDA, numpy, Python). Rank 0
writes it through a temporary file and a rename, so an interruption leaves the previous one;
on resume every process gets its own generators back. Checkpoints are read with
``torch.load(weights_only=True)``: tensors and plain types only.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.processes import Processes
from trainer.rundir import RunError

log = logging.getLogger("trainer")

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class Checkpoint:
    """What a stage's checkpoint holds, as read back."""

    epochs_done: int
    finished: bool
    networks: dict[str, dict[str, Any]]
    """Each network's state by name."""


def save_checkpoint(path: Path, checkpoint: Checkpoint, processes: Processes) -> None:
    """Write ``checkpoint`` and every process's random state to ``path`` (rank 0 writes)."""
    rng = processes.gather(rng_state())
    if processes.main:
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "epochs_done": checkpoint.epochs_done,
            "finished": checkpoint.finished,
            "trainees": checkpoint.networks,
            "rng": rng,
        }
        temporary = path.with_suffix(".tmp")
        torch.save(state, temporary)
        os.replace(temporary, path)
    processes.barrier()


def load_checkpoint(path: Path, processes: Processes) -> Checkpoint:
    """Read ``path`` and restore this process's random state from it.

    A checkpoint written by a different number of processes loads, but the random streams
    restart (with a warning): they cannot be split or merged.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise RunError(f"{path}: cannot read the checkpoint ({error})") from error
    rng = state["rng"]
    if len(rng) == processes.world_size:
        set_rng_state(rng[processes.rank])
    elif processes.main:
        log.warning("%s was written by %d processes: random streams restart", path, len(rng))
    return Checkpoint(int(state["epochs_done"]), bool(state["finished"]), state["trainees"])


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    random.setstate(state["python"])
