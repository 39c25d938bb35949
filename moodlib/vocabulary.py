"""The 56 MTG-Jamendo mood/theme tags in the official order, and which of them a file gets.

The order is that of ``moodtheme_split.txt`` in the MTG-Jamendo dataset: every prediction
matrix, model output and pack manifest in moodlib uses it.

The write policy (``tags_to_write``, ``tagging``; measured in docs/tag-policy.md) is the one
rule the CLI, the GUI, the catalog and the write journal use: a file gets the tags whose
score reaches the pack's threshold, highest first, at most ``max_tags`` of them; when none
reaches its threshold, its best-scoring tag. The user's decisions then remove rejected tags
and add accepted ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

PREFIX = "mood/theme---"

TAGS: tuple[str, ...] = (
    "action", "adventure", "advertising", "background", "ballad", "calm", "children",
    "christmas", "commercial", "cool", "corporate", "dark", "deep", "documentary", "drama",
    "dramatic", "dream", "emotional", "energetic", "epic", "fast", "film", "fun", "funny",
    "game", "groovy", "happy", "heavy", "holiday", "hopeful", "inspiring", "love", "meditative",
    "melancholic", "melodic", "motivational", "movie", "nature", "party", "positive",
    "powerful", "relaxing", "retro", "romantic", "sad", "sexy", "slow", "soft", "soundscape",
    "space", "sport", "summer", "trailer", "travel", "upbeat", "uplifting",
)  # fmt: skip

FULL_NAMES: tuple[str, ...] = tuple(PREFIX + tag for tag in TAGS)

# Fraction of split-0 training tracks (9949) carrying each tag, in TAGS order: the tag priors
# that prior-relative thresholds start from.
TRAIN_PRIORS: tuple[float, ...] = (
    0.0298, 0.0265, 0.0365, 0.0406, 0.0194, 0.0268, 0.0153, 0.037, 0.0192, 0.0171, 0.0351,
    0.0623, 0.0431, 0.0341, 0.0254, 0.0196, 0.0501, 0.0502, 0.0861, 0.0604, 0.0062, 0.075,
    0.0221, 0.011, 0.017, 0.0078, 0.0932, 0.0099, 0.0099, 0.0138, 0.0564, 0.0496, 0.0376,
    0.0229, 0.0601, 0.0374, 0.0208, 0.0138, 0.0128, 0.0378, 0.0107, 0.0767, 0.014, 0.0365,
    0.0377, 0.0059, 0.0297, 0.0209, 0.0417, 0.0364, 0.0202, 0.0262, 0.016, 0.0089, 0.0217,
    0.0451
)  # fmt: skip

TAG_INDEX: dict[str, int] = {tag: i for i, tag in enumerate(TAGS)}


def short_name(tag: str) -> str:
    """Accept a short or a full name and return the short one; raise ``KeyError`` if unknown."""
    name = tag.removeprefix(PREFIX).strip().lower()
    if name not in TAG_INDEX:
        raise KeyError(f"not one of the 56 mood/theme tags: {tag!r}")
    return name


def is_tag(tag: str) -> bool:
    """True when ``tag`` (short or full name) is one of the 56."""
    try:
        short_name(tag)
    except KeyError:
        return False
    return True


def predicted_tags(scores: np.ndarray, thresholds: Mapping[str, float]) -> list[str]:
    """The tags whose score reaches the pack's threshold, highest score first.

    ``scores`` holds the 56 scores in ``TAGS`` order (NaN for tags a pack does not predict);
    a tag without a threshold is never predicted. Equal scores keep the ``TAGS`` order.
    """
    limits = np.array([thresholds.get(t, np.inf) for t in TAGS], dtype=np.float32)
    with np.errstate(invalid="ignore"):
        chosen = np.flatnonzero(scores >= limits)  # NaN compares False
    return [TAGS[i] for i in chosen[np.argsort(-scores[chosen], kind="stable")]]


# On the official baseline's test predictions, at most 3 tags above threshold per track write
# 2.6 tags at micro precision 0.165 and F 0.197, where every tag above threshold writes 5.8 at
# precision 0.118 (docs/tag-policy.md).
DEFAULT_MAX_TAGS = 3

# Why a file gets no tag, or a tag that did not reach its threshold (``Tagging.reason``).
BEST_GUESS = "no tag reached its threshold: the best-scoring one"
NOT_DECODABLE = "not decodable"
NOT_SCORED = "not scored by this pack"
ALL_REJECTED = "you rejected every tag the pack chose"


def tags_to_write(
    scores: np.ndarray, thresholds: Mapping[str, float], max_tags: int | None = DEFAULT_MAX_TAGS
) -> list[str]:
    """The pack's tags for one track: those reaching their threshold, highest score first, at
    most ``max_tags`` (None: all of them); when none does, the best-scoring covered tag.

    On the MTG-Jamendo test set the best-scoring tag of a track where none reaches its
    threshold is as often right (precision 0.161) as the tags that do (0.165).
    """
    if max_tags is not None and max_tags < 1:
        raise ValueError(f"max_tags must be at least 1 (or None for no limit), not {max_tags}")
    chosen = predicted_tags(scores, thresholds)
    if chosen:
        return chosen[:max_tags]
    covered = [i for i, tag in enumerate(TAGS) if tag in thresholds and not np.isnan(scores[i])]
    if not covered:
        return []
    return [TAGS[max(covered, key=lambda i: scores[i])]]


@dataclass(frozen=True)
class Tagging:
    """The tags a file gets (highest score first; tags the user added without a score last,
    alphabetically) and, unless they are tags that reached their thresholds, why."""

    tags: list[str]
    reason: str | None = None  # BEST_GUESS, or why no tag: NOT_DECODABLE, NOT_SCORED, ALL_REJECTED


def tagging(
    scores: np.ndarray | None,
    thresholds: Mapping[str, float],
    decisions: Mapping[str, str],
    max_tags: int | None = DEFAULT_MAX_TAGS,
    *,
    decodable: bool = True,
) -> Tagging:
    """What a file gets: ``tags_to_write`` of its ``scores`` (None: not scored), less the
    tags the user rejected, plus those accepted or added (``decisions``: tag -> ``accept`` /
    ``reject``); nothing when the file cannot be read."""
    if not decodable:
        return Tagging([], NOT_DECODABLE)
    chosen = tags_to_write(scores, thresholds, max_tags) if scores is not None else []
    ranked: dict[str, float] = {tag: float(scores[TAG_INDEX[tag]]) for tag in chosen}
    for tag, decision in decisions.items():
        if decision == "reject":
            ranked.pop(tag, None)
        elif tag not in ranked:
            index = TAG_INDEX.get(tag)
            has_score = scores is not None and index is not None and not np.isnan(scores[index])
            ranked[tag] = float(scores[index]) if has_score else -1.0
    tags = sorted(ranked, key=lambda t: (-ranked[t], t))
    if not tags:
        return Tagging([], ALL_REJECTED if chosen else NOT_SCORED)
    best_guess = chosen and chosen[0] in tags and not predicted_tags(scores, thresholds)
    return Tagging(tags, BEST_GUESS if best_guess else None)
