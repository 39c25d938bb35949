"""Ensemble weights fitted on the validation set.

SELAB-HCMUS (2021) found their 0.65/0.35 weights "by linear optimization" on the validation
set, Mirable (2021) searched their ``alpha`` on it, HCMUS (2020) picked 0.7/0.3 the same way.
:func:`fit_weights` does that for any number of members: non-negative weights summing to 1 that
maximise a validation metric (PR-AUC-macro by default) of the weighted mean of the members'
probabilities, which is how the app's Tagger combines pack members.

The search is coordinate ascent on a grid: start from equal weights; in turn, set each member's
share to every grid value (the others keep their proportions), keep the best; repeat until a
whole round improves nothing. The metric is a ranking measure, piecewise constant in the
weights, so a gradient method has nothing to follow; the grid search is deterministic and for
two members it is an exhaustive search of ``alpha`` on the grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from trainer.metrics import decide, defined_tags, evaluate_defined, optimal_thresholds

Score = Callable[[np.ndarray, np.ndarray], float]

GRID = np.round(np.linspace(0.0, 1.0, 21), 2)


def combine(predictions: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The weighted mean of member predictions ``(tracks, tags)``."""
    weights = np.asarray(weights, dtype=np.float64)
    if len(weights) != len(predictions):
        raise ValueError(f"{len(weights)} weights for {len(predictions)} members")
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, not {weights}")
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in predictions])
    return np.tensordot(weights / weights.sum(), stacked, axes=1)


def metric_score(metric: str = "PR-AUC-macro") -> Score:
    """``score(groundtruth, predictions)``: one of the official ROC-AUC / PR-AUC metrics
    (the same computation as :func:`trainer.metrics.evaluate`, without the others)."""
    name, _, average = metric.rpartition("-")
    scorers = {"ROC-AUC": roc_auc_score, "PR-AUC": average_precision_score}
    if name not in scorers or average not in ("macro", "micro"):
        raise ValueError(f"cannot fit ensemble weights on {metric!r}")
    scorer = scorers[name]
    return lambda groundtruth, predictions: float(scorer(groundtruth, predictions, average=average))


def fit_weights(
    predictions: Sequence[np.ndarray],
    groundtruth: np.ndarray,
    *,
    metric: str = "PR-AUC-macro",
    grid: np.ndarray = GRID,
    max_rounds: int = 10,
) -> np.ndarray:
    """Non-negative weights, summing to 1, that maximise ``metric`` of the weighted mean.

    Parameters
    ----------
    predictions
        One ``(tracks, tags)`` probability matrix per member, on the validation tracks.
    groundtruth
        Binary ``(tracks, tags)``; the metric reads the tags with a positive and a negative
        track only (:func:`trainer.metrics.defined_tags`).
    metric
        A :func:`trainer.metrics.evaluate` name.
    grid
        Shares in [0, 1] tried for each member.
    max_rounds
        Upper bound on the rounds over all members.

    Returns
    -------
    Weights ``(members,)``; a single member gets ``[1.0]``.
    """
    count = len(predictions)
    if count == 0:
        raise ValueError("no member predictions to weigh")
    weights = np.full(count, 1.0 / count)
    if count == 1:
        return weights
    tags = defined_tags(groundtruth)
    groundtruth = groundtruth[:, tags]
    predictions = [p[:, tags] for p in predictions]
    score = metric_score(metric)
    best = score(groundtruth, combine(predictions, weights))
    for _ in range(max_rounds):
        improved = False
        for member in range(count):
            for share in grid:
                candidate = _with_share(weights, member, float(share))
                if candidate is None:
                    continue
                value = score(groundtruth, combine(predictions, candidate))
                if value > best + 1e-12:
                    best, weights, improved = value, candidate, True
        if not improved:
            break
    return weights


def _with_share(weights: np.ndarray, member: int, share: float) -> np.ndarray | None:
    others = np.delete(weights, member)
    rest = others.sum()
    if rest <= 0:
        if share < 1.0:
            # The others have no proportions left to keep; split the rest evenly.
            others = np.full(len(others), 1.0)
            rest = others.sum()
        else:
            return None
    candidate = np.insert(others / rest * (1.0 - share), member, share)
    return candidate if candidate.sum() > 0 else None


def thresholds_and_metrics(
    predictions: dict[str, Sequence[np.ndarray]],
    groundtruth: dict[str, np.ndarray],
    weights: Sequence[float],
) -> tuple[np.ndarray, dict[str, dict[str, float]]]:
    """F-optimal thresholds of the weighted ensemble on ``"validation"`` and the official
    metrics of every subset with the decisions they give, over the tags with a positive and a
    negative track in that subset (:func:`trainer.metrics.evaluate_defined`).

    Parameters
    ----------
    predictions
        Per subset (``"validation"``, ``"test"``), the members' probabilities in weight order.
    groundtruth
        Per subset, the binary tag matrix.
    weights
        Ensemble weights, one per member.
    """
    ensemble = {subset: combine(members, weights) for subset, members in predictions.items()}
    thresholds = optimal_thresholds(groundtruth["validation"], ensemble["validation"])
    metrics = {
        subset: evaluate_defined(groundtruth[subset], scores, decide(scores, thresholds))
        for subset, scores in ensemble.items()
    }
    return thresholds, metrics
