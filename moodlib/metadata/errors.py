"""The one error type of ``moodlib.metadata``."""

from __future__ import annotations

import os


class TagWriteError(Exception):
    """Reading or writing a file's tags failed; the file on disk is as it was.

    ``path`` is the file as the caller named it, ``reason`` says what went wrong.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"
