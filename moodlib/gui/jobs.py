"""Running long work off the UI thread: a ``Job`` wraps a plain function and reports by signals.

The function runs on a ``QThreadPool`` thread and gets two keyword arguments: ``progress``, to
call with a ``moodlib.progress.Progress``, and ``cancel``, the ``threading.Event`` it should poll
(the shapes every long function in moodlib takes). Its return
value arrives in ``succeeded``, an exception's message in ``failed``; ``ended`` follows either.
Signals cross to the UI thread as queued connections, so slots never run on the worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)


class Job(QObject):
    """One piece of work for a thread pool; keep a reference until ``ended``."""

    progressed = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str)
    ended = Signal()

    def __init__(
        self,
        title: str,
        work: Callable[..., Any],
        *,
        cancellable: bool = True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.title = title
        self.cancellable = cancellable
        self.cancel_event = threading.Event()
        self.started_at: float | None = None
        self._work = work
        self.running = False

    def start(self, pool: QThreadPool) -> None:
        self.running = True
        self.started_at = time.monotonic()
        pool.start(_Runnable(self))

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def _run(self) -> None:
        try:
            result = self._work(progress=self.progressed.emit, cancel=self.cancel_event)
        except Exception as error:
            log.exception("%s failed", self.title)
            self.running = False  # before the signals: their slots may start the next job
            self.failed.emit(str(error) or type(error).__name__)
        else:
            self.running = False
            self.succeeded.emit(result)
        self.ended.emit()


class _Runnable(QRunnable):
    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job

    def run(self) -> None:
        self.job._run()
