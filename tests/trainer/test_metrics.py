"""The MediaEval protocol: hand-computed values, agreement with scikit-learn, the CLI's output."""

import math

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

import moodlib
from trainer.cli import main
from trainer.metrics import (
    METRIC_NAMES,
    decide,
    evaluate,
    format_results,
    frequency_groups,
    head_middle_tail_pr_auc,
    optimal_thresholds,
)

# Two tags, four tracks.
# tag 0: positives score 0.9 and 0.4, negatives 0.8 and 0.1.
#   ROC-AUC: 3 of the 4 positive/negative pairs are ordered right -> 3/4.
#   AP: ranks +,-,+,- -> 0.5 * 1 + 0.5 * 2/3 = 5/6.
# tag 1: positives 0.7 and 0.6 above negatives 0.2 and 0.3 -> ROC-AUC 1, AP 1.
GROUNDTRUTH = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
PREDICTIONS = np.array([[0.9, 0.2], [0.8, 0.7], [0.4, 0.6], [0.1, 0.3]])
# tag 0: TP 1, FP 1, FN 1 -> P 1/2, R 1/2, F 1/2.
# tag 1: TP 2, FP 1, FN 0 -> P 2/3, R 1, F 4/5.
DECISIONS = np.array([[1, 0], [1, 1], [0, 1], [0, 1]], dtype=bool)

EXPECTED = {
    "ROC-AUC-macro": (3 / 4 + 1) / 2,
    "PR-AUC-macro": (5 / 6 + 1) / 2,
    "precision-macro": (1 / 2 + 2 / 3) / 2,
    "recall-macro": (1 / 2 + 1) / 2,
    "F-score-macro": (1 / 2 + 4 / 5) / 2,
    # Micro: all eight cells as one tag. Positives 0.9, 0.7, 0.6, 0.4 against negatives
    # 0.8, 0.3, 0.2, 0.1: 4 + 3 + 3 + 3 of 16 pairs right.
    "ROC-AUC-micro": 13 / 16,
    # Ranked: + - + + + - - -; precision at each positive 1, 2/3, 3/4, 4/5.
    "PR-AUC-micro": (1 + 2 / 3 + 3 / 4 + 4 / 5) / 4,
    # TP 3, FP 2, FN 1.
    "precision-micro": 3 / 5,
    "recall-micro": 3 / 4,
    "F-score-micro": 2 * (3 / 5) * (3 / 4) / (3 / 5 + 3 / 4),
}


def test_evaluate_matches_hand_computed_values_in_official_order():
    results = evaluate(GROUNDTRUTH, PREDICTIONS, DECISIONS)

    assert list(results) == list(METRIC_NAMES)
    for name, value in EXPECTED.items():
        assert results[name] == pytest.approx(value, abs=1e-12), name


def test_evaluate_without_decisions_reports_only_the_score_metrics():
    results = evaluate(GROUNDTRUTH, PREDICTIONS)

    assert list(results) == ["ROC-AUC-macro", "PR-AUC-macro", "ROC-AUC-micro", "PR-AUC-micro"]


def test_a_tag_without_positive_decisions_has_precision_zero():
    decisions = DECISIONS.copy()
    decisions[:, 1] = False

    results = evaluate(GROUNDTRUTH, PREDICTIONS, decisions)

    # tag 1 gets precision 0, recall 0, F 0; tag 0 keeps 1/2.
    assert results["precision-macro"] == pytest.approx(1 / 4)
    assert results["F-score-macro"] == pytest.approx(1 / 4)


def test_evaluate_equals_scikit_learn_on_56_random_tags():
    rng = np.random.default_rng(1)
    groundtruth = (rng.random((300, 56)) < 0.1).astype(int)
    groundtruth[:2] = [[1], [0]]  # every tag has a positive and a negative
    predictions = rng.random((300, 56)) + 0.3 * groundtruth
    decisions = predictions > 0.9

    results = evaluate(groundtruth, predictions, decisions)

    for average in ("macro", "micro"):
        assert results[f"ROC-AUC-{average}"] == roc_auc_score(
            groundtruth, predictions, average=average
        )
        assert results[f"PR-AUC-{average}"] == average_precision_score(
            groundtruth, predictions, average=average
        )
        precision, recall, f_score, _ = precision_recall_fscore_support(
            groundtruth, decisions, average=average
        )
        assert (results[f"precision-{average}"], results[f"recall-{average}"]) == (
            precision,
            recall,
        )
        assert results[f"F-score-{average}"] == f_score


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="predictions"):
        evaluate(GROUNDTRUTH, PREDICTIONS[:3])


def test_optimal_threshold_maximises_the_f_score():
    # Scores 0.9 0.8 0.7 0.3 0.2 with positives at 0.9 and 0.7. Thresholds (a score >= t is
    # positive): 0.9 -> P 1, R 1/2, F 2/3; 0.8 -> F 1/2; 0.7 -> P 2/3, R 1, F 4/5 (best);
    # 0.3 -> F 2/3; 0.2 -> F 4/7.
    groundtruth = np.array([[1], [0], [1], [0], [0]])
    predictions = np.array([[0.9], [0.8], [0.7], [0.3], [0.2]])

    assert optimal_thresholds(groundtruth, predictions) == pytest.approx([0.7])


def test_equal_f_scores_pick_the_lowest_threshold():
    # Positives at 0.8 and 0.2, negatives at 0.6 and 0.4: thresholds 0.8 and 0.2 both reach
    # F 2/3; scikit-learn lists thresholds in increasing order and argmax takes the first.
    groundtruth = np.array([[1], [0], [0], [1]])
    predictions = np.array([[0.8], [0.6], [0.4], [0.2]])

    assert optimal_thresholds(groundtruth, predictions) == pytest.approx([0.2])


def test_thresholds_are_per_tag():
    thresholds = optimal_thresholds(GROUNDTRUTH, PREDICTIONS)

    # tag 0 (scores 0.9 0.8 0.4 0.1, positives 0.9 0.4): t=0.9 gives F 2/3, t=0.4 gives
    # P 2/3, R 1, F 4/5 -> 0.4. tag 1 separates perfectly at 0.6.
    assert thresholds == pytest.approx([0.4, 0.6])


def test_a_score_equal_to_its_threshold_is_not_a_positive_decision():
    # The official script decides with ``predictions > thresholds``.
    decisions = decide(PREDICTIONS, np.array([0.4, 0.6]))

    assert decisions.tolist() == [[True, False], [True, True], [False, False], [False, False]]


def test_frequency_groups_follow_usc_sail_bounds():
    counts = np.array([551, 550, 201, 200, 1000, 5])

    groups = frequency_groups(counts)

    assert groups["head"].tolist() == [0, 4]
    assert groups["middle"].tolist() == [1, 2]
    assert groups["tail"].tolist() == [3, 5]


def test_head_middle_tail_pr_auc_is_the_macro_pr_auc_of_each_group():
    results = head_middle_tail_pr_auc(GROUNDTRUTH, PREDICTIONS, train_counts=np.array([600, 90]))

    assert results["PR-AUC-head"] == pytest.approx(5 / 6)
    assert math.isnan(results["PR-AUC-middle"])
    assert results["PR-AUC-tail"] == pytest.approx(1.0)


def test_format_results_writes_six_decimals():
    assert format_results({"ROC-AUC-macro": 0.875, "PR-AUC-macro": 11 / 12}) == (
        "ROC-AUC-macro\t0.875000\nPR-AUC-macro\t0.916667\n"
    )


@pytest.fixture
def matrices(tmp_path):
    paths = {}
    for name, matrix in [
        ("groundtruth", GROUNDTRUTH),
        ("predictions", PREDICTIONS),
        ("decisions", DECISIONS),
    ]:
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], matrix)
    return paths


EXPECTED_LINES = (
    "ROC-AUC-macro\t0.875000\n"
    "PR-AUC-macro\t0.916667\n"
    "precision-macro\t0.583333\n"
    "recall-macro\t0.750000\n"
    "F-score-macro\t0.650000\n"
    "ROC-AUC-micro\t0.812500\n"
    "PR-AUC-micro\t0.804167\n"
    "precision-micro\t0.600000\n"
    "recall-micro\t0.750000\n"
    "F-score-micro\t0.666667\n"
)


def test_cli_evaluate_prints_every_metric_and_writes_the_tsv(matrices, tmp_path, capsys):
    output = tmp_path / "results.tsv"

    status = main(
        [
            "evaluate",
            str(matrices["groundtruth"]),
            str(matrices["predictions"]),
            "-d",
            str(matrices["decisions"]),
            "-o",
            str(output),
        ]
    )

    assert status == 0
    assert capsys.readouterr().out == EXPECTED_LINES
    assert output.read_text() == EXPECTED_LINES


def test_cli_evaluate_without_decisions_prints_the_auc_lines(matrices, capsys):
    status = main(["evaluate", str(matrices["groundtruth"]), str(matrices["predictions"])])

    assert status == 0
    assert capsys.readouterr().out == (
        "ROC-AUC-macro\t0.875000\n"
        "PR-AUC-macro\t0.916667\n"
        "ROC-AUC-micro\t0.812500\n"
        "PR-AUC-micro\t0.804167\n"
    )


def test_cli_evaluate_reports_a_shape_mismatch_with_status_1(matrices, tmp_path, capsys):
    short = tmp_path / "short.npy"
    np.save(short, PREDICTIONS[:3])

    status = main(["evaluate", str(matrices["groundtruth"]), str(short)])

    assert status == 1
    assert "does not match the groundtruth" in capsys.readouterr().err


def test_cli_usage_errors_exit_with_2(capsys):
    assert main([]) == 2
    assert main(["evaluate", "only-one.npy"]) == 2
    assert main(["no-such-command"]) == 2


def test_cli_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"moodlib-train {moodlib.__version__}\n"
