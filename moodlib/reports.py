"""What moodlib tells the user about tagging: how many files get tags and why some get none,
and the per-track reports of ``moodlib scan --json`` and ``moodlib show``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from moodlib import vocabulary

if TYPE_CHECKING:
    from moodlib.library.catalog import Catalog, Track
    from moodlib.packs import Pack


def scan_report(
    catalog: Catalog,
    pack: Pack,
    tracks: Sequence[Track],
    taggings: Mapping[str, vocabulary.Tagging],
    max_tags: int | None,
) -> dict:
    """``moodlib scan --json``: the pack, the file counts (``tagging_counts``) and each track's
    tags, why it has none, its scores and its error."""
    entries = []
    for track in tracks:
        scores = catalog.prediction(track.id, pack.name)
        entries.append({
            "path": track.path,
            "tags": taggings[track.path].tags,
            "reason": taggings[track.path].reason,
            "scores": score_dict(scores) if scores is not None else {},
            "error": track.error,
        })  # fmt: skip
    report = {
        "pack": pack.name,
        "max_tags": max_tags,
        "files": tagging_counts(list(taggings.values())),
        "tracks": entries,
    }
    return report


def tagging_counts(taggings: Sequence[vocabulary.Tagging]) -> dict:
    """How many files get tags, how many of them only a best guess, how many none and why."""
    no_tag: dict[str, int] = {}
    for tagging in taggings:
        if not tagging.tags:
            no_tag[tagging.reason] = no_tag.get(tagging.reason, 0) + 1
    return {
        "with_tags": sum(bool(t.tags) for t in taggings),
        "best_guess": sum(bool(t.tags) and t.reason == vocabulary.BEST_GUESS for t in taggings),
        "no_tag": no_tag,
    }


def tagging_summary(taggings: Sequence[vocabulary.Tagging], max_tags: int | None) -> str:
    counts = tagging_counts(taggings)
    limit = "" if max_tags is None else f" (at most {max_tags})"
    summary = f"of the {len(taggings)} read, {counts['with_tags']} get tags{limit}"
    if counts["best_guess"]:
        summary += (
            f", {counts['best_guess']} of them their best-scoring tag as no tag reached its "
            "threshold"
        )
    if counts["no_tag"]:
        untagged = sum(counts["no_tag"].values())
        why = ", ".join(f"{count} {reason}" for reason, count in counts["no_tag"].items())
        summary += f"; {untagged} {'gets' if untagged == 1 else 'get'} no tag: {why}"
    return summary


def score_dict(scores: np.ndarray) -> dict[str, float]:
    """The scores of the tags a pack predicts (NaN: not predicted), rounded, by tag."""
    return {
        tag: round(float(s), 6)
        for tag, s in zip(vocabulary.TAGS, scores, strict=True)
        if not np.isnan(s)
    }


def track_report(
    track: Track,
    pack: Pack,
    scores: np.ndarray | None,
    decisions: Mapping[str, str],
    tagging: vocabulary.Tagging,
    max_tags: int | None,
    moods_in_file: Sequence[str],
    error: str | None,
) -> dict:
    """``moodlib show``: one track, its scores against the pack's thresholds, the user's
    decisions, the tags the policy writes (or why none) and the moods its file holds now."""
    return {
        "path": track.path,
        "title": track.title,
        "artist": track.artist,
        "album": track.album,
        "duration": track.duration,
        "format": track.format,
        "error": error,
        "pack": pack.name,
        "scores": score_dict(scores) if scores is not None else {},
        "thresholds": {t: pack.thresholds[t] for t in pack.covered},
        "not_predicted": [t for t in vocabulary.TAGS if t not in pack.covered],
        "decisions": dict(decisions),
        "max_tags": max_tags,
        "tags": tagging.tags,
        "reason": tagging.reason,
        "moods_in_file": list(moods_in_file),
    }
