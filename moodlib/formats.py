"""The audio files moodlib works with: one list for the library scan, the decoder and the tags.

Every extension here is decoded (``audio.decode``: libsndfile, FFmpeg for the rest) and has a
mood convention (``metadata.tags``), so a file the scanner finds can be tagged and its tags
undone.
"""

from __future__ import annotations

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp3", ".wav", ".aif", ".aiff", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".wma", ".wv",
     ".ape", ".mpc"}
)  # fmt: skip
"""Lower-case file extensions (with the dot) of the audio files a library scan considers."""
