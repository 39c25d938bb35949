"""Retrain on my corrections: which pack a retraining fine-tunes, the job, its outcome.

The job is ``operations.retrain`` (the UI thread never trains). Its outcome is a dialog
comparing the personal pack with its base, offering to switch to it and rescan; or a notice
saying what is missing when there is not enough to learn from.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QWidget

from moodlib import config
from moodlib.gui import operations
from moodlib.gui.job_runner import JobRunner
from moodlib.gui.jobs import Job
from moodlib.gui.pack_controller import PackController
from moodlib.gui.prompts import Prompts
from moodlib.gui.retrain_dialog import RetrainDialog
from moodlib.gui.scan_controller import ScanController
from moodlib.library.catalog import Catalog
from moodlib.packs import Pack


class RetrainController(QObject):
    base_changed = Signal(str)  # the sentence saying what a retraining learns on, or why not

    def __init__(
        self,
        window: QWidget,
        *,
        catalog: Catalog,
        packs: PackController,
        scans: ScanController,
        taggers: operations.TaggerCache,
        jobs: JobRunner,
        prompts: Prompts,
    ) -> None:
        super().__init__(window)
        self._window = window
        self.catalog = catalog
        self.packs = packs
        self.scans = scans
        self.taggers = taggers
        self.jobs = jobs
        self.prompts = prompts
        self.base: Pack | None = None  # what a retraining fine-tunes, if it can
        self.reason = ""  # the sentence of ``base_changed``
        self.dialog: RetrainDialog | None = None

    def update_base(self) -> None:
        """Work out the base again (the active pack, or a personal pack's own base)."""
        self.base, self.reason = operations.retrain_base(self.packs.pack)
        self.base_changed.emit(self.reason)

    def retrain(self) -> None:
        """Fine-tune the active pack (a personal pack: its base) on every decision, in a
        worker; the result dialog then offers to switch to the new personal pack."""
        base = self.base
        if base is None:
            self.prompts.say(self.reason, 10000)
            return
        name = base.name
        job = Job(
            f"Retraining {name} on your corrections",
            lambda **kw: operations.retrain(name, self.taggers, **kw),
        )
        job.succeeded.connect(self._retrained)
        self.jobs.start(job)

    def _retrained(self, outcome: operations.Retrained) -> None:
        if outcome.cancelled:
            self.prompts.say("Retraining cancelled: no pack was made.", 10000)
            return
        if outcome.problem is not None:
            self.prompts.inform(
                "Retrain on my corrections",
                "Not enough corrections to retrain yet.",
                f"{outcome.problem[0].upper()}{outcome.problem[1:]}.\n\nReview some tracks "
                "first: accept (A) or reject (R) a tag on tracks where the pack is right and "
                "where it is wrong. A tag is learned once the training albums hold 3 tracks "
                "where you accepted it and 3 where you rejected it (about a fifth of the "
                "reviewed tracks, whole albums, are held out to measure the result).",
            )
            return
        result = outcome.result
        self.packs.reload_dialog()
        self.prompts.say(
            f"Retrained: {result.pack.name} is installed ({result.seconds:.1f} s).", 15000
        )
        pack = self.packs.pack
        active = pack.name if pack is not None else config.active_pack_name()
        dialog = RetrainDialog(outcome, active, self._window)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.accepted.connect(lambda: self.switch_and_rescan(dialog.pack_name))
        dialog.rejected.connect(
            lambda: self.prompts.say(
                f"{dialog.pack_name} is installed; choose it any time in "
                "Models ▸ Model packs…", 15000
            )
        )  # fmt: skip
        dialog.finished.connect(lambda _result: setattr(self, "dialog", None))
        self.dialog = dialog
        dialog.open()

    def switch_and_rescan(self, name: str) -> None:
        """Make ``name`` the active pack and score the tracks it has not scored yet (an
        incremental scan)."""
        self.packs.switch(name)
        if self.packs.pack is None:
            return
        if config.library_folders():
            self.scans.scan()
        elif self.catalog.count_tracks():
            self.prompts.say(
                f"Active pack: {name}. Add the library's folders to score them with it.", 10000
            )
