"""Writing the reviewed tags into the files, undoing the last write, and playlists.

A write is planned and dry-run in a job (``operations.plan_write``), confirmed by the user
with the number of files that change, then written in a second job; what it did to each
file goes to Results ▸ Last write. These are the journaled operations of ``moodlib write``
and ``moodlib undo``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QSettings
from PySide6.QtWidgets import QFileDialog, QWidget

from moodlib.gui import operations
from moodlib.gui.job_runner import JobRunner
from moodlib.gui.jobs import Job
from moodlib.gui.pack_controller import PackController
from moodlib.gui.prompts import Prompts
from moodlib.gui.results import FileOutcome, ResultsDock
from moodlib.gui.review_controller import ReviewController
from moodlib.gui.track_table import TrackTable
from moodlib.metadata.journal import WriteResult


class WriteController(QObject):
    def __init__(
        self,
        window: QWidget,
        *,
        settings: QSettings,
        table: TrackTable,
        results: ResultsDock,
        packs: PackController,
        review: ReviewController,
        jobs: JobRunner,
        prompts: Prompts,
    ) -> None:
        super().__init__(window)
        self._window = window
        self.settings = settings
        self.table = table
        self.results = results
        self.packs = packs
        self.review = review
        self.jobs = jobs
        self.prompts = prompts

    # -- writing --------------------------------------------------------------------------

    def write(self, *, selection: bool) -> None:
        """Write the tags of the selected tracks (else of every track), once confirmed."""
        pack = self.packs.pack
        if pack is None:
            self.prompts.say("No model pack: nothing to write.", 8000)
            return
        ids = self.table.selected_track_ids() if selection else None
        if selection and not ids:
            self.prompts.say("Select the tracks to write first.", 8000)
            return
        count = f"{len(ids)} selected tracks" if ids is not None else "all tracks"
        job = Job(f"Checking {count}", lambda **kw: operations.plan_write(ids, pack, **kw))
        job.succeeded.connect(self._confirm_write)
        self.jobs.start(job)

    def _confirm_write(self, plan: operations.WritePlan) -> None:
        unchanged = len(plan.plan) - plan.changes - plan.errors
        if plan.changes == 0:
            self._show_write_results(plan.dry_run, "Nothing to write")
            self.prompts.say(
                f"Nothing to write: {unchanged} files already carry their tags.", 10000
            )
            return
        detail = f"{unchanged} files already carry their tags."
        if plan.errors:
            detail += f" {plan.errors} files cannot be written (see Results)."
        detail += " You can undo the write afterwards."
        self.prompts.ask(
            "Write tags",
            f"Write mood tags into {plan.changes} file{'s' if plan.changes != 1 else ''}?",
            detail,
            "Write",
            lambda: self._write(plan),
        )

    def _write(self, plan: operations.WritePlan) -> None:
        job = Job(f"Writing {plan.changes} files", lambda **kw: operations.write_plan(plan, **kw))
        untouched = [r for r in plan.dry_run if not r.changed]
        job.succeeded.connect(lambda results: self._written(results + untouched, "written"))
        self.jobs.start(job)

    # -- undoing --------------------------------------------------------------------------

    def ask_undo(self) -> None:
        files = operations.last_write_size()
        if files is None:
            self.prompts.say("Nothing to undo.", 8000)
            return
        self.prompts.ask(
            "Undo last write",
            f"Undo the last write ({files} file{'s' if files != 1 else ''})?",
            "The moods those files had before are put back; files whose moods changed "
            "since are left alone.",
            "Undo",
            self.undo,
        )

    def undo(self) -> None:
        job = Job("Undoing the last write", operations.undo_last_write, cancellable=False)
        job.succeeded.connect(lambda results: self._written(results, "restored"))
        self.jobs.start(job)

    def _written(self, results: list[WriteResult], verb: str) -> None:
        self._show_write_results(results, verb)
        changed = sum(r.changed for r in results)
        errors = sum(bool(r.error) for r in results)
        self.prompts.say(f"{changed} files {verb}, {errors} errors.", 15000)
        self.review.tracks_changed()

    def _show_write_results(self, results: list[WriteResult], verb: str) -> None:
        outcomes = []
        for r in sorted(results, key=lambda r: (not r.error, not r.changed, r.path)):
            if r.error:
                outcomes.append(FileOutcome(r.path, "error", r.error))
            elif r.changed:
                after = ", ".join(r.after) or "(no moods)"
                before = ", ".join(r.before) or "(no moods)"
                outcomes.append(FileOutcome(r.path, verb, f"{before} → {after}"))
            else:
                outcomes.append(FileOutcome(r.path, "unchanged", ", ".join(r.after)))
        self.results.show_write_results(outcomes)

    # -- playlists ------------------------------------------------------------------------

    def choose_playlist_folder(self) -> None:
        start = self.settings.value("playlists/last-folder", str(Path.home()))
        folder = QFileDialog.getExistingDirectory(self._window, "Write playlists into", start)
        if folder:
            self.settings.setValue("playlists/last-folder", folder)
            self.make_playlists(folder)

    def make_playlists(self, folder: str | Path) -> None:
        """Write one playlist per tag of the active pack into ``folder``, in a worker."""
        pack = self.packs.pack
        if pack is None:
            self.prompts.say("No model pack: no tags to make playlists of.", 8000)
            return
        job = Job("Writing playlists", lambda **kw: operations.make_playlists(folder, pack, **kw))
        job.succeeded.connect(
            lambda playlists: self.prompts.say(
                f"{sum(bool(p.tracks) for p in playlists)} playlists written to {folder}.", 15000
            )
        )
        self.jobs.start(job)
