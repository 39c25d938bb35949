"""Scoring trained networks: validation every epoch, and the run's final result.

- :func:`predict`: a network's track probabilities, ``(tracks, 56)``: the mean of its sigmoid
  outputs over each track's segments, cut as the exported pack cuts a track (the recipe's
  ``segmenting``), so that validation scores are the app's scores. Under ``torchrun`` the
  tracks are split between the processes and gathered.
- :func:`validate`: the official metrics (:mod:`trainer.metrics`) of a network on the
  validation tracks, the selection metric among them.
- :func:`finalize`: every kept network scored on validation and test, the exported ones
  weighed, per-tag thresholds fitted on validation, members, predictions and
  ``result.json`` written (rank 0).

Every metric here reads the tags with a positive and a negative track in the subset scored
(:func:`trainer.metrics.evaluate_defined`): on a user's own labels a tag may have no positive
validation track, and its ROC-AUC, undefined, would make the macro average NaN on every epoch,
so that no epoch would ever be the best. :func:`unscored_tags` names the tags left out;
``result.json`` lists them per subset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import math
from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader, Subset

import moodlib
from moodlib.audio.frontend import build_frontend
from moodlib.models import build_model
from moodlib.vocabulary import TAGS
from trainer.context import Context
from trainer.data.tracks import SegmentDataset, collate_segments
from trainer.ensemble import combine, fit_weights, thresholds_and_metrics
from trainer.metrics import defined_tags, evaluate_defined, head_middle_tail_pr_auc
from trainer.rundir import RESULT, RunError
from trainer.strategies.base import Members

log = logging.getLogger("trainer")


def unscored_tags(groundtruth: np.ndarray) -> list[str]:
    """The tags without a positive or without a negative track in ``groundtruth``, which the
    metrics leave out."""
    kept = set(defined_tags(groundtruth).tolist())
    return [tag for index, tag in enumerate(TAGS) if index not in kept]


def predict(context: Context, module: nn.Module, dataset: SegmentDataset) -> np.ndarray:
    """Track probabilities ``(tracks, 56)``: the mean over each track's segments of the
    network's sigmoid outputs, the tracks shared between the processes and gathered."""
    processes = context.processes
    indices = list(range(processes.rank, len(dataset), processes.world_size))
    segmenting = context.recipe.data.segmenting
    per_track = {"uniform": segmenting.count or 1, "center": 1}.get(segmenting.mode, 8)
    budget = context.recipe.data.eval_batch_segments
    loader = DataLoader(
        Subset(dataset, indices),
        batch_size=max(1, budget // per_track),
        collate_fn=collate_segments,
        num_workers=context.options.workers,
    )
    was_training = module.training
    module.eval()
    rows = []
    autocast = context.autocast
    with torch.inference_mode():
        for segments, counts, _ in loader:
            probabilities = []
            for chunk in segments.split(budget):
                chunk = chunk.to(context.device, non_blocking=True)
                with autocast() if autocast else contextlib.nullcontext():
                    logits = module(chunk)
                probabilities.append(torch.sigmoid(logits.float()).cpu())
            for track in torch.cat(probabilities).split(counts):
                rows.append(track.mean(dim=0).numpy())
    module.train(was_training)
    local = np.stack(rows) if rows else np.zeros((0, 56), np.float32)
    gathered = processes.gather((indices, local))
    result = np.zeros((len(dataset), 56), dtype=np.float32)
    for part_indices, part in gathered:
        result[part_indices] = part
    return result


def validate(context: Context, module: nn.Module) -> dict[str, float]:
    """The official metrics of ``module`` on the validation tracks (their scored tags)."""
    probabilities = predict(context, module, context.validation)
    return evaluate_defined(context.validation.targets, probabilities)


def finalize(context: Context, members: Members) -> dict[str, Any] | None:
    """Score every member on validation and test, weigh the exported ones, fit thresholds on
    validation, write the members, predictions and ``result.json``; return the result (rank 0;
    the other processes get None)."""
    recipe = context.recipe
    split = context.split
    processes = context.processes
    predictions: dict[str, dict[str, np.ndarray]] = {"validation": {}, "test": {}}
    groundtruth = {subset: split.targets(subset) for subset in predictions}
    datasets = {
        subset: SegmentDataset(
            split.inputs(split.subsets[subset]),
            groundtruth[subset],
            segmenting=recipe.data.segmenting,
        )
        for subset in predictions
    }
    for name, (spec, state) in members.items():
        module = build_model(spec.architecture, **spec.config).to(context.device)
        module.load_state_dict(state)
        for subset, dataset in datasets.items():
            predictions[subset][name] = predict(context, module, dataset)
    if not processes.main:
        processes.barrier()
        return None

    exported = select_members(members, recipe.export.members)
    weights = _ensemble_weights(
        context, {n: predictions["validation"][n] for n in exported}, groundtruth["validation"]
    )
    thresholds, metrics = thresholds_and_metrics(
        {subset: [predictions[subset][n] for n in exported] for subset in predictions},
        groundtruth,
        weights,
    )
    test_scores = combine([predictions["test"][n] for n in exported], weights)
    scored = defined_tags(groundtruth["test"])
    metrics["test"].update(
        head_middle_tail_pr_auc(
            groundtruth["test"][:, scored], test_scores[:, scored], context.train_counts[scored]
        )
    )
    _save(context.run_dir, members, predictions, groundtruth)
    result = {
        "recipe": recipe.name,
        "recipe_source": recipe.source,
        "paper": dataclasses.asdict(recipe.paper),
        "frontend": build_frontend(recipe.frontend).config(),
        "segmenting": recipe.data.segmenting.to_dict(),
        "inputs": list(split.sources),
        "members": [
            {
                "name": name,
                "architecture": spec.architecture,
                "config": spec.config,
                "weights": f"members/{name}.safetensors",
                **{
                    subset: evaluate_defined(groundtruth[subset], predictions[subset][name])
                    for subset in predictions
                },
            }
            for name, (spec, _) in members.items()
        ],
        "ensemble": {name: float(w) for name, w in zip(exported, weights, strict=True)},
        "thresholds": [float(t) for t in thresholds],
        "metrics": metrics,
        "unscored_tags": {subset: unscored_tags(groundtruth[subset]) for subset in predictions},
        "data": {"folder": str(context.options.data_dir), "split": context.options.split},
        "epochs": recipe.train.epochs,
        "seed": recipe.train.seed,
        "moodlib": moodlib.__version__,
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    (context.run_dir / RESULT).write_text(
        json.dumps(_without_nan(result), indent=2) + "\n", encoding="utf-8"
    )
    log.info(
        "%s: test PR-AUC-macro %.4f, ROC-AUC-macro %.4f (paper: %s)",
        recipe.name,
        metrics["test"]["PR-AUC-macro"],
        metrics["test"]["ROC-AUC-macro"],
        ", ".join(f"{k} {v}" for k, v in recipe.paper.metrics.items()) or "no numbers",
    )
    processes.barrier()
    return result


def _save(
    run_dir: Path,
    members: Members,
    predictions: dict[str, dict[str, np.ndarray]],
    groundtruth: dict[str, np.ndarray],
) -> None:
    """``members/NAME.safetensors`` and ``predictions/SUBSET/{NAME,groundtruth}.npy``."""
    members_dir = run_dir / "members"
    members_dir.mkdir(parents=True, exist_ok=True)
    for name, (_, state) in members.items():
        tensors = {k: v.contiguous() for k, v in state.items()}
        save_file(tensors, str(members_dir / f"{name}.safetensors"))
    for subset in predictions:
        folder = run_dir / "predictions" / subset
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "groundtruth.npy", groundtruth[subset])
        for name, matrix in predictions[subset].items():
            np.save(folder / f"{name}.npy", matrix)


def _ensemble_weights(
    context: Context, validation: dict[str, np.ndarray], groundtruth: np.ndarray
) -> np.ndarray:
    """The weights of the exported members (their ``validation`` probabilities by name):
    ``equal``, the recipe's numbers, or ``fit`` on validation by the selection metric."""
    weights = context.recipe.export.weights
    if weights == "fit":
        metric = context.recipe.train.selection_metric
        return fit_weights(list(validation.values()), groundtruth, metric=metric)
    if weights == "equal":
        return np.full(len(validation), 1.0 / len(validation))
    if len(weights) != len(validation):
        raise RunError(f"{len(weights)} export weights for members {list(validation)}")
    return np.asarray(weights, dtype=np.float64)


def _without_nan(value: Any) -> Any:
    """JSON has no NaN: an undefined metric (a frequency group without tags) becomes null."""
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def select_members(members: Sequence[str] | dict[str, Any], patterns: Sequence[str]) -> list[str]:
    """Member names matching ``patterns`` (``fnmatch``), in pattern order, each once."""
    chosen: list[str] = []
    for pattern in patterns:
        chosen += [name for name in members if fnmatch(name, pattern) and name not in chosen]
    if not chosen:
        raise RunError(f"no trained network matches the export members {list(patterns)}")
    return chosen
