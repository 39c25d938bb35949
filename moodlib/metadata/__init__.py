"""Mood tags in music files: read them, and replace them safely (atomically, undoably).

``write_moods`` returns the values it replaced; writing them back is the undo.
"""

from moodlib.metadata.errors import TagWriteError
from moodlib.metadata.tags import (
    SUPPORTED_EXTENSIONS,
    MoodState,
    read_mood_state,
    read_moods,
    supported_extensions,
    write_moods,
)

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "MoodState",
    "TagWriteError",
    "read_mood_state",
    "read_moods",
    "supported_extensions",
    "write_moods",
]
