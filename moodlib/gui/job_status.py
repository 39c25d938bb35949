"""The status bar's view of the running job: a progress bar, the current file, an ETA, Cancel."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from moodlib.gui.jobs import Job
from moodlib.gui.table_model import format_duration
from moodlib.progress import Progress


class JobStatus(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        self.bar = QProgressBar()
        self.bar.setFixedWidth(180)
        self.bar.setTextVisible(True)
        self.detail = QLabel()
        self.detail.setMinimumWidth(120)
        self.detail.setTextFormat(Qt.TextFormat.PlainText)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.title, self.bar, self.detail, self.cancel_button):
            layout.addWidget(widget)
        self.job: Job | None = None
        self.cancel_button.clicked.connect(self.cancel)
        self.hide()

    def track(self, job: Job) -> None:
        self.job = job
        self.title.setText(job.title)
        self.bar.setRange(0, 0)  # busy until the job says how much there is
        self.detail.setText("")
        self.cancel_button.setEnabled(job.cancellable)
        self.cancel_button.setVisible(job.cancellable)
        job.progressed.connect(self.show_progress)
        job.ended.connect(self.hide)
        self.show()

    def show_progress(self, progress: Progress) -> None:
        if progress.total:
            self.bar.setRange(0, progress.total)
            self.bar.setValue(progress.done)
            self.bar.setFormat(
                "%p%" if progress.unit == "percent" else f"{progress.done}/{progress.total}"
            )
        else:
            self.bar.setRange(0, 0)
        parts = [Path(progress.text).name if "/" in progress.text else progress.text]
        eta = self.eta_seconds(progress)
        if eta is not None:
            parts.append(f"ETA {format_duration(eta)}")
        self.detail.setText(" · ".join(p for p in parts if p))
        self.detail.setToolTip(progress.text)

    def eta_seconds(self, progress: Progress) -> float | None:
        if self.job is None or self.job.started_at is None or not progress.total:
            return None
        if progress.done <= 0 or progress.done >= progress.total:
            return None
        elapsed = time.monotonic() - self.job.started_at
        return elapsed / progress.done * (progress.total - progress.done)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.cancel_button.setEnabled(False)
            self.detail.setText("cancelling…")
