"""The window's jobs: one foreground job at a time, and background jobs kept alive.

The foreground job (a scan, a write, a retraining...) runs on ``pool``, is shown in the status
bar (``JobStatus``) with its progress and Cancel, and keeps the window busy until its
results are handled: a second one is refused meanwhile. Background jobs (the spectrogram
previews) run on their owner's pool; the runner only holds them until they end, so that
closing the window can cancel every job and wait for it.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QThreadPool, Signal

from moodlib.gui.job_status import JobStatus
from moodlib.gui.jobs import Job
from moodlib.gui.prompts import Prompts


class JobRunner(QObject):
    job_started = Signal(object)  # a foreground Job, just before it starts
    busy_changed = Signal()  # a foreground job started, or ended

    def __init__(self, status: JobStatus, prompts: Prompts, parent: QObject | None = None):
        super().__init__(parent)
        self.status = status
        self.prompts = prompts
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)
        self.job: Job | None = None  # the foreground job
        self._jobs: set[Job] = set()

    @property
    def busy(self) -> bool:
        """A foreground job is running, or its results are not handled yet."""
        return self.job is not None

    def start(self, job: Job) -> bool:
        """Run ``job`` as the foreground job; False when another one is running (one whose
        results are being handled, say a plan before its write, does not count)."""
        if self.job is not None and self.job.running:
            self.prompts.say(f"Wait for “{self.job.title}” to finish.", 5000)
            return False
        self.job = job
        job.failed.connect(lambda message: self._failed(job, message))
        job.ended.connect(lambda: self._ended(job))
        self._keep(job)
        self.status.track(job)
        self.job_started.emit(job)
        job.start(self.pool)
        self.busy_changed.emit()
        return True

    def start_background(self, job: Job, pool: QThreadPool) -> None:
        """Run ``job`` on ``pool``, beside the foreground job and not shown."""
        self._keep(job)
        job.start(pool)

    def cancel(self) -> None:
        """Cancel the foreground job, if it can stop halfway."""
        if self.job is not None and self.job.cancellable:
            self.status.cancel()

    def cancel_all(self) -> None:
        """Ask every job, foreground or background, to stop (the window is closing)."""
        for job in list(self._jobs):
            job.cancel()

    def _keep(self, job: Job) -> None:
        self._jobs.add(job)
        job.ended.connect(lambda: self._jobs.discard(job))

    def _failed(self, job: Job, message: str) -> None:
        self.prompts.say(f"{job.title} failed: {message}", 15000)
        self.prompts.warn(job.title, f"{job.title} failed.", message)

    def _ended(self, job: Job) -> None:
        if self.job is job:
            self.job = None
        self.busy_changed.emit()
