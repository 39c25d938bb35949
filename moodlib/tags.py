"""The 56 MTG-Jamendo mood/theme tags in the official order.

The order is that of ``moodtheme_split.txt`` in the MTG-Jamendo dataset: every prediction
matrix, model output and pack manifest in moodlib uses it.
"""

from __future__ import annotations

from collections.abc import Mapping

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


def full_name(tag: str) -> str:
    """``"happy"`` -> ``"mood/theme---happy"``."""
    return PREFIX + short_name(tag)


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


def display_name(tag: str) -> str:
    """A name for people: ``"melancholic"`` -> ``"Melancholic"``."""
    return short_name(tag).capitalize()
