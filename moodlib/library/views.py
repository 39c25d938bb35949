"""The catalog queries behind a track table: which tracks, in which order, and their rows.

Filtering and sorting happen in SQL (text, review state, columns) and numpy (scores), never
row by row in Python: ``track_index`` returns the ordered track ids of a view with their
score matrix, and ``track_rows`` fetches the display data of one page of ids. The column
orders are those of the catalog's indexes, so SQLite walks an index instead of sorting.

Nothing here knows Qt (the GUI's table model is a thin face over it); it reads the catalog
through ``Catalog.select`` only.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from moodlib import vocabulary
from moodlib.library.catalog import Catalog, escape_like, path_from_db

N_TAGS = len(vocabulary.TAGS)


class SortKey(enum.Enum):
    TITLE = "title"
    ARTIST = "artist"
    ALBUM = "album"
    DURATION = "duration"
    SCORE = "score"  # the filter tag's score, else the track's top score
    REVIEW = "review"  # number of decisions
    WRITTEN = "written"  # time of the last write that was not undone


@dataclass(frozen=True)
class TrackFilter:
    """What the table shows.

    ``text`` matches title, artist, album or path (case-insensitive substring). With a
    ``tag``, only tracks whose score for it reaches ``min_score`` are kept, or the pack's
    threshold for the tag when ``min_score`` is 0; without one, ``min_score`` applies to each
    track's top score. ``unreviewed_only`` keeps tracks without any decision.
    """

    text: str = ""
    tag: str | None = None
    min_score: float = 0.0
    unreviewed_only: bool = False


@dataclass
class ScoreTable:
    """Every track's scores from one pack, read once and reused by each sort and filter."""

    track_ids: np.ndarray  # int64, ascending
    scores: np.ndarray  # (len(track_ids), 56) float32, NaN for tags the pack does not cover
    top: np.ndarray  # each track's highest score

    @classmethod
    def empty(cls) -> ScoreTable:
        return cls(np.empty(0, np.int64), np.empty((0, N_TAGS), np.float32), np.empty(0))

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Where each of ``ids`` is in the table; -1 for tracks the pack has not scored."""
        if len(self.track_ids) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        position = np.searchsorted(self.track_ids, ids).clip(max=len(self.track_ids) - 1)
        return np.where(self.track_ids[position] == ids, position, -1)

    def values(self, positions: np.ndarray, tag: str | None) -> np.ndarray:
        """Per position, ``tag``'s score, or the top score without a tag (NaN when none)."""
        column = self.top if tag is None else self.scores[:, vocabulary.TAG_INDEX[tag]]
        if len(column) == 0:
            return np.full(len(positions), np.nan, dtype=np.float32)
        return np.where(positions >= 0, column[positions], np.nan)

    def row(self, position: int) -> np.ndarray:
        if position < 0:
            return np.full(N_TAGS, np.nan, dtype=np.float32)
        return self.scores[position]


@dataclass
class TrackIndex:
    """The tracks of a view in display order, and where their scores are."""

    ids: np.ndarray  # int64 track ids
    positions: np.ndarray  # rows of ``table``, -1 where the pack gave no score
    table: ScoreTable

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, row: int) -> np.ndarray:
        return self.table.row(int(self.positions[row]))


@dataclass(frozen=True)
class TrackRow:
    """What one table row shows of a track (besides its scores)."""

    id: int
    path: str
    title: str | None
    artist: str | None
    album: str | None
    duration: float | None
    error: str | None
    accepted: int
    rejected: int
    added: int
    decided_at: float | None
    written_at: float | None


# Tracks without the sorted field come last both ways. Each order is that of an index of the
# catalog (SQLite scans an index backwards for DESC, and nulls last in two passes).
_SQL_ORDER = {
    SortKey.TITLE: "t.title COLLATE NOCASE {d} NULLS LAST",
    SortKey.ARTIST: "t.artist COLLATE NOCASE {d} NULLS LAST, t.album COLLATE NOCASE {d},"
    " t.title COLLATE NOCASE {d}",
    SortKey.ALBUM: "t.album COLLATE NOCASE {d} NULLS LAST, t.title COLLATE NOCASE {d}",
    SortKey.DURATION: "t.duration {d} NULLS LAST",
    SortKey.REVIEW: "COALESCE(r.n, 0) {d}",
    SortKey.WRITTEN: "COALESCE(w.at, 0) {d}",
    SortKey.SCORE: "t.id",  # sorted in numpy by track_index
}

_REVIEWED = "SELECT track_id, COUNT(*) AS n FROM decisions GROUP BY track_id"
_WRITTEN = (
    "SELECT path, MAX(written_at) AS at FROM write_journal WHERE state = 'written' GROUP BY path"
)


def load_scores(catalog: Catalog, pack_name: str | None) -> ScoreTable:
    """The scores ``pack_name`` gave, for every track it scored."""
    rows = catalog.select(
        "SELECT track_id, scores FROM predictions WHERE pack = ? ORDER BY track_id",
        [pack_name or ""],
    )
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    scores = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), N_TAGS)
    top = np.fmax.reduce(scores, axis=1) if len(rows) else np.empty(0, np.float32)
    return ScoreTable(ids, scores, top)


def ordered_track_ids(
    catalog: Catalog,
    track_filter: TrackFilter = TrackFilter(),
    sort: SortKey = SortKey.TITLE,
    descending: bool = False,
) -> np.ndarray:
    """Ids of the tracks the text and review parts of ``track_filter`` keep, in SQL order.

    The score column is ordered by track id here; ``track_index`` sorts it in numpy.
    """
    where, params = [], []
    tracks = "tracks t"
    if track_filter.text.strip():
        pattern = "%" + escape_like(track_filter.text.strip()) + "%"
        where.append("(" + " OR ".join(f"t.{c} LIKE ? ESCAPE '\\'" for c in _TEXT_COLUMNS) + ")")
        params += [pattern] * len(_TEXT_COLUMNS)
        # A substring match reads every row anyway: sorting the few it keeps is cheaper than
        # walking a sort index and looking up each track (SQLite would choose the index).
        tracks = "tracks t NOT INDEXED"
    if track_filter.unreviewed_only:
        where.append("NOT EXISTS (SELECT 1 FROM decisions d WHERE d.track_id = t.id)")
    joins = ""
    if sort is SortKey.REVIEW:
        joins = f" LEFT JOIN ({_REVIEWED}) r ON r.track_id = t.id"
    elif sort is SortKey.WRITTEN:
        joins = f" LEFT JOIN ({_WRITTEN}) w ON w.path = t.path"
    direction = "DESC" if descending and sort is not SortKey.SCORE else "ASC"
    sql = (
        f"SELECT t.id FROM {tracks}{joins}"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY {_SQL_ORDER[sort].format(d=direction)}, t.id {direction}"
    )
    rows = catalog.select(sql, params)
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def track_index(
    catalog: Catalog,
    score_table: ScoreTable,
    thresholds: Mapping[str, float],
    track_filter: TrackFilter = TrackFilter(),
    sort: SortKey = SortKey.TITLE,
    descending: bool = False,
) -> TrackIndex:
    """The ids and scores of the tracks ``track_filter`` keeps, ordered by ``sort``."""
    ids = ordered_track_ids(catalog, track_filter, sort, descending)
    positions = score_table.positions(ids)
    if track_filter.tag is not None or track_filter.min_score > 0:
        values = score_table.values(positions, track_filter.tag)
        if track_filter.tag is not None and track_filter.min_score <= 0:
            minimum = thresholds.get(track_filter.tag, np.inf)
        else:
            minimum = track_filter.min_score
        with np.errstate(invalid="ignore"):
            keep = values >= minimum  # NaN compares False: unscored tracks drop out
        ids, positions = ids[keep], positions[keep]
    if sort is SortKey.SCORE:
        key = score_table.values(positions, track_filter.tag)
        # Tracks without a score stay last in both directions; ties keep the id order.
        key = np.where(np.isnan(key), np.inf, -key if descending else key)
        order = np.argsort(key, kind="stable")
        ids, positions = ids[order], positions[order]
    return TrackIndex(ids, positions, score_table)


_TEXT_COLUMNS = ("title", "artist", "album", "path")


def track_rows(catalog: Catalog, ids: Sequence[int]) -> dict[int, TrackRow]:
    """Display data of the tracks ``ids`` (one query for the tracks, one for the journal)."""
    ids = [int(i) for i in ids]
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = catalog.select(
        "SELECT t.id, t.path, t.title, t.artist, t.album, t.duration, t.error,"
        " COALESCE(SUM(d.decision = 'accept'), 0), COALESCE(SUM(d.decision = 'reject'), 0),"
        " COALESCE(SUM(d.added), 0), MAX(d.decided_at)"
        " FROM tracks t LEFT JOIN decisions d ON d.track_id = t.id"
        f" WHERE t.id IN ({marks}) GROUP BY t.id",
        ids,
    )
    paths = [r[1] for r in rows]  # as stored: text, or bytes (``catalog.db_path``)
    written = dict(
        catalog.select(
            "SELECT path, MAX(written_at) FROM write_journal"
            f" WHERE state = 'written' AND path IN ({','.join('?' * len(paths))}) GROUP BY path",
            paths,
        )
    )
    return {
        r[0]: TrackRow(r[0], path_from_db(r[1]), *r[2:], written_at=written.get(r[1])) for r in rows
    }


def scan_errors(catalog: Catalog) -> list[tuple[str, str]]:
    """``(path, error)`` of every track whose last scan failed, by path."""
    rows = catalog.select("SELECT path, error FROM tracks WHERE error IS NOT NULL ORDER BY path")
    return [(path_from_db(path), error) for path, error in rows]


def added_tags(catalog: Catalog, track_id: int) -> list[str]:
    """The tags the user added to a track (accepted tags with the ``added`` mark)."""
    rows = catalog.select(
        "SELECT tag FROM decisions WHERE track_id = ? AND added = 1 ORDER BY tag", [track_id]
    )
    return [r[0] for r in rows]
