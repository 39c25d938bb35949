"""Reviewing: the current track in the track panel, and the decisions made on it.

A decision (accept, reject, undecide, an added tag) is saved in the catalog at once, on the
UI thread; accepting the predicted tags of a whole selection is a job. The table's rows are
rebuilt here too (``refresh_table``), since the panel follows the table's current track.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel

from moodlib.gui import operations
from moodlib.gui.job_runner import JobRunner
from moodlib.gui.jobs import Job
from moodlib.gui.pack_controller import PackController
from moodlib.gui.preview_controller import PreviewController
from moodlib.gui.prompts import Prompts
from moodlib.gui.table_model import TrackTableModel
from moodlib.gui.track_panel import TrackPanel, TrackView
from moodlib.gui.track_table import TrackTable
from moodlib.library.catalog import Catalog, Track
from moodlib.library.views import TrackFilter, added_tags


class ReviewController(QObject):
    track_shown = Signal()  # the panel shows the current track, or none

    def __init__(
        self,
        catalog: Catalog,
        *,
        table: TrackTable,
        panel: TrackPanel,
        tracks_label: QLabel,
        packs: PackController,
        previews: PreviewController,
        jobs: JobRunner,
        prompts: Prompts,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.catalog = catalog
        self.table = table
        self.model: TrackTableModel = table.track_model
        self.panel = panel
        self.tracks_label = tracks_label
        self.packs = packs
        self.previews = previews
        self.jobs = jobs
        self.prompts = prompts
        table.selectionModel().currentRowChanged.connect(lambda *_: self.show_current_track())
        panel.decision_requested.connect(self.set_decision)
        panel.add_requested.connect(self.add_tag)

    # -- the table ------------------------------------------------------------------------

    def refresh_table(self, *, scores: bool = False) -> None:
        """Rebuild the table's rows (the table keeps its selection)."""
        self.model.refresh(scores=scores)
        self.tracks_label.setText(
            f"{self.model.rowCount()} of {self.catalog.count_tracks()} tracks"
        )
        self.show_current_track()

    def show_pack(self) -> None:
        """Show the active pack's scores (and mels) from now on."""
        pack = self.packs.pack
        self.model.set_pack(pack.name if pack else None, pack.thresholds if pack else {})
        self.previews.clear()
        self.panel.show_track(None)  # shown again below, with this pack's scores and mel
        self.refresh_table(scores=True)

    def set_filter(self, track_filter: TrackFilter) -> None:
        self.model.track_filter = track_filter
        if self.model.started:  # not while the window is being set up
            self.refresh_table()

    def tracks_changed(self) -> None:
        """Many tracks changed in the catalog (a write, a bulk accept): show them again."""
        self.model.tracks_changed()
        self.show_current_track()

    # -- the track panel ------------------------------------------------------------------

    def show_current_track(self) -> None:
        track_id = self.table.current_track_id()
        if track_id is None:
            self.panel.show_track(None)
            self.track_shown.emit()
            return
        try:
            track = self.catalog.track(track_id)
        except KeyError:
            self.panel.show_track(None)
            return
        was = self.panel.view.track.id if self.panel.view else None
        self.panel.show_track(self._track_view(track))
        if track.id != was and self.packs.pack is not None and track.error is None:
            self.previews.request(track.path, track.mtime_ns)
        self.track_shown.emit()

    def _track_view(self, track: Track) -> TrackView:
        pack = self.packs.pack
        scores = self.catalog.prediction(track.id, pack.name) if pack else None
        return TrackView(
            track,
            pack,
            scores,
            self.catalog.decisions(track.id),
            added_tags(self.catalog, track.id),
        )

    # -- decisions ------------------------------------------------------------------------

    def set_decision(self, tag: str, decision: str | None) -> None:
        track_id = self.table.current_track_id()
        if track_id is None:
            return
        self.catalog.set_decision(track_id, tag, decision)
        self._track_edited(track_id)

    def add_tag(self, tag: str) -> None:
        track_id = self.table.current_track_id()
        if track_id is None:
            return
        self.catalog.add_tag(track_id, tag)
        self._track_edited(track_id)

    def _track_edited(self, track_id: int) -> None:
        self.model.track_changed(track_id)
        self.panel.show_track(self._track_view(self.catalog.track(track_id)))

    def accept_predicted(self) -> None:
        """Accept, in a job, the tags the write policy gives each selected track."""
        ids = self.table.selected_track_ids()
        pack = self.packs.pack
        if not ids or pack is None:
            return
        job = Job(
            f"Accepting predicted tags of {len(ids)} tracks",
            lambda **kw: operations.accept_predicted(ids, pack, **kw),
        )

        def done(made: int) -> None:
            self.prompts.say(f"Accepted {made} predicted tags.", 8000)
            self.tracks_changed()

        job.succeeded.connect(done)
        self.jobs.start(job)
