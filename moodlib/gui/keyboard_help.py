"""The keyboard help (Help ▸ Keyboard shortcuts), read from the window's actions.

Each action with a shortcut gives a row: its keys as the platform writes them, its text
without the mnemonic '&', and its status tip. The few keys that are no action's (Escape, the
table's own keys) are declared as ``KeyHelp`` rows beside the code that handles them.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence


@dataclass(frozen=True)
class KeyHelp:
    keys: str  # as the platform writes them: "Ctrl+S", "Shift+A / Esc"
    does: str
    detail: str = ""

    @classmethod
    def of(cls, keys: Sequence[QKeySequence], does: str, detail: str = "") -> KeyHelp:
        native = QKeySequence.SequenceFormat.NativeText
        return cls(" / ".join(key.toString(native) for key in keys), does, detail)


def action_help(action: QAction) -> KeyHelp | None:
    """The row of ``action``; None when it has no shortcut."""
    if not action.shortcuts():
        return None
    return KeyHelp.of(action.shortcuts(), action.text().replace("&", ""), action.statusTip())


def keyboard_help(actions: Iterable[QAction], other_keys: Iterable[KeyHelp]) -> list[KeyHelp]:
    """The rows of every action with a shortcut, in order, then ``other_keys``."""
    rows = [row for action in actions if (row := action_help(action)) is not None]
    return rows + list(other_keys)


def help_html(rows: Iterable[KeyHelp]) -> str:
    """The rows as a rich-text table: the keys in bold, the status tip under the text."""

    def cell(row: KeyHelp) -> str:
        detail = f"<br><small>{html.escape(row.detail)}</small>" if row.detail else ""
        return f"{html.escape(row.does)}{detail}"

    body = "".join(
        f"<tr><td><b>{html.escape(row.keys)}</b></td><td>{cell(row)}</td></tr>" for row in rows
    )
    return f"<table cellspacing='6'>{body}</table>"
