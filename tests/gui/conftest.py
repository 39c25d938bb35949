"""Fixtures for driving the desktop app offscreen.

Every test gets its own ``MOODLIB_HOME`` and its own QSettings folder, so nothing of the
user's (or of another test) leaks in; ``open_window`` makes main windows and closes them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before pytest-qt makes the QApplication

from PySide6.QtCore import QSettings

SHARED = Path(__file__).resolve().parents[3] / "shared"
BASELINE = SHARED / "models" / "mtg-baseline" / "best_model.pth"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MOODLIB_HOME", str(tmp_path / "home"))
    QSettings.setPath(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings")
    )
    return tmp_path / "home"


@pytest.fixture(scope="session")
def baseline_checkpoint() -> Path:
    """The official MTG-Jamendo baseline's ``best_model.pth``."""
    if not BASELINE.is_file():
        pytest.skip(f"no baseline checkpoint at {BASELINE}")
    return BASELINE


@pytest.fixture
def open_window(qtbot, home: Path) -> Iterator[Callable]:
    """``open_window(resize=True)``: the app's main window, at 1280x800 unless ``resize`` is
    False (then at the size it restores). Call it after setting up the home."""
    from moodlib.gui.app import application
    from moodlib.gui.main_window import MainWindow

    application()
    windows = []

    def open_(resize: bool = True) -> MainWindow:
        window = MainWindow()
        qtbot.addWidget(window)
        if resize:
            window.resize(1280, 800)
        window.show()
        qtbot.waitExposed(window)
        windows.append(window)
        return window

    yield open_
    for window in windows:
        window.close()


@pytest.fixture
def wait_idle(qtbot) -> Callable:
    """``wait_idle(window)``: until the window's foreground job (scan, write...) has ended."""

    def wait(window, timeout_ms: int = 60_000) -> None:
        qtbot.waitUntil(lambda: not window.busy, timeout=timeout_ms)

    return wait


@pytest.fixture
def scanned_window(home, music_copy, open_window, wait_idle):
    """The app with ``music_copy``'s folder added and scanned by the shipped default pack,
    the official baseline."""
    window = open_window()
    folder = next(iter(music_copy.values())).parent
    window.scans.add_folder(folder)
    wait_idle(window)
    return window
