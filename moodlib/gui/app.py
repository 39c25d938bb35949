"""Starting the desktop app: the QApplication, its identity and the main window."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtWidgets import QApplication

from moodlib.gui.settings import APPLICATION, ORGANISATION


def application(argv: Sequence[str] = ()) -> QApplication:
    """The process's QApplication (made on first use), named for QSettings."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(["moodlib", *argv])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("moodlib")
    pg.setConfigOptions(antialias=True)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Open the main window and run until it closes; returns the exit status."""
    app = application(sys.argv[1:] if argv is None else argv)
    from moodlib.gui.main_window import MainWindow  # after the QApplication exists

    window = MainWindow()
    window.show()
    return app.exec()
