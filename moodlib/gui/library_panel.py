"""The library's music folders: add, remove, scan."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class LibraryPanel(QWidget):
    add_requested = Signal()
    remove_requested = Signal(str)
    scan_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.busy = False
        self.can_scan = True
        self.folders = QListWidget()
        self.folders.setToolTip("The folders moodlib scans")
        self.add_button = QPushButton("Add…")
        self.remove_button = QPushButton("Remove")
        self.scan_button = QPushButton("Scan")
        self.scan_button.setToolTip("Scan the folders for new and changed files (F5)")
        self.add_button.clicked.connect(self.add_requested)
        self.remove_button.clicked.connect(self._remove)
        self.scan_button.clicked.connect(self.scan_requested)
        self.folders.currentRowChanged.connect(lambda _row: self._update_buttons())
        buttons = QHBoxLayout()
        for button in (self.add_button, self.remove_button, self.scan_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.folders, 1)
        layout.addLayout(buttons)
        self._update_buttons()

    def set_folders(self, folders: list[str]) -> None:
        self.folders.clear()
        self.folders.addItems(folders)
        for row, folder in enumerate(folders):
            self.folders.item(row).setToolTip(folder)
        self._update_buttons()

    def set_state(self, *, busy: bool, can_scan: bool) -> None:
        """``busy``: a task runs (no scan, no removal); ``can_scan``: a pack is there."""
        self.busy, self.can_scan = busy, can_scan
        self._update_buttons()

    def _remove(self) -> None:
        item = self.folders.currentItem()
        if item is not None:
            self.remove_requested.emit(item.text())

    def _update_buttons(self) -> None:
        self.remove_button.setEnabled(not self.busy and self.folders.currentItem() is not None)
        self.scan_button.setEnabled(not self.busy and self.can_scan and self.folders.count() > 0)
