"""The MediaEval "Emotions and Themes in Music" evaluation protocol (2019-2021).

This is the organisers' protocol, as their scripts in the MTG-Jamendo dataset repository compute
it (``scripts/mediaeval/evaluate.py`` and ``scripts/mediaeval2019/calculate_decisions.py``):

- ROC-AUC and PR-AUC, macro and micro averaged over the tags, from the scores
  (``roc_auc_score`` and ``average_precision_score`` of scikit-learn);
- one decision threshold per tag, the one that maximises that tag's F-score on the data it is
  fitted on (the validation set), read off ``precision_recall_curve``; a score counts as a
  positive decision when it is *strictly* above its tag's threshold, as in the official script;
- precision, recall and F-score, macro and micro, from those binary decisions
  (``precision_recall_fscore_support``; an undefined ratio counts as 0, which is what the
  official script's scikit-learn default gives, minus the warning).

A tag needs a positive and a negative track for its ROC-AUC to be defined, and then the macro
average is too. Every tag of the official split has both in every subset; a user's own labels
may not, so the trainer scores on :func:`defined_tags` (:func:`evaluate_defined`), and
:func:`optimal_thresholds` gives a tag without a positive a threshold no track reaches.

On top of the official metrics, :func:`head_middle_tail_pr_auc` is USC SAIL's breakdown
(Knox et al., MediaEval 2020): macro PR-AUC over the head, middle and tail tags, split by how often
each tag occurs in the training set (head: more than 550 tracks, middle: more than 200 and at most
550, tail: at most 200).

Every function takes numpy arrays shaped ``(n_tracks, n_tags)``, tags in the official order.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
)

AVERAGES = ("macro", "micro")

#: The official metric names, in the order the official script reports them.
METRIC_NAMES = tuple(
    f"{metric}-{average}"
    for average in AVERAGES
    for metric in ("ROC-AUC", "PR-AUC", "precision", "recall", "F-score")
)

#: USC SAIL's frequency bounds on training-set tag counts.
HEAD_ABOVE = 550
TAIL_AT_MOST = 200


def evaluate(
    groundtruth: np.ndarray, predictions: np.ndarray, decisions: np.ndarray | None = None
) -> dict[str, float]:
    """The official metrics, in the official order.

    Parameters
    ----------
    groundtruth
        Binary tag matrix ``(n_tracks, n_tags)``.
    predictions
        Scores of the same shape (any monotonic scale: probabilities or logits).
    decisions
        Optional binary decisions of the same shape; precision, recall and F-score are
        reported only when they are given.

    Returns
    -------
    ``{"ROC-AUC-macro": ..., "PR-AUC-macro": ..., ...}`` with the names of :data:`METRIC_NAMES`.
    """
    _check_same_shape(groundtruth, predictions=predictions, decisions=decisions)
    results: dict[str, float] = {}
    for average in AVERAGES:
        results[f"ROC-AUC-{average}"] = float(
            roc_auc_score(groundtruth, predictions, average=average)
        )
        results[f"PR-AUC-{average}"] = float(
            average_precision_score(groundtruth, predictions, average=average)
        )
        if decisions is not None:
            results.update(decision_metrics(groundtruth, decisions, average=average))
    return results


def defined_tags(groundtruth: np.ndarray) -> np.ndarray:
    """Indices of the tags with at least one positive and one negative track in ``groundtruth``
    ``(tracks, tags)``: those whose ROC-AUC is defined on these tracks.

    >>> defined_tags(np.array([[1, 0, 1], [0, 0, 1]])).tolist()
    [0]
    """
    positives = np.asarray(groundtruth).sum(axis=0)
    return np.flatnonzero((positives > 0) & (positives < len(groundtruth)))


def evaluate_defined(
    groundtruth: np.ndarray, predictions: np.ndarray, decisions: np.ndarray | None = None
) -> dict[str, float]:
    """:func:`evaluate` over the :func:`defined_tags` of ``groundtruth`` only (all of them on
    the official split), so that a tag without a positive or a negative track leaves the
    averages defined; ValueError when no tag has both."""
    _check_same_shape(groundtruth, predictions=predictions, decisions=decisions)
    tags = defined_tags(groundtruth)
    if not len(tags):
        raise ValueError("no tag has both a positive and a negative track to score")
    return evaluate(
        groundtruth[:, tags],
        predictions[:, tags],
        None if decisions is None else decisions[:, tags],
    )


def decision_metrics(
    groundtruth: np.ndarray, decisions: np.ndarray, *, average: str = "micro"
) -> dict[str, float]:
    """Precision, recall and F-score of binary ``decisions`` (``{"precision-micro": ...}``),
    ``micro`` or ``macro`` averaged, as :func:`evaluate` reports them."""
    _check_same_shape(groundtruth, decisions=decisions)
    precision, recall, f_score, _ = precision_recall_fscore_support(
        groundtruth, decisions, average=average, zero_division=0
    )
    return {
        f"precision-{average}": float(precision),
        f"recall-{average}": float(recall),
        f"F-score-{average}": float(f_score),
    }


def optimal_thresholds(groundtruth: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Per-tag thresholds that maximise each tag's F-score on these tracks.

    For each tag, the candidate thresholds are those of ``precision_recall_curve``; the one with
    the highest F-score wins (the first of equals, as ``np.argmax`` picks). Fit them on the
    validation set and apply them to the test set with :func:`decide`.

    Returns
    -------
    Thresholds, shape ``(n_tags,)``.
    """
    _check_same_shape(groundtruth, predictions=predictions)
    thresholds = np.empty(groundtruth.shape[1], dtype=np.float64)
    for tag in range(groundtruth.shape[1]):
        if not groundtruth[:, tag].any():
            # A step in float32, the precision the app's Tagger compares in.
            highest = np.float32(np.max(predictions[:, tag]))
            thresholds[tag] = np.nextafter(highest, np.float32(np.inf))
            continue
        precision, recall, candidates = precision_recall_curve(
            groundtruth[:, tag], predictions[:, tag]
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            f_score = np.nan_to_num(2 * precision * recall / (precision + recall))
        # The curve's last point (precision 1, recall 0) has no threshold; its F-score is 0, so
        # argmax lands on it only when every F-score is 0, and then index 0 comes first.
        thresholds[tag] = candidates[np.argmax(f_score)]
    return thresholds


def decide(predictions: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Binary decisions: a score strictly above its tag's threshold (the official rule)."""
    return predictions > np.asarray(thresholds)


def frequency_groups(
    train_counts: np.ndarray, *, head_above: int = HEAD_ABOVE, tail_at_most: int = TAIL_AT_MOST
) -> dict[str, np.ndarray]:
    """Split the tags into head, middle and tail by their training-set counts (USC SAIL's rule).

    Parameters
    ----------
    train_counts
        Number of training tracks carrying each tag, shape ``(n_tags,)``.
    head_above
        A tag with more training tracks than this is a head tag.
    tail_at_most
        A tag with at most this many training tracks is a tail tag; the rest are middle tags.

    Returns
    -------
    ``{"head": indices, "middle": indices, "tail": indices}``, tag indices in increasing order.
    """
    counts = np.asarray(train_counts)
    return {
        "head": np.flatnonzero(counts > head_above),
        "middle": np.flatnonzero((counts > tail_at_most) & (counts <= head_above)),
        "tail": np.flatnonzero(counts <= tail_at_most),
    }


def head_middle_tail_pr_auc(
    groundtruth: np.ndarray,
    predictions: np.ndarray,
    train_counts: np.ndarray,
    *,
    head_above: int = HEAD_ABOVE,
    tail_at_most: int = TAIL_AT_MOST,
) -> dict[str, float]:
    """Macro PR-AUC over the head, middle and tail tags (USC SAIL, Knox et al. 2020, Table 2).

    Returns
    -------
    ``{"PR-AUC-head": ..., "PR-AUC-middle": ..., "PR-AUC-tail": ...}``; a group without tags
    is NaN.
    """
    _check_same_shape(groundtruth, predictions=predictions)
    if len(train_counts) != groundtruth.shape[1]:
        raise ValueError(
            f"{len(train_counts)} training counts for {groundtruth.shape[1]} tags in the matrices"
        )
    groups = frequency_groups(train_counts, head_above=head_above, tail_at_most=tail_at_most)
    return {
        f"PR-AUC-{group}": float(
            average_precision_score(groundtruth[:, tags], predictions[:, tags], average="macro")
        )
        if len(tags)
        else float("nan")
        for group, tags in groups.items()
    }


def format_results(results: dict[str, float]) -> str:
    """One ``NAME<TAB>VALUE`` line per metric, six decimals, as the official results TSV."""
    return "".join(f"{name}\t{value:.6f}\n" for name, value in results.items())


def _check_same_shape(groundtruth: np.ndarray, **matrices: np.ndarray | None) -> None:
    if groundtruth.ndim != 2:
        raise ValueError(
            f"the groundtruth must be (tracks, tags); its shape is {groundtruth.shape}"
        )
    for name, matrix in matrices.items():
        if matrix is not None and matrix.shape != groundtruth.shape:
            raise ValueError(
                f"the {name} matrix's shape {matrix.shape} does not match the groundtruth's "
                f"{groundtruth.shape}"
            )
