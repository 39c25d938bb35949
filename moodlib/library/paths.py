"""The one name moodlib gives a file: its real, absolute path, as a ``str``.

Paths are resolved once, where they come in (command-line arguments, folders chosen in the
app, files found by the scanner): ``~`` expanded, made absolute, ``..`` and symlinks resolved,
so one file has one name however it was reached. A name that is not valid UTF-8 (a Latin-1
file name, say) stays a ``str`` with Python's surrogate escapes (``os.fsdecode``), which every
file-system call accepts; the catalog stores such a path as bytes (``catalog.db_path``).
"""

from __future__ import annotations

import os


def resolve_path(path: str | bytes | os.PathLike) -> str:
    """``path`` as moodlib names it: absolute, with ``~``, ``..`` and symlinks resolved.

    A path that does not exist is resolved as far as it does.
    """
    return os.path.realpath(os.path.expanduser(os.fsdecode(path)))


def printable(text: str) -> str:
    """A path, or a message naming one, as text any terminal, widget or database takes: the
    bytes of a name that are not UTF-8 written as ``\\xNN``."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")
