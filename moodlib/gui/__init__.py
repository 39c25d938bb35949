"""moodlib's desktop app (PySide6 + pyqtgraph): scan, review, listen, write.

``run(argv)`` opens it; ``argv`` are the arguments after ``moodlib gui`` (Qt's own options
such as ``-platform offscreen`` are understood).
"""

from __future__ import annotations

from collections.abc import Sequence


def run(argv: Sequence[str] | None = None, *, screenshot: str | None = None) -> int:
    """Open the main window and run until it is closed; returns the exit status.

    ``screenshot``: save a PNG of the window once it is shown, then quit.
    """
    from moodlib.gui.app import main

    return main(argv, screenshot=screenshot)
