"""The run folder: claiming it, and the per-epoch log written into it.

::

    RUN/recipe.json            the merged recipe (a resumed run must match it)
    RUN/log.csv                one row per network and epoch: lr, loss, validation metrics
    RUN/tensorboard/           the same scalars, when tensorboard is installed
    RUN/STAGE/checkpoint.pt    the resume point of a stage (:mod:`trainer.checkpoint`)
    RUN/members/NAME.safetensors, RUN/predictions/{validation,test}/NAME.npy
    RUN/result.json            ensemble members and weights, thresholds, metrics
                               (:func:`trainer.evaluation.finalize`)

Only rank 0 writes here; every process learns whether the folder could be claimed, so that all
of them stop on a refusal.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from trainer import TrainerError
from trainer.processes import Processes
from trainer.recipe import Recipe

log = logging.getLogger("trainer")

RESULT = "result.json"
RECIPE_FILE = "recipe.json"
LOG_METRICS = ("ROC-AUC-macro", "PR-AUC-macro", "ROC-AUC-micro", "PR-AUC-micro")


class RunError(TrainerError):
    """A run that cannot start or go on (a run folder in the way, a changed recipe)."""


def prepare_run_dir(recipe: Recipe, run_dir: Path, resume: bool, processes: Processes) -> None:
    """Rank 0 checks the folder (and writes the recipe into a new one); every process gets
    its verdict, and raises :class:`RunError` on a refusal."""
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
        """One row: ``stage``, ``epoch``, ``network`` and any of the other :attr:`FIELDS`."""
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
