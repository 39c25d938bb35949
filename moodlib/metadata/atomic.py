"""Replace a file with an edited copy of itself, all at once or not at all.

The copy lives next to the original under a hidden name, so ``os.replace`` is a rename within
one filesystem: readers see either the old file or the new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from moodlib.metadata.errors import TagWriteError

TEMP_MARKER = ".moodlib-tmp-"

_ANY_WRITE = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH

T = TypeVar("T")


def temp_prefix(path: Path) -> str:
    """Start of the name of ``path``'s temporary copies: hidden, naming the original.

    The name is shortened so that the copy's name stays within filesystem limits.
    """
    return f".{path.name[:64]}{TEMP_MARKER}"


def replace_with_edited_copy(path: Path, edit: Callable[[Path], T]) -> T:
    """Copy ``path``, run ``edit`` on the copy, then move the copy over ``path``.

    The copy gets the original's permission bits (and owner where allowed), not its mtime.
    When anything fails the copy is removed and the original is left untouched; the error
    propagates. A symlink is followed: its target is replaced, the link stays.
    """
    target = Path(os.path.realpath(path))
    before = _writable_stat(path, target)
    fd, name = tempfile.mkstemp(prefix=temp_prefix(target), dir=target.parent)
    os.close(fd)
    copy = Path(name)
    try:
        shutil.copyfile(target, copy)
        result = edit(copy)
        _fsync(copy)
        _copy_permissions(before, copy)
        if _signature(os.stat(target)) != _signature(before):
            raise TagWriteError(path, "the file changed on disk while its tags were written")
        os.replace(copy, target)
    except BaseException:
        with contextlib.suppress(OSError):
            copy.unlink()
        raise
    _fsync_directory(target.parent)
    return result


def _writable_stat(path: Path, target: Path) -> os.stat_result:
    """``target``'s stat, after checking that it and its folder may be rewritten.

    A file or folder with no write permission bit at all counts as read-only even for root:
    the user marked it so on purpose.
    """
    st = os.stat(target)
    if not stat.S_ISREG(st.st_mode):
        raise TagWriteError(path, "not a regular file")
    for checked, what in ((target, "the file"), (target.parent, "its folder")):
        if not os.access(checked, os.W_OK) or not os.stat(checked).st_mode & _ANY_WRITE:
            raise TagWriteError(path, f"{what} is read-only")
    return st


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns


def _copy_permissions(original: os.stat_result, copy: Path) -> None:
    if os.name == "posix":
        # Only root may give the copy the original's owner; otherwise the rewritten file
        # belongs to the user running moodlib, as with any editor that saves by renaming.
        with contextlib.suppress(PermissionError):
            os.chown(copy, original.st_uid, original.st_gid)
    os.chmod(copy, stat.S_IMODE(original.st_mode))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(folder: Path) -> None:
    # Makes the rename durable. The file is already replaced, so a folder that cannot be
    # synced (not possible on Windows, some network filesystems) is not an error.
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
