"""A finished run, or several, turned into a model pack the app loads.

One run: the pack holds the networks its recipe exports (``[export] members``) with the
ensemble weights and per-tag thresholds :func:`trainer.evaluation.finalize` fitted on the validation
set, the frontend the networks were trained on, and the recipe's evaluation segments.

Several runs (say the five initialisations CP-JKU average, or Mirable's short and long
models): the exported members of every run, with weights fitted anew on the validation set
(:func:`trainer.ensemble.fit_weights`) and thresholds fitted on the new ensemble. The runs must
share the frontend, the inputs and the segmenting, since a pack cuts a track one way.

The provenance names the recipes, the papers and the rows they reproduce with the reported
numbers, and our validation and test metrics.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import load_file

import moodlib
from moodlib import vocabulary
from moodlib.packs import Member, Pack, Segmenting, manifest_dict
from moodlib.packstore import PackStore
from trainer import TrainerError
from trainer.ensemble import fit_weights, thresholds_and_metrics
from trainer.rundir import RESULT

SUBSETS = ("validation", "test")


class ExportError(TrainerError):
    """A run that cannot be exported (unfinished, or incompatible with the others)."""


def read_result(run_dir: Path) -> dict[str, Any]:
    """The ``result.json`` of a finished run."""
    path = Path(run_dir) / RESULT
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{run_dir}: no {RESULT}; the run has not finished") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ExportError(f"{path}: unreadable ({error})") from error


def export_runs(
    runs: Sequence[str | Path],
    *,
    name: str,
    store_dir: str | Path | None = None,
    version: str = "1.0",
    description: str | None = None,
) -> Pack:
    """Write the pack ``name`` made of ``runs`` into the pack store (``store_dir`` or the
    user's packs folder) and return it, loaded and verified."""
    if not runs:
        raise ExportError("no run to export")
    run_dirs = [Path(run) for run in runs]
    results = [read_result(run) for run in run_dirs]
    first = results[0]
    for run, result in zip(run_dirs[1:], results[1:], strict=True):
        for key in ("frontend", "segmenting", "inputs"):
            if result[key] != first[key]:
                raise ExportError(f"{run}: its {key} differs from {run_dirs[0]}'s")

    entries = []  # (pack member name, run folder, run member record)
    for run, result in zip(run_dirs, results, strict=True):
        records = {record["name"]: record for record in result["members"]}
        for member in result["ensemble"]:
            pack_name = member if len(runs) == 1 else f"{result['recipe']}-{member}"
            if any(pack_name == entry[0] for entry in entries):
                pack_name = f"{pack_name}-{len(entries)}"
            entries.append((pack_name, run, records[member]))

    if len(runs) == 1:
        weights = np.array(list(first["ensemble"].values()), dtype=np.float64)
        thresholds = np.array(first["thresholds"])
        metrics = first["metrics"]
    else:
        predictions, groundtruth = _predictions(entries)
        weights = fit_weights(predictions["validation"], groundtruth["validation"])
        thresholds, metrics = thresholds_and_metrics(predictions, groundtruth, weights)

    members = [
        Member(
            name=pack_name,
            architecture=record["architecture"],
            weights=f"{pack_name}.safetensors",
            config=record["config"],
            weight=round(float(weight), 6),
        )
        for (pack_name, _, record), weight in zip(entries, weights, strict=True)
    ]
    manifest = manifest_dict(
        name=name,
        version=version,
        description=description or _description(results),
        tags=vocabulary.TAGS,
        covered=vocabulary.TAGS,
        frontend=first["frontend"],
        segmenting=Segmenting(**first["segmenting"]),
        members=members,
        thresholds={tag: float(t) for tag, t in zip(vocabulary.TAGS, thresholds, strict=True)},
        embedding_member=members[int(np.argmax(weights))].name,
        provenance=_provenance(run_dirs, results, metrics),
    )
    weight_files = {
        f"{pack_name}.safetensors": load_file(str(run / record["weights"]))
        for pack_name, run, record in entries
    }
    return PackStore(user_dir=store_dir).add(name, manifest, weight_files)


def _predictions(
    entries: list[tuple[str, Path, dict[str, Any]]],
) -> tuple[dict[str, list[np.ndarray]], dict[str, np.ndarray]]:
    predictions: dict[str, list[np.ndarray]] = {subset: [] for subset in SUBSETS}
    groundtruth: dict[str, np.ndarray] = {}
    for _, run, record in entries:
        for subset in SUBSETS:
            folder = run / "predictions" / subset
            truth = np.load(folder / "groundtruth.npy")
            if subset in groundtruth and not np.array_equal(truth, groundtruth[subset]):
                raise ExportError(f"{run}: its {subset} tracks differ from the other runs'")
            groundtruth[subset] = truth
            predictions[subset].append(np.load(folder / f"{record['name']}.npy"))
    return predictions, groundtruth


def _description(results: list[dict[str, Any]]) -> str:
    rows = "; ".join(
        f"{r['recipe']} ({r['paper']['citation']}, {r['paper']['row']})" for r in results
    )
    return f"Trained by moodlib-train: {rows}"


def _provenance(
    run_dirs: list[Path], results: list[dict[str, Any]], metrics: dict[str, Any]
) -> dict[str, Any]:
    return {
        "trainer": f"moodlib-train {moodlib.__version__}",
        "exported": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "runs": [
            {
                "folder": str(run),
                "recipe": result["recipe"],
                "paper": result["paper"],
                "data": result["data"],
                "seed": result["seed"],
                "epochs": result["epochs"],
            }
            for run, result in zip(run_dirs, results, strict=True)
        ],
        "metrics": metrics,
    }
