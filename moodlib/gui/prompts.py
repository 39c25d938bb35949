"""How the window speaks to the user besides its widgets: status-bar messages, questions and
information boxes.

Boxes are window-modal and opened without blocking (``QMessageBox.open``); ``question`` holds
the open question until it is answered, ``notice`` the open information box until it is
closed, so that the rest of the window (and its tests) can tell whether one is waiting.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QMainWindow, QMessageBox


class Prompts(QObject):
    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self._window = window
        self.question: QMessageBox | None = None
        self.notice: QMessageBox | None = None

    def say(self, text: str, timeout_ms: int) -> None:
        """A message in the status bar for ``timeout_ms``."""
        self._window.statusBar().showMessage(text, timeout_ms)

    def ask(self, title: str, text: str, detail: str, accept: str, on_accept: Callable) -> None:
        """Ask ``text``; ``on_accept()`` runs when the user clicks the ``accept`` button."""
        box = QMessageBox(QMessageBox.Icon.Question, title, text, parent=self._window)
        box.setInformativeText(detail)
        yes = box.addButton(accept, QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(yes)

        def answered() -> None:
            self.question = None
            if box.clickedButton() is yes:
                on_accept()

        box.finished.connect(lambda _result: answered())
        self.question = box
        box.open()

    def inform(self, title: str, text: str, detail: str) -> None:
        """An information box, held in ``notice`` until it is closed."""
        box = QMessageBox(QMessageBox.Icon.Information, title, text, parent=self._window)
        box.setInformativeText(detail)
        box.finished.connect(lambda _result: setattr(self, "notice", None))
        self.notice = box
        box.open()

    def warn(self, title: str, text: str, detail: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, parent=self._window)
        box.setInformativeText(detail)
        box.open()
