"""The catalog: one SQLite database (WAL) of tracks, predictions, user decisions and writes.

The tables and their migrations are in ``library.schema``. Paths are the real paths the
scanner gives (``library.paths``); one that is not valid UTF-8 is stored as a BLOB of its bytes
(``db_path``). Older catalogs are upgraded when opened.

The catalog knows nothing of Qt or of the CLI; every method is a short transaction, and no
module outside ``moodlib/library/`` writes SQL: what they need is a method here.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from moodlib import vocabulary
from moodlib.library.paths import printable
from moodlib.library.schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION

WRITE_STATES = ("pending", "written", "undoing", "undone")
PREFIXES_PER_QUERY = 100  # 5 parameters each (``_below``): under SQLite's old limit of 999


@dataclass
class Track:
    id: int
    path: str
    size: int
    mtime_ns: int
    duration: float | None
    format: str | None
    title: str | None
    artist: str | None
    album: str | None
    error: str | None


class FileState(NamedTuple):
    """A track as the last scan left it, for telling changed files from unchanged ones."""

    id: int
    size: int
    mtime_ns: int
    failed: bool  # the last scan recorded an error
    predicted: bool  # the pack asked about has scored it

    def unchanged(self, size: int, mtime_ns: int) -> bool:
        """The file still has this size and mtime, and was scored without an error."""
        return (self.size, self.mtime_ns) == (size, mtime_ns) and self.predicted and not self.failed


@dataclass
class JournalEntry:
    """One file of a write batch. ``before_tag`` is the tag the file held its moods in before
    the write ("" when it had no tag at all, None when not recorded: older catalogs)."""

    id: int
    batch_id: int
    path: str
    before: list[str]
    after: list[str]
    state: str
    before_tag: str | None


@dataclass(frozen=True)
class WriteIntent:
    """What a write is about to do to one file (``JournalEntry`` before it exists)."""

    path: str
    before: list[str]
    after: list[str]
    before_tag: str


class CatalogError(Exception):
    """A catalog that cannot be opened; names the file and the reason."""


def db_path(path: str) -> str | bytes:
    """How the catalog stores ``path``: as text, or as its bytes when it is not valid UTF-8
    (a file name with surrogate escapes, see ``library.paths``)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def path_from_db(value: str | bytes) -> str:
    """The path ``db_path`` stored as ``value``."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def escape_like(text: str) -> str:
    """``text`` as a literal in a ``LIKE`` pattern with ``ESCAPE '\\'``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def scores_to_blob(scores: np.ndarray) -> bytes:
    return np.asarray(scores, dtype="<f4").tobytes()


def blob_to_scores(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").copy()


class Catalog:
    """A connection to the catalog database, safe to share between threads."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            self._upgrade()
            self._db.executescript(SCHEMA)  # executescript commits by itself

    def _upgrade(self) -> None:
        """Bring an older catalog to ``SCHEMA_VERSION`` (a new one is stamped with it)."""
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise CatalogError(
                    f"{self.path}: made by a newer moodlib (catalog version {version}, this "
                    f"moodlib reads up to {SCHEMA_VERSION})"
                )
            if version > 0:
                for migrate in MIGRATIONS[version - 1 :]:
                    migrate(db)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    class _Tx:
        def __init__(self, catalog: Catalog, durable: bool) -> None:
            self.catalog = catalog
            self.durable = durable

        def __enter__(self) -> sqlite3.Connection:
            self.catalog._lock.acquire()
            if self.durable:
                self.catalog._db.execute("PRAGMA synchronous=FULL")
            self.catalog._db.execute("BEGIN IMMEDIATE")
            return self.catalog._db

        def __exit__(self, exc_type, exc, tb) -> None:
            try:
                self.catalog._db.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                if self.durable:
                    self.catalog._db.execute("PRAGMA synchronous=NORMAL")
                self.catalog._lock.release()

    def _transaction(self, *, durable: bool = False) -> _Tx:
        """A write transaction; a ``durable`` one is on disk when it ends (WAL synced), not
        only safe from a crash of this process."""
        return Catalog._Tx(self, durable)

    def _query(self, sql: str, params: Iterable = (), *, plain: bool = False) -> list:
        with self._lock:
            cursor = self._db.cursor()
            if plain:
                cursor.row_factory = None
            return cursor.execute(sql, tuple(params)).fetchall()

    # -- tracks ---------------------------------------------------------------------------

    def upsert_track(
        self,
        path: str,
        *,
        size: int,
        mtime_ns: int,
        duration: float | None = None,
        format: str | None = None,
        title: str | None = None,
        artist: str | None = None,
        album: str | None = None,
        error: str | None = None,
    ) -> int:
        """Insert or update the track at ``path``; a changed file loses its old predictions."""
        return self.upsert_tracks([{
            "path": path, "size": size, "mtime_ns": mtime_ns, "duration": duration,
            "format": format, "title": title, "artist": artist, "album": album, "error": error,
        }])[0]  # fmt: skip

    def upsert_tracks(self, tracks: Iterable[Mapping]) -> list[int]:
        """``upsert_track`` for many tracks (each a mapping of its keyword arguments, ``path``
        included) in one transaction; their ids, in order."""
        ids = []
        with self._transaction() as db:
            for track in tracks:
                key = db_path(track["path"])
                row = db.execute("SELECT id, size, mtime_ns FROM tracks WHERE path=?", (key,))
                row = row.fetchone()
                size, mtime_ns = track["size"], track["mtime_ns"]
                text = [
                    None if track.get(k) is None else printable(track[k])
                    for k in ("title", "artist", "album", "error")
                ]
                values = (size, mtime_ns, track.get("duration"), track.get("format"), *text,
                          time.time())  # fmt: skip
                if row is None:
                    cursor = db.execute(
                        "INSERT INTO tracks (size, mtime_ns, duration, format, title, artist,"
                        " album, error, scanned_at, path) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (*values, key),
                    )
                    ids.append(int(cursor.lastrowid))
                    continue
                if (row["size"], row["mtime_ns"]) != (size, mtime_ns):
                    db.execute("DELETE FROM predictions WHERE track_id=?", (row["id"],))
                db.execute(
                    "UPDATE tracks SET size=?, mtime_ns=?, duration=?, format=?, title=?,"
                    " artist=?, album=?, error=?, scanned_at=? WHERE id=?",
                    (*values, row["id"]),
                )
                ids.append(int(row["id"]))
        return ids

    def update_file_state(self, path: str, *, size: int, mtime_ns: int) -> None:
        """Record a file's new size/mtime after moodlib itself rewrote its tags.

        Only the tags changed, so the predictions stay valid and the next scan skips it.
        """
        with self._transaction() as db:
            db.execute(
                "UPDATE tracks SET size=?, mtime_ns=? WHERE path=?", (size, mtime_ns, db_path(path))
            )

    def track(self, track_id: int) -> Track:
        rows = self._query("SELECT * FROM tracks WHERE id=?", (track_id,))
        if not rows:
            raise KeyError(track_id)
        return _track(rows[0])

    def track_by_path(self, path: str) -> Track | None:
        rows = self._query("SELECT * FROM tracks WHERE path=?", (db_path(path),))
        return _track(rows[0]) if rows else None

    def tracks(self, under: Iterable[str] = ()) -> list[Track]:
        """Every track, or those at or below any of the paths ``under`` (real paths)."""
        prefixes = [str(p) for p in under]
        if not prefixes:
            return [_track(r) for r in self._query("SELECT * FROM tracks ORDER BY path")]
        where, params = _below(prefixes)
        rows = self._query(f"SELECT * FROM tracks WHERE {where} ORDER BY path", params)
        return [_track(r) for r in rows]

    def remove_missing(self, under: Iterable[str], present: set[str]) -> int:
        """Drop tracks below ``under`` whose files are gone; returns how many."""
        prefixes = [str(p) for p in under]
        if not prefixes:
            return 0
        where, params = _below(prefixes)
        rows = self._query(f"SELECT id, path FROM tracks WHERE {where}", params, plain=True)
        return self.remove_tracks(
            [track_id for track_id, path in rows if path_from_db(path) not in present]
        )

    def remove_tracks(self, track_ids: Iterable[int]) -> int:
        """Drop these tracks with their predictions and decisions; returns how many."""
        ids = [(int(track_id),) for track_id in track_ids]
        with self._transaction() as db:
            db.executemany("DELETE FROM tracks WHERE id=?", ids)
        return len(ids)

    def file_states(self, under: Iterable[str], pack: str) -> dict[str, FileState]:
        """Path -> ``FileState`` of every track below any of ``under``, in one query per
        ``PREFIXES_PER_QUERY`` of them: what a rescan compares the files on disk with (a query
        per file costs more than the scan). ``under`` may be a list of files."""
        prefixes = [str(p) for p in under]
        states = {}
        for start in range(0, len(prefixes), PREFIXES_PER_QUERY):
            where, params = _below(prefixes[start : start + PREFIXES_PER_QUERY])
            rows = self._query(
                "SELECT path, id, size, mtime_ns, error IS NOT NULL, p.track_id IS NOT NULL"
                " FROM tracks LEFT JOIN predictions p ON p.track_id = id AND p.pack = ?"
                f" WHERE {where}",
                [pack, *params],
                plain=True,
            )
            states.update((path_from_db(path), FileState(*state)) for path, *state in rows)
        return states

    def count_tracks(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM tracks")[0][0])

    # -- predictions ----------------------------------------------------------------------

    def put_prediction(
        self, track_id: int, pack: str, scores: np.ndarray, embedding: np.ndarray | None = None
    ) -> None:
        self.put_predictions(pack, [(track_id, scores, embedding)])

    def put_predictions(
        self, pack: str, predictions: Iterable[tuple[int, np.ndarray, np.ndarray | None]]
    ) -> None:
        """``(track id, scores, embedding or None)`` of many tracks by ``pack``, in one
        transaction; each replaces the track's earlier prediction by ``pack``."""
        now = time.time()
        rows = [
            (track_id, pack, scores_to_blob(scores),
             None if embedding is None else np.asarray(embedding, "<f4").tobytes(), now)
            for track_id, scores, embedding in predictions
        ]  # fmt: skip
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO predictions VALUES (?,?,?,?,?)", rows)

    def prediction(self, track_id: int, pack: str) -> np.ndarray | None:
        rows = self._query(
            "SELECT scores FROM predictions WHERE track_id=? AND pack=?", (track_id, pack)
        )
        return blob_to_scores(rows[0]["scores"]) if rows else None

    def embedding(self, track_id: int, pack: str) -> np.ndarray | None:
        rows = self._query(
            "SELECT embedding FROM predictions WHERE track_id=? AND pack=?", (track_id, pack)
        )
        if not rows or rows[0]["embedding"] is None:
            return None
        return np.frombuffer(rows[0]["embedding"], dtype="<f4").copy()

    def has_prediction(self, track_id: int, pack: str) -> bool:
        return self.prediction(track_id, pack) is not None

    # -- decisions ------------------------------------------------------------------------

    def set_decision(self, track_id: int, tag: str, decision: str | None) -> None:
        """``accept``, ``reject``, or None to clear the user's decision on ``tag``."""
        self.set_decisions([track_id], tag, decision)

    def set_decisions(self, track_ids: Iterable[int], tag: str, decision: str | None) -> None:
        """The same decision on ``tag`` for every track of ``track_ids``, in one transaction."""
        ids = [int(track_id) for track_id in track_ids]
        with self._transaction() as db:
            if decision is None:
                db.executemany(
                    "DELETE FROM decisions WHERE track_id=? AND tag=?", [(i, tag) for i in ids]
                )
                return
            added, now = int(not vocabulary.is_tag(tag)), time.time()
            db.executemany(
                "INSERT OR REPLACE INTO decisions VALUES (?,?,?,?,?)",
                [(i, tag, decision, added, now) for i in ids],
            )

    def add_tag(self, track_id: int, tag: str) -> None:
        """The user adds a tag the model did not decide: an accepted, added tag."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO decisions VALUES (?,?,?,?,?)",
                (track_id, tag, "accept", 1, time.time()),
            )

    def decisions(self, track_id: int) -> dict[str, str]:
        rows = self._query("SELECT tag, decision FROM decisions WHERE track_id=?", (track_id,))
        return {r["tag"]: r["decision"] for r in rows}

    def reviewed_track_ids(self) -> list[int]:
        """The tracks with at least one decision, by id."""
        rows = self._query("SELECT DISTINCT track_id FROM decisions ORDER BY track_id", plain=True)
        return [track_id for (track_id,) in rows]

    # -- the tags a file should carry -----------------------------------------------------

    def tagging(
        self,
        track: Track,
        pack: str,
        thresholds: dict[str, float],
        max_tags: int | None = vocabulary.DEFAULT_MAX_TAGS,
    ) -> vocabulary.Tagging:
        """The tags ``track`` gets from ``pack`` under the write policy with the user's
        decisions, and why it gets none or only a best guess (``vocabulary.tagging``)."""
        scores = self.prediction(track.id, pack)
        decisions = self.decisions(track.id)
        return vocabulary.tagging(
            scores, thresholds, decisions, max_tags, decodable=track.error is None
        )

    def final_tags(
        self,
        track_id: int,
        pack: str,
        thresholds: dict[str, float],
        max_tags: int | None = vocabulary.DEFAULT_MAX_TAGS,
    ) -> list[str]:
        """The tags the track's file gets (``tagging``): the pack's choice under the write
        policy, with the user's accepts added and rejects removed, ordered by score."""
        return self.tagging(self.track(track_id), pack, thresholds, max_tags).tags

    # -- write journal --------------------------------------------------------------------

    def begin_write_batch(self, description: str) -> int:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO write_batches (created_at, description) VALUES (?, ?)",
                (time.time(), description),
            )
            return int(cursor.lastrowid)

    def record_intents(self, batch_id: int, intents: Sequence[WriteIntent]) -> list[int]:
        """Journal writes about to happen as ``pending`` entries, durably: on disk before any
        of the files is replaced. Returns the entries' ids, in order."""
        now = time.time()
        with self._transaction(durable=True) as db:
            return [
                int(
                    db.execute(
                        "INSERT INTO write_journal (batch_id, path, before, after, written_at,"
                        " state, before_tag) VALUES (?,?,?,?,?,'pending',?)",
                        (batch_id, db_path(i.path), json.dumps(i.before), json.dumps(i.after),
                         now, i.before_tag),
                    ).lastrowid
                )
                for i in intents
            ]  # fmt: skip

    def set_journal_state(
        self, entry_ids: Iterable[int], state: str, *, durable: bool = False
    ) -> None:
        """Move journal entries to ``state`` (one of ``WRITE_STATES``); a ``durable`` change is
        on disk before the call returns (an undo's intent)."""
        if state not in WRITE_STATES:
            raise ValueError(f"unknown journal state {state!r}")
        with self._transaction(durable=durable) as db:
            db.executemany(
                "UPDATE write_journal SET state=? WHERE id=?", [(state, i) for i in entry_ids]
            )

    def forget_journal_entries(self, entry_ids: Iterable[int]) -> None:
        """Drop ``pending`` entries whose file was never replaced."""
        with self._transaction() as db:
            db.executemany(
                "DELETE FROM write_journal WHERE id=? AND state='pending'",
                [(i,) for i in entry_ids],
            )

    def unsettled_journal(self) -> list[JournalEntry]:
        """Entries a write or an undo left ``pending`` or ``undoing`` (a crash), oldest first."""
        rows = self._query(
            "SELECT * FROM write_journal WHERE state IN ('pending', 'undoing') ORDER BY id"
        )
        return [_journal_entry(r) for r in rows]

    def moods_written(self, path: str) -> set[str]:
        """The mood values moodlib put into ``path``'s file: what its journal entries added,
        except those undone (an unsettled entry counts: its values are in the file if the
        crash came after its rename, and not in it otherwise)."""
        rows = self._query(
            "SELECT before, after FROM write_journal WHERE path=? AND state != 'undone'",
            (db_path(path),),
        )
        added: set[str] = set()
        for row in rows:
            added |= set(json.loads(row["after"])) - set(json.loads(row["before"]))
        return added

    def undoable_batches(self) -> list[int]:
        """Batches with written entries not undone yet, newest first."""
        rows = self._query(
            "SELECT b.id FROM write_batches b WHERE b.undone_at IS NULL AND EXISTS"
            " (SELECT 1 FROM write_journal j WHERE j.batch_id=b.id AND j.state='written')"
            " ORDER BY b.id DESC"
        )
        return [r["id"] for r in rows]

    def journal(self, batch_id: int) -> list[JournalEntry]:
        """The entries of a batch, newest first."""
        rows = self._query(
            "SELECT * FROM write_journal WHERE batch_id=? ORDER BY id DESC", (batch_id,)
        )
        return [_journal_entry(r) for r in rows]

    def mark_undone(self, batch_id: int) -> None:
        with self._transaction() as db:
            db.execute("UPDATE write_batches SET undone_at=? WHERE id=?", (time.time(), batch_id))

    def select(self, sql: str, params: Iterable = ()) -> list[tuple]:
        """Read-only queries for views (``library.views``), rows as plain tuples: at 100 000
        rows ``sqlite3.Row`` objects cost as much as the query itself."""
        return self._query(sql, params, plain=True)


def _journal_entry(row: sqlite3.Row) -> JournalEntry:
    return JournalEntry(
        row["id"],
        row["batch_id"],
        path_from_db(row["path"]),
        json.loads(row["before"]),
        json.loads(row["after"]),
        row["state"],
        row["before_tag"],
    )


def _below(prefixes: Iterable[str]) -> tuple[str, list[str | bytes]]:
    """A WHERE clause and its parameters: ``path`` is one of ``prefixes`` (real paths) or below
    one. Paths below a folder sort between "folder/" and "folder0" ("0" follows "/"), stored as
    text or, when not UTF-8, as bytes: both ranges are asked for."""
    clauses, params = [], []
    for prefix in map(str, prefixes):
        clauses.append("path = ?")
        params.append(db_path(prefix))
        below = prefix.rstrip(os.sep) + os.sep
        beyond = below[:-1] + chr(ord(os.sep) + 1)
        for low, high in {
            (db_path(below), db_path(beyond)),
            (os.fsencode(below), os.fsencode(beyond)),
        }:
            clauses.append("(path > ? AND path < ?)")
            params += [low, high]
    return "(" + " OR ".join(clauses) + ")", params


def _track(row: sqlite3.Row) -> Track:
    fields = {k: row[k] for k in Track.__dataclass_fields__}
    return Track(**{**fields, "path": path_from_db(fields["path"])})
