"""The write policy: at most N tags reaching their threshold, else the best one; measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import tag_policy
from moodlib import vocabulary

DOC = Path(__file__).resolve().parents[1] / "docs" / "tag-policy.md"


def scores_with(**values: float) -> np.ndarray:
    scores = np.full(56, np.nan, dtype=np.float32)
    for tag, value in values.items():
        scores[vocabulary.TAG_INDEX[tag]] = value
    return scores


SCORES = scores_with(happy=0.9, epic=0.6, sad=0.55, dark=0.52, calm=0.1)
THRESHOLDS = dict.fromkeys(("happy", "epic", "sad", "dark", "calm"), 0.5)


def test_at_most_max_tags_of_those_reaching_their_threshold_highest_first() -> None:
    assert vocabulary.tags_to_write(SCORES, THRESHOLDS) == ["happy", "epic", "sad"]
    assert vocabulary.tags_to_write(SCORES, THRESHOLDS, 1) == ["happy"]
    assert vocabulary.tags_to_write(SCORES, THRESHOLDS, None) == ["happy", "epic", "sad", "dark"]
    with pytest.raises(ValueError, match="at least 1"):
        vocabulary.tags_to_write(SCORES, THRESHOLDS, 0)


def test_without_a_tag_reaching_its_threshold_the_best_scoring_one_is_written() -> None:
    scores = scores_with(happy=0.3, epic=0.45, calm=0.2, sexy=0.9)  # sexy: no threshold
    assert vocabulary.tags_to_write(scores, THRESHOLDS) == ["epic"]
    assert vocabulary.tagging(scores, THRESHOLDS, {}) == vocabulary.Tagging(
        ["epic"], vocabulary.BEST_GUESS
    )
    assert vocabulary.tags_to_write(scores_with(), THRESHOLDS) == [], "nothing scored"


def test_the_users_decisions_apply_to_what_the_policy_chose() -> None:
    decisions = {"epic": "reject", "calm": "accept", "road trip": "accept"}
    tagging = vocabulary.tagging(SCORES, THRESHOLDS, decisions)
    assert tagging == vocabulary.Tagging(["happy", "sad", "calm", "road trip"])
    # "dark" reaches its threshold but is fourth: a reject does not pull it in.
    assert "dark" not in tagging.tags


def test_a_file_without_tags_says_why() -> None:
    reject_all = dict.fromkeys(["happy", "epic", "sad"], "reject")
    assert vocabulary.tagging(SCORES, THRESHOLDS, reject_all).reason == vocabulary.ALL_REJECTED
    assert vocabulary.tagging(None, THRESHOLDS, {}).reason == vocabulary.NOT_SCORED
    unreadable = vocabulary.tagging(SCORES, THRESHOLDS, {}, decodable=False)
    assert unreadable == vocabulary.Tagging([], vocabulary.NOT_DECODABLE)


def test_the_policy_table_in_the_docs_is_what_the_shared_results_give() -> None:
    if not (tag_policy.RESULTS / "groundtruth.npy").is_file():
        pytest.skip(f"no MTG-Jamendo results in {tag_policy.RESULTS}")
    data = tag_policy.load()
    assert data.predictions.shape == data.groundtruth.shape == (4231, 56)
    documented = [line for line in DOC.read_text().splitlines() if line.startswith("| ")]
    assert tag_policy.table(data)[:1] + tag_policy.table(data)[2:] == documented

    def row(decisions: np.ndarray) -> dict[str, float]:
        return dict(zip(tag_policy.COLUMNS, tag_policy.measure(data, decisions), strict=True))

    default = row(tag_policy.written_by_moodlib(data, vocabulary.DEFAULT_MAX_TAGS))
    every = row(data.predictions >= data.thresholds)
    assert every["tags/track"] == pytest.approx(5.76, abs=0.005)
    assert every["P micro"] == pytest.approx(0.118, abs=0.0005)
    assert default["P micro"] > every["P micro"] + 0.04
    assert default["F micro"] > every["F micro"] and default["no tag"] == 0
