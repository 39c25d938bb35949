"""Training on a user's own labels, where a tag may have no positive validation track.

Its ROC-AUC is then undefined, and so was the macro average every epoch: no epoch was ever the
best, no weights were kept, and the run crashed on ``load_state_dict(None)`` (the noisy student
already when its teacher labelled the unlabeled tracks). The metrics now read the tags a
subset can score, the run says which it leaves out, and every recipe family finishes.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from moodlib.vocabulary import TAGS
from trainer.context import RunOptions
from trainer.ensemble import thresholds_and_metrics
from trainer.loop import run
from trainer.metrics import defined_tags, evaluate_defined, optimal_thresholds
from trainer.recipe import load_recipe

FAMILIES = [
    "mediaeval_baseline",
    "cpjku2019_faresnet",
    "hcmus2020_effnetb0_specaug",
    "usc2020_shortchunk_db",
    "selab2021_coteaching",
    "mirable2021_short_hpcp",
    "mirable2021_long_hpcp_noisy",
]
"""One recipe of each family: the baseline, FA-ResNet, EfficientNet, the short-chunk ResNet,
co-teaching, and the CRNN alone and as a noisy student."""


# -- the metrics ---------------------------------------------------------------------------------


def test_only_tags_with_a_positive_and_a_negative_track_are_scored():
    truth = np.array([[1, 0, 1, 0], [0, 0, 1, 1], [1, 0, 1, 0]])
    scores = np.array([[0.9, 0.5, 0.8, 0.1], [0.2, 0.4, 0.7, 0.6], [0.6, 0.3, 0.9, 0.3]])

    metrics = evaluate_defined(truth, scores)

    # Tag 1 has no positive and tag 2 no negative; tags 0 and 3 are ranked perfectly.
    assert defined_tags(truth).tolist() == [0, 3]
    assert metrics["ROC-AUC-macro"] == 1.0 and metrics["PR-AUC-macro"] == 1.0


def test_no_track_reaches_the_threshold_of_a_tag_without_a_positive():
    truth = np.array([[1, 0], [0, 0], [1, 0]])
    scores = np.array([[0.9, 0.2], [0.1, 0.7], [0.8, 0.4]], dtype=np.float32)

    thresholds = optimal_thresholds(truth, scores)

    assert thresholds[1] > 0.7 and np.float32(thresholds[1]) > np.float32(0.7)
    assert thresholds[1] == pytest.approx(0.7)


def test_ensemble_metrics_leave_out_what_a_subset_cannot_score():
    truth = np.array([[1, 0, 0], [0, 0, 1], [1, 0, 1], [0, 0, 0]])
    scores = np.array([[0.9, 0.2, 0.1], [0.1, 0.7, 0.9], [0.8, 0.4, 0.8], [0.3, 0.1, 0.2]])

    thresholds, metrics = thresholds_and_metrics(
        {"validation": [scores], "test": [scores]}, {"validation": truth, "test": truth}, [1.0]
    )

    # Tags 0 and 2 are ranked perfectly; tag 1, without a positive, is decided for no track.
    assert metrics["test"]["ROC-AUC-macro"] == 1.0
    assert (scores[:, 1] < thresholds[1]).all()
    assert metrics["test"]["precision-macro"] == 1.0


# -- every recipe family --------------------------------------------------------------------------


def log_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "log.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", FAMILIES)
def test_every_recipe_family_keeps_its_best_weights_when_a_tag_has_no_validation_positive(
    name, unseen_tag_dataset, tmp_path, caplog
):
    data, unseen_tag = unseen_tag_dataset
    short = load_recipe(name, short=True)
    recipe = load_recipe(
        name, short=True, overrides={"train": {"epochs": min(2, short.train.epochs)}}
    )
    options = RunOptions(data_dir=data, out_dir=tmp_path / name, show_progress=False)

    with caplog.at_level(logging.WARNING, logger="trainer"):
        outcome = run(recipe, options)

    assert outcome.finished
    assert unseen_tag in caplog.text
    result = json.loads((outcome.run_dir / "result.json").read_text())
    assert result["unscored_tags"]["validation"] == [unseen_tag]
    # Every epoch was scored, so each network kept the weights of its best one.
    rows = log_rows(outcome.run_dir)
    assert rows and all(math.isfinite(float(row["ROC-AUC-macro"])) for row in rows)
    stages = {row["stage"] for row in rows}
    for stage in stages:
        checkpoint = torch.load(outcome.run_dir / stage / "checkpoint.pt", weights_only=True)
        for state in checkpoint["trainees"].values():
            assert state["best_state"] is not None and state["best_epoch"] >= 0
    for metrics in [result["metrics"], *result["members"]]:
        assert math.isfinite(metrics["validation"]["ROC-AUC-macro"])
        assert math.isfinite(metrics["test"]["ROC-AUC-macro"])
    assert len(result["unscored_tags"]["test"]) > 1
    # The pack's threshold of the unseen tag gives it to no validation track.
    unseen = TAGS.index(unseen_tag)
    folder = outcome.run_dir / "predictions" / "validation"
    scores = sum(
        weight * np.load(folder / f"{member}.npy")[:, unseen]
        for member, weight in result["ensemble"].items()
    )
    assert (scores < result["thresholds"][unseen]).all()
