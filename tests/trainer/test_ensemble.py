"""Ensemble weights fitted on validation predictions."""

import numpy as np
import pytest

from trainer.ensemble import combine, fit_weights, thresholds_and_metrics
from trainer.metrics import evaluate


@pytest.fixture
def validation():
    rng = np.random.default_rng(0)
    groundtruth = (rng.random((300, 8)) < 0.15).astype(np.float32)
    groundtruth[0] = 1
    good = np.clip(groundtruth * 0.6 + rng.random(groundtruth.shape) * 0.5, 0, 1)
    noise = rng.random(groundtruth.shape)
    return groundtruth, good, noise


def test_combine_is_the_normalised_weighted_mean():
    a, b = np.full((2, 3), 0.2), np.full((2, 3), 0.8)

    assert combine([a, b], [3, 1]) == pytest.approx(np.full((2, 3), 0.35))


def test_the_fitted_weights_favour_the_better_model(validation):
    groundtruth, good, noise = validation

    weights = fit_weights([noise, good], groundtruth)

    assert weights.sum() == pytest.approx(1.0)
    assert (weights >= 0).all()
    assert weights[1] > 0.8
    fitted = evaluate(groundtruth, combine([noise, good], weights))["PR-AUC-macro"]
    assert fitted >= evaluate(groundtruth, good)["PR-AUC-macro"]
    assert fitted > evaluate(groundtruth, combine([noise, good], [0.5, 0.5]))["PR-AUC-macro"]


def test_two_complementary_models_share_the_weight(validation):
    groundtruth, _, _ = validation
    rng = np.random.default_rng(1)
    left = groundtruth.copy()
    left[:, 4:] = rng.random((300, 4))
    right = groundtruth.copy()
    right[:, :4] = rng.random((300, 4))

    weights = fit_weights([left, right], groundtruth)

    assert 0.2 < weights[0] < 0.8
    assert evaluate(groundtruth, combine([left, right], weights))["PR-AUC-macro"] > max(
        evaluate(groundtruth, m)["PR-AUC-macro"] for m in (left, right)
    )


def test_a_single_member_weighs_one(validation):
    groundtruth, good, _ = validation

    assert fit_weights([good], groundtruth).tolist() == [1.0]


def test_thresholds_are_fitted_on_validation_and_applied_to_test(validation):
    groundtruth, good, noise = validation

    thresholds, metrics = thresholds_and_metrics(
        {"validation": [good], "test": [noise]},
        {"validation": groundtruth, "test": groundtruth},
        [1.0],
    )

    assert thresholds.shape == (8,)
    assert metrics["validation"]["F-score-macro"] > metrics["test"]["F-score-macro"]
