"""Starting the desktop app: the QApplication, its identity and the main window."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from moodlib import desktop
from moodlib.gui.settings import APPLICATION, ORGANISATION


def application(argv: Sequence[str] = ()) -> QApplication:
    """The process's QApplication (made on first use), named for QSettings."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(["moodlib", *argv])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("moodlib")
    app.setDesktopFileName(desktop.APP_ID)  # Wayland matches the window to its menu entry
    app.setWindowIcon(QIcon(str(desktop.icon_svg())))
    pg.setConfigOptions(antialias=True)
    return app


def main(argv: Sequence[str] | None = None, *, screenshot: str | None = None) -> int:
    """Open the main window and run until it closes; returns the exit status.

    With ``screenshot``, save a PNG picture of the window as soon as it is shown and quit
    (status 1 when the picture cannot be saved): a check that the app starts, for a bundle
    or a bug report.
    """
    app = application(sys.argv[1:] if argv is None else argv)
    from moodlib.gui.main_window import MainWindow  # after the QApplication exists

    window = MainWindow()
    window.show()
    if screenshot is not None:

        def save_and_quit() -> None:
            saved = window.grab().save(screenshot, "PNG")
            window.close()
            app.exit(0 if saved else 1)

        QTimer.singleShot(0, save_and_quit)
    return app.exec()
