"""The track table's view: columns, the current track and the selection.

The model (``TrackTableModel``) is rebuilt by every sort, filter and scan; the view keeps
the same tracks selected and the same current track across those rebuilds (by track id), or
the first row when the current track is gone.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from moodlib.gui.keyboard_help import KeyHelp
from moodlib.gui.table_model import Column, TrackIdRole, TrackTableModel

COLUMN_WIDTHS = {
    Column.TITLE: 130,
    Column.ARTIST: 80,
    Column.ALBUM: 80,
    Column.DURATION: 50,
    Column.REVIEW: 78,
    Column.WRITTEN: 76,
}


def table_keys() -> list[KeyHelp]:
    """The keys ``QTableView`` handles itself while the table has the focus, for the help."""
    return [
        KeyHelp.of(
            [QKeySequence(Qt.Key.Key_Up), QKeySequence(Qt.Key.Key_Down)],
            "Previous / next track in the table",
            "With Shift: select the tracks on the way",
        ),
        KeyHelp.of([QKeySequence(QKeySequence.StandardKey.SelectAll)], "Select every track"),
    ]


class TrackTable(QTableView):
    def __init__(self, model: TrackTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.track_model = model
        self.setModel(model)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSortingEnabled(True)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.setShowGrid(False)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        header = self.horizontalHeader()
        header.setSortIndicator(Column.TITLE, Qt.SortOrder.AscendingOrder)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(Column.TAGS, QHeaderView.ResizeMode.Stretch)
        for column, width in COLUMN_WIDTHS.items():
            header.resizeSection(column, width)
        self._kept_selection: tuple[int | None, list[int]] = (None, [])
        model.modelAboutToBeReset.connect(self._remember_selection)
        model.modelReset.connect(self._restore_selection)

    def current_track_id(self) -> int | None:
        index = self.currentIndex()
        return index.data(TrackIdRole) if index.isValid() else None

    def selected_track_ids(self) -> list[int]:
        rows = self.selectionModel().selectedRows()
        return [self.track_model.track_id(index.row()) for index in rows]

    def select_track(self, track_id: int) -> bool:
        """Make ``track_id`` the current (and only selected) track; False if it is not shown."""
        row = self.track_model.row_of(track_id)
        if row is None:
            return False
        self._set_current_row(row)
        return True

    def move_current(self, step: int) -> None:
        """Go ``step`` rows down (up when negative), stopping at the first and last row."""
        if not self.track_model.rowCount():
            return
        current = self.currentIndex()
        row = current.row() + step if current.isValid() else 0
        self._set_current_row(max(0, min(self.track_model.rowCount() - 1, row)))

    def _set_current_row(self, row: int) -> None:
        index = self.track_model.index(row, 0)
        flags = QItemSelectionModel.SelectionFlag
        self.selectionModel().setCurrentIndex(index, flags.ClearAndSelect | flags.Rows)
        self.scrollTo(index)

    def _remember_selection(self) -> None:
        self._kept_selection = (self.current_track_id(), self.selected_track_ids())

    def _restore_selection(self) -> None:
        """After the model was rebuilt (sort, filter, scan): the same tracks selected, the
        same current track, or the first row when it is gone."""
        current, selected = self._kept_selection
        self._kept_selection = (None, [])
        model = self.track_model
        selection = QItemSelection()
        rows = np.flatnonzero(np.isin(model.track_ids(), selected))
        for run in np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1) if len(rows) else ():
            top = model.index(int(run[0]), 0)
            bottom = model.index(int(run[-1]), model.columnCount() - 1)
            selection.select(top, bottom)
        model_selection = self.selectionModel()
        flags = QItemSelectionModel.SelectionFlag
        model_selection.select(selection, flags.ClearAndSelect)
        row = model.row_of(current) if current is not None else None
        if row is not None:
            model_selection.setCurrentIndex(model.index(row, 0), flags.NoUpdate)
        elif model.rowCount():
            model_selection.setCurrentIndex(model.index(0, 0), flags.ClearAndSelect | flags.Rows)
