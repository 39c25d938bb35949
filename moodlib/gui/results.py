"""Per-file outcomes in a table: scan problems, and what the last write or undo did."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QLabel,
    QStackedWidget,
    QTableView,
    QWidget,
)

from moodlib.library.paths import printable

AnyIndex = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()


@dataclass(frozen=True)
class FileOutcome:
    path: str
    outcome: str  # "error", "written", "restored", "unchanged", ...
    detail: str = ""


class FileOutcomeModel(QAbstractTableModel):
    HEADERS = ("File", "Result", "Details")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.outcomes: list[FileOutcome] = []

    def set_outcomes(self, outcomes: list[FileOutcome]) -> None:
        self.beginResetModel()
        self.outcomes = list(outcomes)
        self.endResetModel()

    def rowCount(self, parent: AnyIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.outcomes)

    def columnCount(self, parent: AnyIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        outcome = self.outcomes[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return (printable(outcome.path), outcome.outcome, outcome.detail)[index.column()]
        if role == Qt.ItemDataRole.ForegroundRole and outcome.outcome == "unchanged":
            return QApplication.palette().color(QPalette.ColorRole.PlaceholderText)
        return None


class OutcomePane(QStackedWidget):
    """The outcomes as a table, or a sentence saying what an empty table means."""

    def __init__(self, model: FileOutcomeModel, empty_text: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.view = QTableView()
        self.view.setModel(model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.verticalHeader().hide()
        self.view.setWordWrap(False)
        self.view.setShowGrid(False)
        header = self.view.horizontalHeader()
        header.resizeSection(0, 380)
        header.resizeSection(1, 90)
        header.setStretchLastSection(True)
        self.empty_label = QLabel(empty_text)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.empty_label.setWordWrap(True)
        self.addWidget(self.empty_label)
        self.addWidget(self.view)
        model.modelReset.connect(self._show)
        self._show()

    def _show(self) -> None:
        self.setCurrentWidget(self.view if self.model.outcomes else self.empty_label)
