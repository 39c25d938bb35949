"""``TrackTableModel``: the catalog as a Qt table, fluid at hundreds of thousands of tracks.

The model holds only the ordered track ids and their scores (``library.views.track_index``);
the text of a row is fetched from SQLite a page at a time when the view first asks for it and
kept in a small cache of recent pages (a windowed cache, so ``rowCount`` is exact at once and
the scroll bar is honest). Sorting and filtering rebuild the index in SQL and numpy.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from moodlib import vocabulary
from moodlib.library.catalog import Catalog
from moodlib.library.paths import printable
from moodlib.library.views import (
    ScoreTable,
    SortKey,
    TrackFilter,
    TrackIndex,
    TrackRow,
    load_scores,
    track_index,
    track_rows,
)

TOP_TAGS_SHOWN = 3

AnyIndex = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()


class Column:
    TITLE, ARTIST, ALBUM, DURATION, TAGS, REVIEW, WRITTEN = range(7)
    HEADERS = ("Title", "Artist", "Album", "Length", "Top tags", "Review", "Written")
    SORT_KEYS = (
        SortKey.TITLE,
        SortKey.ARTIST,
        SortKey.ALBUM,
        SortKey.DURATION,
        SortKey.SCORE,
        SortKey.REVIEW,
        SortKey.WRITTEN,
    )


TrackIdRole = Qt.ItemDataRole.UserRole + 1


class TrackTableModel(QAbstractTableModel):
    """Rows of tracks for one pack's scores, filtered and sorted by the catalog."""

    PAGE_ROWS = 128
    MAX_PAGES = 32

    def __init__(self, catalog: Catalog, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.catalog = catalog
        self.pack_name: str | None = None
        self.thresholds: Mapping[str, float] = {}
        self.track_filter = TrackFilter()
        self.sort_key, self.descending = SortKey.TITLE, False
        self._score_table: ScoreTable | None = None
        self._index = TrackIndex(np.empty(0, np.int64), np.empty(0, np.int64), ScoreTable.empty())
        self._pages: OrderedDict[int, list[tuple]] = OrderedDict()

    # -- what the model shows -------------------------------------------------------------
    # Nothing is read before the first ``refresh``: a view sorts its model as soon as it is
    # set up, and the window restores the sort order and the pack before the first read.

    def set_pack(self, name: str | None, thresholds: Mapping[str, float]) -> None:
        """Show ``name``'s scores from the next ``refresh`` on."""
        self.pack_name, self.thresholds = name, dict(thresholds)
        self._score_table = None

    @property
    def started(self) -> bool:
        """The catalog has been read (the first ``refresh`` is done)."""
        return self._score_table is not None

    def set_filter(self, track_filter: TrackFilter) -> None:
        self.track_filter = track_filter
        if self.started:
            self.refresh()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.sort_key = Column.SORT_KEYS[column]
        self.descending = order == Qt.SortOrder.DescendingOrder
        if self.started:
            self.refresh()

    def refresh(self, *, scores: bool = False) -> None:
        """Re-read which tracks are shown (after a filter or a sort change), and with
        ``scores`` the pack's scores too (after a scan or a change of pack).

        A model reset: views lose their selection, which the caller restores by track id.
        """
        if scores or self._score_table is None:
            self._score_table = load_scores(self.catalog, self.pack_name)
        self.beginResetModel()
        self._index = track_index(
            self.catalog,
            self._score_table,
            self.thresholds,
            self.track_filter,
            self.sort_key,
            self.descending,
        )
        self._pages.clear()
        self.endResetModel()

    def track_changed(self, track_id: int) -> None:
        """A track's decisions or write state changed: redraw its row."""
        row = self.row_of(track_id)
        if row is None:
            return
        self._pages.pop(row // self.PAGE_ROWS, None)
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(Column.HEADERS) - 1))

    def tracks_changed(self) -> None:
        """Many rows changed (after a write or an undo): redraw what is visible."""
        self._pages.clear()
        if self.rowCount():
            last = self.index(self.rowCount() - 1, len(Column.HEADERS) - 1)
            self.dataChanged.emit(self.index(0, 0), last)

    @property
    def cached_pages(self) -> int:
        """How many pages of rows are held in memory (at most ``MAX_PAGES``)."""
        return len(self._pages)

    def track_id(self, row: int) -> int:
        return int(self._index.ids[row])

    def track_ids(self) -> np.ndarray:
        return self._index.ids

    def scores(self, row: int) -> np.ndarray:
        return self._index.scores(row)

    def row_of(self, track_id: int) -> int | None:
        found = np.flatnonzero(self._index.ids == track_id)
        return int(found[0]) if len(found) else None

    # -- Qt's table interface -------------------------------------------------------------

    def rowCount(self, parent: AnyIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._index)

    def columnCount(self, parent: AnyIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(Column.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return Column.HEADERS[section]
        return None

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row, column = index.row(), index.column()
        if role == TrackIdRole:
            return int(self._index.ids[row])
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if column == Column.DURATION:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return None
        if role not in _ROLES:
            return None
        cells = self._row(row)
        if role == Qt.ItemDataRole.DisplayRole:
            return cells[column]
        if role == Qt.ItemDataRole.ToolTipRole:
            return cells[len(Column.HEADERS) + column]
        muted = cells[-1]
        if muted[column]:
            return QApplication.palette().color(QPalette.ColorRole.PlaceholderText)
        return None

    # -- the page cache -------------------------------------------------------------------

    def _row(self, row: int) -> tuple:
        page_number = row // self.PAGE_ROWS
        page = self._pages.get(page_number)
        if page is None:
            page = self._load_page(page_number)
            self._pages[page_number] = page
            while len(self._pages) > self.MAX_PAGES:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(page_number)
        return page[row - page_number * self.PAGE_ROWS]

    def _load_page(self, page_number: int) -> list[tuple]:
        start = page_number * self.PAGE_ROWS
        stop = min(start + self.PAGE_ROWS, len(self._index))
        ids = self._index.ids[start:stop]
        rows = track_rows(self.catalog, ids)
        return [
            _cells(rows.get(int(track_id)), self._index.scores(start + i), self.thresholds)
            for i, track_id in enumerate(ids)
        ]


_ROLES = (
    Qt.ItemDataRole.DisplayRole,
    Qt.ItemDataRole.ToolTipRole,
    Qt.ItemDataRole.ForegroundRole,
)


def _cells(row: TrackRow | None, scores: np.ndarray, thresholds: Mapping[str, float]) -> tuple:
    """Display texts, then tooltips, then which cells are drawn muted, of one row."""
    if row is None:  # removed since the index was built
        return ("",) * (2 * len(Column.HEADERS)) + ((False,) * len(Column.HEADERS),)
    path = printable(row.path)  # a name that is not UTF-8 shows its bytes as \xNN
    title = row.title or path.rsplit("/", 1)[-1]
    top, top_tip = _top_tags(scores, thresholds)
    review, review_tip = _review_state(row)
    written, written_tip = _write_state(row, scored=not np.isnan(scores).all())
    texts = (
        title,
        row.artist or "",
        row.album or "",
        format_duration(row.duration),
        top,
        review,
        written,
    )
    tips = (path, row.artist, row.album, None, top_tip, review_tip, written_tip)
    muted = (
        bool(row.error),
        False,
        False,
        False,
        not top.strip() or top.startswith("("),
        not (row.accepted or row.rejected),
        written_tip is None or row.written_at is None,
    )
    if row.error:
        tips = (f"{path}\n{row.error}", *tips[1:])
    return texts + tips + (muted,)


def _top_tags(scores: np.ndarray, thresholds: Mapping[str, float]) -> tuple[str, str | None]:
    if np.isnan(scores).all():
        return "", "not scored by this pack yet"
    above = [vocabulary.TAG_INDEX[tag] for tag in vocabulary.predicted_tags(scores, thresholds)]
    tip = "\n".join(
        f"{vocabulary.TAGS[i]}  {scores[i]:.2f}  (threshold {thresholds[vocabulary.TAGS[i]]:.2f})"
        for i in above
    )
    if not above:
        best = int(np.nanargmax(scores))  # the first of equal scores, as in predicted_tags
        return f"({vocabulary.TAGS[best]} {scores[best]:.2f})", "no tag reaches its threshold"
    shown = ", ".join(f"{vocabulary.TAGS[i]} {scores[i]:.2f}" for i in above[:TOP_TAGS_SHOWN])
    more = len(above) - TOP_TAGS_SHOWN
    return shown + (f" +{more}" if more > 0 else ""), tip


def _review_state(row: TrackRow) -> tuple[str, str | None]:
    if not (row.accepted or row.rejected):
        return "unreviewed", None
    parts = [f"✓{row.accepted}"] if row.accepted else []
    parts += [f"✗{row.rejected}"] if row.rejected else []
    tip = f"{row.accepted} accepted ({row.added} added by you), {row.rejected} rejected"
    return " ".join(parts), tip


def _write_state(row: TrackRow, *, scored: bool) -> tuple[str, str | None]:
    if row.error:
        return "unreadable", row.error
    if row.written_at is None:
        return ("not written" if scored else ""), None
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.written_at))
    if row.decided_at is not None and row.decided_at > row.written_at:
        return "edited since", f"written {when}; decisions changed since"
    return "written", f"written {when}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
