"""The keyboard: the help lists what each key does, read from the actions themselves, and
Escape (no action's shortcut) cancels the running task."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from moodlib.gui.jobs import Job

pytestmark = pytest.mark.gui

KEYS = {  # what the help says, as Qt writes the keys on Linux
    "Add music folder…": "Ctrl+O",
    "Scan library": "F5",
    "Accept tag": "A",
    "Reject tag": "R",
    "Undecide tag": "U",
    "Next tag": "]",
    "Previous tag": "[",
    "Next track": "J",
    "Previous track": "K",
    "Add a tag…": "T",
    "Accept predicted tags of the selection": "Shift+A",
    "Play / pause": "Space",
    "Filter…": "Ctrl+F",
    "Write tags of the selection…": "Ctrl+S",
    "Write tags of all tracks…": "Ctrl+Shift+S",
    "Undo last write…": "Ctrl+Z",
    "Keyboard shortcuts": "F1",
    "Cancel the running task": "Esc",
    "Previous / next track in the table": "Up / Down",
    "Select every track": "Ctrl+A",
}


def test_the_help_lists_every_shortcut_of_the_actions_and_the_other_keys(open_window) -> None:
    window = open_window()
    rows = window.keyboard_help()
    # Quit is the platform's key: Ctrl+Q on most desktops, none offscreen.
    quit_keys = QKeySequence.keyBindings(QKeySequence.StandardKey.Quit)
    quit_help = {"Quit": quit_keys[0].toString()} if quit_keys else {}
    assert {row.does: row.keys for row in rows} == KEYS | quit_help
    with_keys = [a for a in window.actions() if a.shortcuts()]
    assert len(with_keys) == len(KEYS | quit_help) - 3  # the other three are no action's
    assert [row.does for row in rows[: len(with_keys)]] == [
        a.text().replace("&", "") for a in with_keys
    ]
    accept = next(row for row in rows if row.does == "Accept tag")
    assert accept.detail == "Accept the current tag and go to the next"  # the status tip

    box = window.show_shortcuts()
    assert box.isVisible() and box.windowTitle() == "Keyboard shortcuts"
    assert (
        "<tr><td><b>A</b></td><td>Accept tag<br><small>Accept the current tag and go to the "
        "next</small></td></tr>"
    ) in box.text()
    assert "<tr><td><b>Ctrl+Shift+S</b></td><td>Write tags of all tracks…" in box.text()
    box.close()


def test_the_help_follows_a_changed_shortcut(open_window) -> None:
    window = open_window()
    window.accept_action.setShortcut(QKeySequence("Ctrl+Alt+Y"))
    window.filter_action.setShortcuts([QKeySequence("Ctrl+F"), QKeySequence("/")])
    keys = {row.does: row.keys for row in window.keyboard_help()}
    assert keys["Accept tag"] == "Ctrl+Alt+Y"
    assert keys["Filter…"] == "Ctrl+F / /"
    window.scan_action.setShortcuts([])
    keys = {row.does: row.keys for row in window.keyboard_help()}
    assert "Scan library" not in keys
    box = window.show_shortcuts()
    assert "<b>Ctrl+Alt+Y</b></td><td>Accept tag" in box.text()
    assert "<b>A</b>" not in box.text() and "F5" not in box.text()
    box.close()


def test_escape_cancels_the_running_task(qtbot, open_window, wait_idle) -> None:
    window = open_window()
    job = Job("Waiting", lambda *, cancel, **_: cancel.wait(30))
    assert window.jobs.start(job)
    assert window.cancel_action.isEnabled()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    wait_idle(window, timeout_ms=10_000)
    assert job.cancelled
    assert not window.cancel_action.isEnabled()
