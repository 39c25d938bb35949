"""The music library: finding files and the SQLite catalog. Knows nothing of Qt or the CLI."""

from moodlib.library.catalog import Catalog, JournalEntry, Track

__all__ = ["Catalog", "JournalEntry", "Track"]
