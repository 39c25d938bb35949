"""One writer of tags per catalog at a time, and a way to tell whether a writer is alive.

The lock is an OS file lock on ``CATALOG.write-lock`` beside the catalog: the system drops it
when its process ends, however it ends, so a journal entry left unsettled while nobody holds
the lock was left by a crash (``journal.recover``), not by a write still going on.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

if os.name == "nt":
    import msvcrt

    def _lock(fd: int, wait: bool) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int, wait: bool) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class WriteLock:
    """The write lock of the catalog at ``catalog_path``.

    ``with WriteLock(path):`` waits for other writers; ``acquire(wait=False)`` only tries.
    """

    def __init__(self, catalog_path: str | os.PathLike) -> None:
        self.path = Path(f"{os.fspath(catalog_path)}.write-lock")
        self._fd: int | None = None

    def acquire(self, *, wait: bool = True) -> bool:
        """Take the lock (waiting for it, or not); True when this process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if not _lock(fd, wait):
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            _unlock(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriteLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
