"""The catalog's SQLite schema, and the migrations that bring an older catalog up to it.

Tables:

- ``tracks``: one row per audio file found (path, size, mtime, duration, format, the file's
  own title/artist/album for display, the last scan error).
- ``predictions``: per track and pack, the 56 scores (float32 blob in the official tag
  order, NaN for tags the pack does not predict) and the pack's pooled embedding.
- ``decisions``: per track and tag, the user's ``accept`` or ``reject``; tags the user adds
  are accepted tags (``added`` = 1). Tags beyond the 56 are allowed here.
- ``write_batches`` / ``write_journal``: every tag write, with the mood values before and
  after and how the file held its tags before, so ``undo`` can put them back. An entry is
  recorded (``pending``) before its file is replaced and settled after (``written``); an undo
  marks it ``undoing``, then ``undone``. Entries left ``pending`` or ``undoing`` by a crash are
  settled by ``metadata.journal.recover``.

The indexes on ``tracks`` serve the orders of the GUI's table (``library.views``), the one on
``write_journal(path)`` its "written" column. ``library.catalog`` opens the database, upgrades
it (``MIGRATIONS``) and is the only module that reads or writes these tables, apart from the
views' queries (``library.views``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

SCHEMA = """
CREATE TABLE IF NOT EXISTS tracks (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    duration REAL,
    format TEXT,
    title TEXT,
    artist TEXT,
    album TEXT,
    error TEXT,
    scanned_at REAL
);
CREATE TABLE IF NOT EXISTS predictions (
    track_id INTEGER NOT NULL REFERENCES tracks(id) ON DELETE CASCADE,
    pack TEXT NOT NULL,
    scores BLOB NOT NULL,
    embedding BLOB,
    predicted_at REAL NOT NULL,
    PRIMARY KEY (track_id, pack)
);
CREATE TABLE IF NOT EXISTS decisions (
    track_id INTEGER NOT NULL REFERENCES tracks(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('accept', 'reject')),
    added INTEGER NOT NULL DEFAULT 0,
    decided_at REAL NOT NULL,
    PRIMARY KEY (track_id, tag)
);
CREATE TABLE IF NOT EXISTS write_batches (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    description TEXT,
    undone_at REAL
);
CREATE TABLE IF NOT EXISTS write_journal (
    id INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES write_batches(id),
    path TEXT NOT NULL,
    before TEXT NOT NULL,
    after TEXT NOT NULL,
    written_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'written'
        CHECK (state IN ('pending', 'written', 'undoing', 'undone')),
    before_tag TEXT  -- the tag the file had ("ID3v2.3", ...), '' for none, NULL if unknown
);
CREATE INDEX IF NOT EXISTS journal_by_batch ON write_journal(batch_id);
CREATE INDEX IF NOT EXISTS journal_by_path ON write_journal(path);
CREATE INDEX IF NOT EXISTS journal_unsettled ON write_journal(state)
    WHERE state IN ('pending', 'undoing');
CREATE INDEX IF NOT EXISTS tracks_by_title ON tracks(title COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS tracks_by_artist
    ON tracks(artist COLLATE NOCASE, album COLLATE NOCASE, title COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS tracks_by_album ON tracks(album COLLATE NOCASE, title COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS tracks_by_duration ON tracks(duration);
"""


def record_write_states(db: sqlite3.Connection) -> None:
    """1 -> 2: journal entries get a state and the tag the file had before (unknown)."""
    db.execute(
        "ALTER TABLE write_journal ADD COLUMN state TEXT NOT NULL DEFAULT 'written'"
        " CHECK (state IN ('pending', 'written', 'undoing', 'undone'))"
    )
    db.execute("ALTER TABLE write_journal ADD COLUMN before_tag TEXT")
    db.execute(
        "UPDATE write_journal SET state = 'undone' WHERE batch_id IN"
        " (SELECT id FROM write_batches WHERE undone_at IS NOT NULL)"
    )


# MIGRATIONS[n - 1] upgrades a catalog of schema version n to n + 1, inside one transaction;
# tables and indexes that are new in a version come from SCHEMA afterwards.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (record_write_states,)
SCHEMA_VERSION = 1 + len(MIGRATIONS)
