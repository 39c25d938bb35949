"""The library's folders and the scan: add and remove folders, scan them incrementally with
the active pack, show the tracks tagged so far while it runs, and the problems it leaves.

The folders live in moodlib's settings, shared with the CLI (``config.library_folders``),
and are read again at each scan. A folder added while a task runs is scanned when it ends.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from moodlib import config
from moodlib.gui import operations
from moodlib.gui.job_runner import JobRunner
from moodlib.gui.jobs import Job
from moodlib.gui.library_panel import LibraryPanel
from moodlib.gui.pack_controller import PackController
from moodlib.gui.prompts import Prompts
from moodlib.gui.results import FileOutcome, ResultsDock
from moodlib.gui.review_controller import ReviewController
from moodlib.library.catalog import Catalog
from moodlib.library.views import scan_errors
from moodlib.pipeline import ScanResult

SCAN_REFRESH_MS = 4000


class ScanController(QObject):
    folders_changed = Signal()

    def __init__(
        self,
        window: QWidget,
        *,
        settings: QSettings,
        catalog: Catalog,
        library: LibraryPanel,
        results: ResultsDock,
        packs: PackController,
        review: ReviewController,
        taggers: operations.TaggerCache,
        jobs: JobRunner,
        prompts: Prompts,
    ) -> None:
        super().__init__(window)
        self._window = window
        self.settings = settings
        self.catalog = catalog
        self.library = library
        self.results = results
        self.packs = packs
        self.review = review
        self.taggers = taggers
        self.jobs = jobs
        self.prompts = prompts
        self._scan_when_idle = False
        self._missing_folders: list[str] = []
        self._refresh = QTimer(self)
        self._refresh.setInterval(SCAN_REFRESH_MS)
        self._refresh.timeout.connect(self._refresh_during_scan)
        jobs.busy_changed.connect(self._scan_if_waiting)
        library.add_requested.connect(self.choose_folder)
        library.remove_requested.connect(self.ask_remove_folder)
        library.scan_requested.connect(self.scan)

    def show_folders(self) -> None:
        """List the library's folders as the settings hold them now."""
        self.library.set_folders(config.library_folders())
        self.folders_changed.emit()

    # -- folders --------------------------------------------------------------------------

    def choose_folder(self) -> None:
        start = self.settings.value("library/last-folder", str(Path.home()))
        folder = QFileDialog.getExistingDirectory(self._window, "Add a music folder", start)
        if folder:
            self.settings.setValue("library/last-folder", folder)
            self.add_folder(folder)

    def add_folder(self, folder: str | Path) -> None:
        """Add ``folder`` to the library and scan it, now or when the running task ends."""
        config.add_library_folders([folder])
        self.show_folders()
        if self.packs.pack is None:
            self.prompts.say(
                "Install or choose a model pack (Models ▸ Model packs…) to scan.", 10000
            )
        elif not self.jobs.busy:
            self.scan()
        else:  # scanned as soon as the running task ends
            self._scan_when_idle = True
            self.prompts.say(
                f"{Path(folder).name} is scanned when “{self.jobs.job.title}” has finished.", 10000
            )

    def ask_remove_folder(self, folder: str) -> None:
        tracks = len(self.catalog.tracks([folder]))
        self.prompts.ask(
            "Remove folder",
            f"Remove {folder} from the library?",
            f"Its {tracks} tracks and your decisions on them leave the catalog. "
            "The files are not touched.",
            "Remove",
            lambda: self.remove_folder(folder),
        )

    def remove_folder(self, folder: str) -> None:
        job = Job(
            f"Removing {Path(folder).name}", lambda **kw: operations.remove_folder(folder, **kw)
        )

        def done(removed: int) -> None:
            config.remove_library_folder(folder)
            self.show_folders()
            self.prompts.say(f"Removed {folder} ({removed} tracks).", 8000)
            self.review.refresh_table(scores=True)
            self.refresh_problems()

        job.succeeded.connect(done)
        self.jobs.start(job)

    # -- scanning -------------------------------------------------------------------------

    def scan(self) -> None:
        """Scan every library folder with the active pack (incrementally), in a job."""
        folders = config.library_folders()
        self.library.set_folders(folders)  # with those a 'moodlib scan' added meanwhile
        self.folders_changed.emit()
        pack = self.packs.pack
        if pack is None or not folders:
            return
        job = Job(
            f"Scanning with {pack.name}",
            lambda **kw: operations.scan_folders(folders, pack, self.taggers, **kw),
        )
        job.succeeded.connect(self._scanned)
        job.ended.connect(self._refresh.stop)
        if self.jobs.start(job):
            self._scan_when_idle = False
            self._refresh.start(SCAN_REFRESH_MS)

    def stop_refreshing(self) -> None:
        """No more table refreshes for the running scan (the window is closing)."""
        self._refresh.stop()

    def _scan_if_waiting(self) -> None:
        if self._scan_when_idle and not self.jobs.busy and self.prompts.question is None:
            QTimer.singleShot(0, self.scan)  # a folder added meanwhile

    def _scanned(self, result: ScanResult) -> None:
        self._missing_folders = result.missing_paths
        self.review.refresh_table(scores=True)
        self.refresh_problems()
        summary = (
            f"Scan: {len(result.tagged)} tagged, {len(result.skipped)} unchanged, "
            f"{len(result.failed)} failed"
        )
        if result.removed:
            summary += f", {result.removed} gone from disk"
        if result.cancelled:
            summary += " — cancelled; scan again to resume"
        self.prompts.say(summary, 15000)
        if result.failed or result.missing_paths:
            self.results.show_problems()

    def _refresh_during_scan(self) -> None:
        """Show the tracks tagged so far; on a big library less often, so that browsing
        stays fluid (the refresh reads every score)."""
        started = time.monotonic()
        self.review.refresh_table(scores=True)
        elapsed_ms = (time.monotonic() - started) * 1000
        self._refresh.setInterval(max(SCAN_REFRESH_MS, round(20 * elapsed_ms)))

    def refresh_problems(self) -> None:
        """The Problems tab: folders gone at the last scan, files the catalog could not read."""
        outcomes = [FileOutcome(p, "error", "folder not found") for p in self._missing_folders]
        outcomes += [FileOutcome(path, "error", error) for path, error in scan_errors(self.catalog)]
        self.results.set_problems(outcomes)
