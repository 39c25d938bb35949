"""Per-file outcomes in a table: scan problems, and what the last write or undo did.

``ResultsDock`` is the window's Results dock: a tab for each, so that nothing pops up per file.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QDockWidget,
    QLabel,
    QStackedWidget,
    QTableView,
    QTabWidget,
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


class ResultsDock(QDockWidget):
    """*Problems*: the files the scans could not read and the folders that are gone; *Last
    write*: what the last write or undo did to each file."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Results", parent)
        self.setObjectName("results-dock")
        self.problems = FileOutcomeModel(self)
        self.write_results = FileOutcomeModel(self)
        self.problems_view = OutcomePane(
            self.problems, "No problems: every file found so far could be read."
        )
        self.write_results_view = OutcomePane(
            self.write_results,
            "Nothing written yet: review tracks, then Tags ▸ Write tags of the selection.",
        )
        self.tabs = QTabWidget()
        self.tabs.addTab(self.problems_view, "Problems")
        self.tabs.addTab(self.write_results_view, "Last write")
        self.setWidget(self.tabs)

    def set_problems(self, outcomes: list[FileOutcome]) -> None:
        self.problems.set_outcomes(outcomes)
        label = f"Problems ({len(outcomes)})" if outcomes else "Problems"
        self.tabs.setTabText(self.tabs.indexOf(self.problems_view), label)

    def show_problems(self) -> None:
        self.tabs.setCurrentWidget(self.problems_view)
        self.show()

    def show_write_results(self, outcomes: list[FileOutcome]) -> None:
        self.write_results.set_outcomes(outcomes)
        self.tabs.setCurrentWidget(self.write_results_view)
        self.show()
