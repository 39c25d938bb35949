"""How many tags to write per file: candidate write policies on the official baseline's test set.

The MTG-Jamendo repository publishes what the official baseline predicted for the 4 231 test
tracks of split-0, the ground truth, and the F-optimal per-tag thresholds its decisions used.
Each candidate policy turns the scores into the tags a file would get; the table gives the
official protocol's precision, recall and F-score (``trainer.metrics.decision_metrics``), micro and
macro, the tags per track, the share of tracks left without a tag and how many of the 56 tags
are ever written. The policy moodlib uses is measured through its own code
(``moodlib.vocabulary.tags_to_write``). docs/tag-policy.md holds the table;
``tests/test_tag_policy.py`` recomputes it from the shared files.

    python benchmarks/tag_policy.py [--results ../shared/data/mtg-jamendo/results]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moodlib import vocabulary
from trainer.data.jamendo import read_thresholds
from trainer.metrics import decision_metrics

RESULTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "mtg-jamendo" / "results"
COLUMNS = ("P micro", "R micro", "F micro", "P macro", "R macro", "F macro", "tags/track",
           "no tag", "tags used")  # fmt: skip


@dataclass(frozen=True)
class BenchmarkData:
    predictions: np.ndarray  # (tracks, 56) scores
    groundtruth: np.ndarray  # (tracks, 56) bool
    thresholds: np.ndarray  # (56,)


def load(results: Path = RESULTS) -> BenchmarkData:
    return BenchmarkData(
        np.load(results / "baseline_vggish_predictions.npy"),
        np.load(results / "groundtruth.npy").astype(bool),
        read_thresholds(results / "baseline_vggish_thresholds.txt"),
    )


def _top(keys: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest of each row (equal keys: the first in tag order)."""
    chosen = np.zeros(keys.shape, dtype=bool)
    order = np.argsort(-keys, axis=1, kind="stable")[:, :k]
    np.put_along_axis(chosen, order, True, axis=1)
    return chosen


def written_by_moodlib(data: BenchmarkData, max_tags: int | None) -> np.ndarray:
    """What ``moodlib.vocabulary.tags_to_write`` picks on every test track, as decisions."""
    thresholds = dict(zip(vocabulary.TAGS, data.thresholds.tolist(), strict=True))
    chosen = np.zeros(data.predictions.shape, dtype=bool)
    for row, scores in enumerate(data.predictions):
        for tag in vocabulary.tags_to_write(scores, thresholds, max_tags):
            chosen[row, vocabulary.TAG_INDEX[tag]] = True
    return chosen


def candidates(data: BenchmarkData) -> list[tuple[str, Callable[[], np.ndarray]]]:
    """``(name, decisions)`` per candidate policy, in the table's order."""
    scores, above = data.predictions, data.predictions >= data.thresholds
    rows: list[tuple[str, Callable[[], np.ndarray]]] = [
        ("every tag above its threshold", lambda: above),
        ("every tag above its threshold, else the top one", lambda: written_by_moodlib(data, None)),
    ]
    for k in range(1, 6):
        rows.append((f"top {k}", lambda k=k: _top(scores, k)))
    for k in range(1, 6):
        rows.append(
            (f"top {k} above threshold", lambda k=k: _top(np.where(above, scores, -1), k) & above)
        )
    for k in range(1, 6):
        rows.append(
            (f"top {k} above threshold, else the top one", lambda k=k: written_by_moodlib(data, k))
        )
    rows.append(("top 3 by score / threshold", lambda: _top(scores / data.thresholds, 3)))
    return rows


def measure(data: BenchmarkData, decisions: np.ndarray) -> tuple[float, ...]:
    """The table's columns for one policy's decisions."""
    metrics = {
        name: value
        for average in ("micro", "macro")
        for name, value in decision_metrics(data.groundtruth, decisions, average=average).items()
    }
    per_track = decisions.sum(axis=1)
    return (
        metrics["precision-micro"], metrics["recall-micro"], metrics["F-score-micro"],
        metrics["precision-macro"], metrics["recall-macro"], metrics["F-score-macro"],
        float(per_track.mean()), float((per_track == 0).mean()),
        float(decisions.any(axis=0).sum()),
    )  # fmt: skip


def format_row(name: str, values: tuple[float, ...]) -> str:
    """One markdown row: ratios to 3 decimals, tags/track to 2, no tag in %, tags used whole."""
    *ratios, per_track, no_tag, used = values
    cells = [f"{v:.3f}" for v in ratios] + [f"{per_track:.2f}", f"{100 * no_tag:.1f} %"]
    return f"| {name} | " + " | ".join([*cells, f"{used:.0f}"]) + " |"


def table(data: BenchmarkData) -> list[str]:
    lines = ["| policy | " + " | ".join(COLUMNS) + " |", "|---" + "|---:" * len(COLUMNS) + "|"]
    return lines + [format_row(name, measure(data, decide())) for name, decide in candidates(data)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    print("\n".join(table(load(args.results))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
