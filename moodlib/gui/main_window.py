"""The main window: library folders, the track table, the track panel, jobs and their results.

Every long task is a ``Job`` on the window's thread pool (one foreground job at a time, shown
in the status bar with progress and Cancel); spectrogram previews run on a pool of their own
so that browsing never waits for a scan. The catalog connection of the window is used for
reads and for single review decisions; workers open their own. Retraining on the user's
corrections is such a job too (``operations.retrain``): the UI thread never trains.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import (
    QByteArray,
    QItemSelection,
    QItemSelectionModel,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QFileDialog,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStyle,
    QTableView,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from moodlib import config
from moodlib.gui import operations
from moodlib.gui.filter_bar import FilterBar
from moodlib.gui.job_status import JobStatus
from moodlib.gui.jobs import Job
from moodlib.gui.library_panel import LibraryPanel
from moodlib.gui.models_dialog import ModelsDialog, pack_origin
from moodlib.gui.playback import Playback
from moodlib.gui.results import FileOutcome, FileOutcomeModel, OutcomePane
from moodlib.gui.retrain_dialog import RetrainDialog
from moodlib.gui.settings import ui_settings
from moodlib.gui.table_model import Column, TrackIdRole, TrackTableModel
from moodlib.gui.track_panel import TrackPanel, TrackView
from moodlib.inference import resolve_device
from moodlib.library.catalog import Catalog
from moodlib.library.views import added_tags, scan_errors
from moodlib.metadata import journal
from moodlib.metadata.journal import WriteResult
from moodlib.packs import Pack, PackError
from moodlib.packstore import PackStore
from moodlib.pipeline import ScanResult

SCAN_REFRESH_MS = 4000
PREVIEW_CACHE = 8

SHORTCUTS = (
    ("A", "accept the current tag and go to the next"),
    ("R", "reject the current tag and go to the next"),
    ("U", "undecide the current tag"),
    ("] / [", "next / previous tag"),
    ("J / K", "next / previous track"),
    ("T", "add a tag"),
    ("Shift+A", "accept every predicted tag of the selected tracks"),
    ("Space", "play / pause"),
    ("Ctrl+F", "filter the table"),
    ("F5", "scan the library"),
    ("Ctrl+S / Ctrl+Shift+S", "write tags of the selected / all tracks"),
    ("Ctrl+Z", "undo the last write"),
)


class MainWindow(QMainWindow):
    job_started = Signal(object)  # a foreground Job, just before it starts

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("moodlib")
        self.settings = ui_settings()
        self.catalog = Catalog(config.catalog_path())
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)
        self.preview_pool = QThreadPool(self)
        self.preview_pool.setMaxThreadCount(1)
        self.taggers = operations.TaggerCache()
        self.playback = Playback(self)
        self.pack: Pack | None = None
        self.pack_problem: str | None = None
        self.retrain_base: Pack | None = None  # what a retraining fine-tunes, if it can
        self.job: Job | None = None
        self.question: QMessageBox | None = None
        self.notice: QMessageBox | None = None  # the last information box (retraining's)
        self.models_dialog: ModelsDialog | None = None
        self.retrain_dialog: RetrainDialog | None = None
        self._scan_when_idle = False
        self._jobs: set[Job] = set()
        self._previews: OrderedDict[tuple, operations.Preview] = OrderedDict()
        self._preview_serial = 0
        self._missing_folders: list[str] = []

        self._build_central()
        self._build_docks()
        self._build_actions()
        self._build_menus_and_toolbar()
        self._build_status_bar()
        self._scan_refresh = QTimer(self)
        self._scan_refresh.setInterval(SCAN_REFRESH_MS)
        self._scan_refresh.timeout.connect(self._refresh_during_scan)

        self.library.set_folders(config.library_folders())
        self._restore_settings()
        self.load_pack()  # the first read of the catalog, with the restored sort order
        self.refresh_problems()
        self._update_actions()
        # A handful of files at most: what one interrupted write or undo left unsettled.
        if summary := journal.recover(self.catalog).summary():
            self.statusBar().showMessage(f"{summary[0].upper()}{summary[1:]}.", 15000)

    # -- building -------------------------------------------------------------------------

    def _build_central(self) -> None:
        self.model = TrackTableModel(self.catalog, self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setSortingEnabled(True)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setShowGrid(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        header = self.table.horizontalHeader()
        header.setSortIndicator(Column.TITLE, Qt.SortOrder.AscendingOrder)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(Column.TAGS, QHeaderView.ResizeMode.Stretch)
        for column, width in (
            (Column.TITLE, 130),
            (Column.ARTIST, 80),
            (Column.ALBUM, 80),
            (Column.DURATION, 50),
            (Column.REVIEW, 78),
            (Column.WRITTEN, 76),
        ):
            header.resizeSection(column, width)  # fmt: skip
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self.show_current_track())
        self._kept_selection: tuple[int | None, list[int]] = (None, [])
        self.model.modelAboutToBeReset.connect(self._remember_selection)
        self.model.modelReset.connect(self._restore_selection)

        self.filter_bar = FilterBar()
        self.filter_bar.changed.connect(self._filter_changed)
        table_side = QWidget()
        table_layout = QVBoxLayout(table_side)
        table_layout.setContentsMargins(4, 4, 0, 0)
        table_layout.addWidget(self.filter_bar)
        table_layout.addWidget(self.table, 1)

        self.panel = TrackPanel(self.playback)
        self.panel.decision_requested.connect(self.set_decision)
        self.panel.add_requested.connect(self.add_tag)
        self.panel.max_tags_changed.connect(config.save_max_tags)
        self.splitter = QSplitter()
        self.splitter.addWidget(table_side)
        self.splitter.addWidget(self.panel)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([690, 590])
        self.setCentralWidget(self.splitter)

    def _build_docks(self) -> None:
        self.library = LibraryPanel()
        self.library.add_requested.connect(self.choose_folder)
        self.library.remove_requested.connect(self.ask_remove_folder)
        self.library.scan_requested.connect(self.scan)
        self.library_dock = QDockWidget("Library folders", self)
        self.library_dock.setObjectName("library-dock")
        self.library_dock.setWidget(self.library)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.library_dock)

        self.problems = FileOutcomeModel(self)
        self.write_results = FileOutcomeModel(self)
        self.results_tabs = QTabWidget()
        self.problems_view = OutcomePane(
            self.problems, "No problems: every file found so far could be read."
        )
        self.write_results_view = OutcomePane(
            self.write_results,
            "Nothing written yet: review tracks, then Tags ▸ Write tags of the selection.",
        )
        self.results_tabs.addTab(self.problems_view, "Problems")
        self.results_tabs.addTab(self.write_results_view, "Last write")
        self.results_dock = QDockWidget("Results", self)
        self.results_dock.setObjectName("results-dock")
        self.results_dock.setWidget(self.results_tabs)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.results_dock)
        self.splitDockWidget(self.library_dock, self.results_dock, Qt.Orientation.Horizontal)
        self.resizeDocks(
            [self.library_dock, self.results_dock], [300, 900], Qt.Orientation.Horizontal
        )
        self.resizeDocks([self.results_dock], [120], Qt.Orientation.Vertical)

    def _action(
        self,
        text: str,
        slot: Callable,
        shortcut: str | QKeySequence.StandardKey | None = None,
        icon: QStyle.StandardPixmap | None = None,
        tip: str | None = None,
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if icon is not None:
            action.setIcon(self.style().standardIcon(icon))
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)  # shortcuts work wherever the focus is in the window
        return action

    def _build_actions(self) -> None:
        pixmap = QStyle.StandardPixmap
        self.add_folder_action = self._action(
            "&Add music folder…", self.choose_folder, "Ctrl+O", pixmap.SP_DirOpenIcon,
            "Add a folder to the library and scan it",
        )  # fmt: skip
        self.scan_action = self._action(
            "&Scan library", self.scan, "F5", pixmap.SP_BrowserReload,
            "Scan the library folders for new and changed files",
        )  # fmt: skip
        self.cancel_action = self._action(
            "&Cancel task", self.cancel_job, None, pixmap.SP_BrowserStop, "Stop the running task"
        )
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)

        self.accept_action = self._action("&Accept tag", lambda: self.panel.decide("accept"), "A")
        self.reject_action = self._action("&Reject tag", lambda: self.panel.decide("reject"), "R")
        self.clear_action = self._action("&Undecide tag", lambda: self.panel.decide(None), "U")
        self.next_tag_action = self._action("Next tag", lambda: self.panel.move_tag(1), "]")
        self.previous_tag_action = self._action(
            "Previous tag", lambda: self.panel.move_tag(-1), "["
        )
        self.next_track_action = self._action("&Next track", lambda: self.move_track(1), "J")
        self.previous_track_action = self._action(
            "&Previous track", lambda: self.move_track(-1), "K"
        )
        self.add_tag_action = self._action("Add a &tag…", self.panel.focus_add_tag, "T")
        self.accept_predicted_action = self._action(
            "Accept &predicted tags of the selection", self.accept_predicted, "Shift+A",
            tip="Accept every tag reaching its threshold on the selected tracks "
            "(tags you rejected stay rejected)",
        )  # fmt: skip
        self.play_action = self._action(
            "&Play / pause", self.panel.toggle_playback, "Space", pixmap.SP_MediaPlay
        )
        self.play_action.setEnabled(self.playback.available)
        self.filter_action = self._action(
            "&Filter…", lambda: self.filter_bar.text.setFocus(), QKeySequence.StandardKey.Find
        )

        self.write_selected_action = self._action(
            "&Write tags of the selection…", lambda: self.write(selection=True), "Ctrl+S",
            pixmap.SP_DialogSaveButton, "Write the reviewed tags into the selected tracks' files",
        )  # fmt: skip
        self.write_all_action = self._action(
            "Write tags of &all tracks…", lambda: self.write(selection=False), "Ctrl+Shift+S",
            tip="Write the reviewed tags into every scanned file",
        )  # fmt: skip
        self.undo_write_action = self._action(
            "&Undo last write…", self.ask_undo, QKeySequence.StandardKey.Undo,
            pixmap.SP_ArrowBack, "Put back the moods the last write replaced",
        )  # fmt: skip
        self.playlists_action = self._action(
            "Make &playlists…", self.choose_playlist_folder,
            tip="Write one M3U8 playlist per tag into a folder",
        )  # fmt: skip

        self.models_action = self._action(
            "&Model packs…", self.show_models, None, pixmap.SP_FileDialogDetailedView,
            "Choose, install and import model packs",
        )  # fmt: skip
        self.retrain_action = self._action(
            "&Retrain on my corrections…", self.retrain, None, pixmap.SP_CommandLink
        )
        self.retrain_action.setObjectName("retrain-action")

        self.shortcuts_action = self._action("&Keyboard shortcuts", self.show_shortcuts, "F1")
        self.about_action = self._action("&About moodlib", self.show_about)

    def _build_menus_and_toolbar(self) -> None:
        menus = self.menuBar()
        library = menus.addMenu("&Library")
        for action in (self.add_folder_action, self.scan_action, self.cancel_action):
            library.addAction(action)
        library.addSeparator()
        library.addAction(self.quit_action)
        review = menus.addMenu("&Review")
        for action in (
            self.accept_action,
            self.reject_action,
            self.clear_action,
            self.add_tag_action,
            None,
            self.next_tag_action,
            self.previous_tag_action,
            self.next_track_action,
            self.previous_track_action,
            None,
            self.accept_predicted_action,
            self.play_action,
            self.filter_action,
        ):
            review.addSeparator() if action is None else review.addAction(action)
        tags = menus.addMenu("&Tags")
        for action in (self.write_selected_action, self.write_all_action, self.undo_write_action):
            tags.addAction(action)
        tags.addSeparator()
        tags.addAction(self.playlists_action)
        models = menus.addMenu("&Models")
        models.setToolTipsVisible(True)  # the retrain action says what it does, or why not
        models.addAction(self.models_action)
        models.addAction(self.retrain_action)
        view = menus.addMenu("&View")
        view.addAction(self.library_dock.toggleViewAction())
        view.addAction(self.results_dock.toggleViewAction())
        help_menu = menus.addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)
        help_menu.addAction(self.about_action)

        toolbar = QToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.setMovable(False)
        for action in (
            self.add_folder_action,
            self.scan_action,
            None,
            self.write_selected_action,
            self.undo_write_action,
            None,
            self.models_action,
            self.retrain_action,
        ):
            toolbar.addSeparator() if action is None else toolbar.addAction(action)
        self.addToolBar(toolbar)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.job_status = JobStatus()
        status.addWidget(self.job_status)
        self.tracks_label = QLabel()
        self.pack_label = QLabel()
        self.device_label = QLabel()
        for label in (self.tracks_label, self.pack_label, self.device_label):
            status.addPermanentWidget(label)
        device = resolve_device("auto")
        if device.type == "cuda":
            import torch

            text = f"GPU: {torch.cuda.get_device_name(device)}"
        elif device.type == "mps":
            text = "GPU: Apple MPS"
        else:
            text = "CPU"
        self.device_label.setText(f"Device: {text}")
        self.device_label.setToolTip("Where the model runs (the first GPU when there is one)")

    # -- settings -------------------------------------------------------------------------

    def _restore_settings(self) -> None:
        settings = self.settings
        geometry = settings.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        for key, restore in (
            ("window/state", self.restoreState),
            ("window/splitter", self.splitter.restoreState),
            ("window/panel-splitter", self.panel.splitter.restoreState),
            ("table/header", self.table.horizontalHeader().restoreState),
        ):
            value = settings.value(key)
            if isinstance(value, QByteArray):
                restore(value)
        header = self.table.horizontalHeader()
        self.model.sort_key = Column.SORT_KEYS[header.sortIndicatorSection()]
        self.model.descending = header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder
        self.filter_bar.unreviewed.setChecked(settings.value("filter/unreviewed", False, bool))

    def save_settings(self) -> None:
        settings = self.settings
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/state", self.saveState())
        settings.setValue("window/splitter", self.splitter.saveState())
        settings.setValue("window/panel-splitter", self.panel.splitter.saveState())
        settings.setValue("table/header", self.table.horizontalHeader().saveState())
        settings.setValue("filter/unreviewed", self.filter_bar.unreviewed.isChecked())
        settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop what runs (a scan resumes next time) and wait for the workers: nothing may
        write to the catalog or the files once the window is gone. The catalog connection
        closes with the window object, after the workers' last signals are delivered."""
        self.save_settings()
        self._scan_refresh.stop()
        for job in list(self._jobs):
            job.cancel()
        self.playback.stop()
        self.pool.waitForDone()
        self.preview_pool.waitForDone()
        super().closeEvent(event)

    # -- the pack -------------------------------------------------------------------------

    def load_pack(self) -> None:
        """Read the active pack's manifest (its weights load in workers when needed)."""
        name = config.active_pack_name()
        try:
            self.pack, self.pack_problem = PackStore().get(name, verify=False), None
        except PackError as error:
            self.pack, self.pack_problem = None, error.reason
        if self.pack is None:
            self.pack_label.setText(f"Pack: {name} (not installed)")
            self.pack_label.setToolTip(
                f"{self.pack_problem}\nInstall or choose one in Models ▸ Model packs…"
            )
            self.model.set_pack(None, {})
        else:
            self.pack_label.setText(f"Pack: {self.pack.name}")
            self.pack_label.setToolTip(
                f"{self.pack.name} ({pack_origin(self.pack)}): "
                f"{len(self.pack.covered)} of 56 tags covered"
            )
            self.model.set_pack(self.pack.name, self.pack.thresholds)
        self._update_retrain_base()
        self._previews.clear()
        self.panel.show_track(None)  # shown again below, with this pack's scores and mel
        self.refresh_table(scores=True)
        self._update_actions()

    def show_models(self) -> None:
        if self.models_dialog is None:
            self.models_dialog = ModelsDialog(self.start_job, self)
            self.models_dialog.active_pack_changed.connect(self._active_pack_changed)
            self.models_dialog.packs_changed.connect(self._packs_changed)
        self.models_dialog.reload()
        self.models_dialog.show()
        self.models_dialog.raise_()

    def _active_pack_changed(self, name: str) -> None:
        self.load_pack()
        if self.pack is not None and self.catalog.count_tracks():
            self.statusBar().showMessage(
                f"Active pack: {name}. Scan (F5) to score the library with it.", 10000
            )

    def _packs_changed(self) -> None:
        self._update_retrain_base()  # a personal pack's base may have come or gone
        self._update_actions()
        chosen = self.models_dialog.current_pack() if self.models_dialog else None
        if self.pack is None and chosen is not None:
            # Without a usable active pack, the pack the user just installed becomes it.
            config.save_setting("active_pack", chosen.name)
            self.models_dialog.reload(chosen.name)
            self._active_pack_changed(chosen.name)

    # -- retraining on the user's corrections ---------------------------------------------

    def _update_retrain_base(self) -> None:
        self.retrain_base, tip = operations.retrain_base(self.pack)
        self.retrain_action.setToolTip(tip)
        self.retrain_action.setStatusTip(tip)

    def retrain(self) -> None:
        """Fine-tune the active pack (a personal pack: its base) on every decision, in a
        worker; the result dialog then offers to switch to the new personal pack."""
        base = self.retrain_base
        if base is None:
            self.statusBar().showMessage(self.retrain_action.toolTip(), 10000)
            return
        name = base.name
        job = Job(
            f"Retraining {name} on your corrections",
            lambda **kw: operations.retrain(name, self.taggers, **kw),
        )
        job.succeeded.connect(self._retrained)
        self.start_job(job)

    def _retrained(self, outcome: operations.Retrained) -> None:
        if outcome.cancelled:
            self.statusBar().showMessage("Retraining cancelled: no pack was made.", 10000)
            return
        if outcome.problem is not None:
            self._show_notice(
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
        if self.models_dialog is not None:
            self.models_dialog.reload()
        self.statusBar().showMessage(
            f"Retrained: {result.pack.name} is installed ({result.seconds:.1f} s).", 15000
        )
        active = self.pack.name if self.pack is not None else config.active_pack_name()
        dialog = RetrainDialog(outcome, active, self)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.accepted.connect(lambda: self.switch_pack(dialog.pack_name, rescan=True))
        dialog.rejected.connect(
            lambda: self.statusBar().showMessage(
                f"{dialog.pack_name} is installed; choose it any time in "
                "Models ▸ Model packs…", 15000
            )
        )  # fmt: skip
        dialog.finished.connect(lambda _result: setattr(self, "retrain_dialog", None))
        self.retrain_dialog = dialog
        dialog.open()

    def switch_pack(self, name: str, *, rescan: bool = False) -> None:
        """Make ``name`` the active pack (as *Use this pack* does); with ``rescan``, score
        the tracks it has not scored yet (an incremental scan)."""
        config.save_setting("active_pack", name)
        self.load_pack()
        if self.models_dialog is not None:
            self.models_dialog.reload()
        if not rescan or self.pack is None:
            return
        if config.library_folders():
            self.scan()
        elif self.catalog.count_tracks():
            self.statusBar().showMessage(
                f"Active pack: {name}. Add the library's folders to score them with it.", 10000
            )

    def _show_notice(self, title: str, text: str, detail: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, title, text, parent=self)
        box.setInformativeText(detail)
        box.finished.connect(lambda _result: setattr(self, "notice", None))
        self.notice = box
        box.open()

    # -- the table ------------------------------------------------------------------------

    def refresh_table(self, *, scores: bool = False) -> None:
        """Rebuild the table's rows (the selection is kept by ``_restore_selection``)."""
        self.model.refresh(scores=scores)
        self.tracks_label.setText(
            f"{self.model.rowCount()} of {self.catalog.count_tracks()} tracks"
        )
        self.show_current_track()

    def _remember_selection(self) -> None:
        self._kept_selection = (self.current_track_id(), self.selected_track_ids())

    def _restore_selection(self) -> None:
        """After the model was rebuilt (sort, filter, scan): the same tracks selected, the
        same current track, or the first row when it is gone."""
        current, selected = self._kept_selection
        self._kept_selection = (None, [])
        ids = self.model.track_ids()
        selection = QItemSelection()
        rows = np.flatnonzero(np.isin(ids, selected))
        for run in np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1) if len(rows) else ():
            top = self.model.index(int(run[0]), 0)
            bottom = self.model.index(int(run[-1]), self.model.columnCount() - 1)
            selection.select(top, bottom)
        model_selection = self.table.selectionModel()
        flags = QItemSelectionModel.SelectionFlag
        model_selection.select(selection, flags.ClearAndSelect)
        row = self.model.row_of(current) if current is not None else None
        if row is not None:
            model_selection.setCurrentIndex(self.model.index(row, 0), flags.NoUpdate)
        elif self.model.rowCount():
            model_selection.setCurrentIndex(
                self.model.index(0, 0), flags.ClearAndSelect | flags.Rows
            )

    def _refresh_during_scan(self) -> None:
        """Show the tracks tagged so far; on a big library less often, so that browsing
        stays fluid (the refresh reads every score)."""
        started = time.monotonic()
        self.refresh_table(scores=True)
        elapsed_ms = (time.monotonic() - started) * 1000
        self._scan_refresh.setInterval(max(SCAN_REFRESH_MS, round(20 * elapsed_ms)))

    def _filter_changed(self, track_filter) -> None:
        self.model.track_filter = track_filter
        if self.model.started:  # not while the window is being set up
            self.refresh_table()

    def current_track_id(self) -> int | None:
        index = self.table.currentIndex()
        return index.data(TrackIdRole) if index.isValid() else None

    def selected_track_ids(self) -> list[int]:
        rows = self.table.selectionModel().selectedRows()
        return [self.model.track_id(index.row()) for index in rows]

    def select_track(self, track_id: int) -> bool:
        row = self.model.row_of(track_id)
        if row is None:
            return False
        self._set_current_row(row)
        return True

    def move_track(self, step: int) -> None:
        if not self.model.rowCount():
            return
        current = self.table.currentIndex()
        row = current.row() + step if current.isValid() else 0
        self._set_current_row(max(0, min(self.model.rowCount() - 1, row)))

    def _set_current_row(self, row: int) -> None:
        index = self.model.index(row, 0)
        flags = QItemSelectionModel.SelectionFlag
        self.table.selectionModel().setCurrentIndex(index, flags.ClearAndSelect | flags.Rows)
        self.table.scrollTo(index)

    # -- the track panel ------------------------------------------------------------------

    def show_current_track(self) -> None:
        track_id = self.current_track_id()
        if track_id is None:
            self.panel.show_track(None)
            self._update_actions()
            return
        try:
            track = self.catalog.track(track_id)
        except KeyError:
            self.panel.show_track(None)
            return
        was = self.panel.view.track.id if self.panel.view else None
        self.panel.show_track(self._track_view(track))
        if track.id != was and self.pack is not None and track.error is None:
            self.request_preview(track.path, track.mtime_ns)
        self._update_actions()

    def _track_view(self, track) -> TrackView:
        scores = self.catalog.prediction(track.id, self.pack.name) if self.pack else None
        return TrackView(
            track,
            self.pack,
            scores,
            self.catalog.decisions(track.id),
            added_tags(self.catalog, track.id),
        )

    def request_preview(self, path: str, mtime_ns: int) -> None:
        """Compute the track's mel in a worker; only the newest request is shown."""
        pack = self.pack
        key = (path, mtime_ns, pack.name, pack.version)
        if key in self._previews:
            self._previews.move_to_end(key)
            self.panel.show_preview(self._previews[key])
            return
        self._preview_serial += 1
        serial = self._preview_serial

        def work(**kwargs):
            if serial != self._preview_serial:  # the user moved on before this started
                return None
            return operations.load_preview(path, pack, self.taggers, **kwargs)

        job = Job("Spectrogram", work)

        def done(preview: operations.Preview | None) -> None:
            if preview is None:
                return
            self._previews[key] = preview
            while len(self._previews) > PREVIEW_CACHE:
                self._previews.popitem(last=False)
            self.panel.show_preview(preview)

        job.succeeded.connect(done)
        job.failed.connect(lambda message: self.panel.show_preview_error(path, message))
        self._keep(job)
        job.start(self.preview_pool)

    # -- review ---------------------------------------------------------------------------

    def set_decision(self, tag: str, decision: str | None) -> None:
        track_id = self.current_track_id()
        if track_id is None:
            return
        self.catalog.set_decision(track_id, tag, decision)
        self._track_edited(track_id)

    def add_tag(self, tag: str) -> None:
        track_id = self.current_track_id()
        if track_id is None:
            return
        self.catalog.add_tag(track_id, tag)
        self._track_edited(track_id)

    def _track_edited(self, track_id: int) -> None:
        self.model.track_changed(track_id)
        self.panel.show_track(self._track_view(self.catalog.track(track_id)))

    def accept_predicted(self) -> None:
        ids = self.selected_track_ids()
        pack = self.pack
        if not ids or pack is None:
            return
        job = Job(
            f"Accepting predicted tags of {len(ids)} tracks",
            lambda **kw: operations.accept_predicted(ids, pack, **kw),
        )

        def done(made: int) -> None:
            self.statusBar().showMessage(f"Accepted {made} predicted tags.", 8000)
            self.model.tracks_changed()
            self.show_current_track()

        job.succeeded.connect(done)
        self.start_job(job)

    # -- jobs -----------------------------------------------------------------------------

    def start_job(self, job: Job) -> bool:
        """Run ``job`` as the foreground job; False when another one is running (one whose
        results are being handled, say a plan before its write, does not count)."""
        if self.job is not None and self.job.running:
            self.statusBar().showMessage(f"Wait for “{self.job.title}” to finish.", 5000)
            return False
        self.job = job
        job.failed.connect(lambda message: self._job_failed(job, message))
        job.ended.connect(lambda: self._job_ended(job))
        self._keep(job)
        self.job_status.track(job)
        self.job_started.emit(job)
        job.start(self.pool)
        self._update_actions()
        return True

    @property
    def busy(self) -> bool:
        """A foreground job is running, or its results are not handled yet."""
        return self.job is not None

    def cancel_job(self) -> None:
        if self.job is not None and self.job.cancellable:
            self.job_status.cancel()

    def _keep(self, job: Job) -> None:
        self._jobs.add(job)
        job.ended.connect(lambda: self._jobs.discard(job))

    def _job_failed(self, job: Job, message: str) -> None:
        self.statusBar().showMessage(f"{job.title} failed: {message}", 15000)
        box = QMessageBox(QMessageBox.Icon.Warning, job.title, f"{job.title} failed.", parent=self)
        box.setInformativeText(message)
        box.open()

    def _job_ended(self, job: Job) -> None:
        if self.job is job:
            self.job = None
        self._update_actions()
        if self._scan_when_idle and self.job is None and self.question is None:
            QTimer.singleShot(0, self.scan)  # a folder added meanwhile

    def _update_actions(self) -> None:
        idle = self.job is None
        has_pack = self.pack is not None
        has_track = self.panel.view is not None
        has_folders = self.library.folders.count() > 0
        self.scan_action.setEnabled(idle and has_pack and has_folders)
        self.cancel_action.setEnabled(not idle and self.job.cancellable)
        self.add_folder_action.setEnabled(True)
        for action in (self.write_selected_action, self.write_all_action, self.undo_write_action):
            action.setEnabled(idle)
        self.playlists_action.setEnabled(idle and has_pack)
        self.accept_predicted_action.setEnabled(idle and has_pack)
        self.retrain_action.setEnabled(idle and self.retrain_base is not None)
        for action in (
            self.accept_action,
            self.reject_action,
            self.clear_action,
            self.add_tag_action,
            self.next_tag_action,
            self.previous_tag_action,
        ):
            action.setEnabled(has_track)
        self.play_action.setEnabled(self.playback.available and has_track)
        self.library.set_state(busy=not idle, can_scan=has_pack)

    def _ask(self, title: str, text: str, detail: str, accept: str, on_accept: Callable) -> None:
        """A window-modal question; ``self.question`` holds it until it is answered."""
        box = QMessageBox(QMessageBox.Icon.Question, title, text, parent=self)
        box.setInformativeText(detail)
        yes = box.addButton(accept, QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(yes)

        def answered() -> None:
            self.question = None
            if box.clickedButton() is yes:
                on_accept()

        box.finished.connect(lambda _result: answered())
        self.question = box
        box.open()

    # -- library --------------------------------------------------------------------------

    def choose_folder(self) -> None:
        start = self.settings.value("library/last-folder", str(Path.home()))
        folder = QFileDialog.getExistingDirectory(self, "Add a music folder", start)
        if folder:
            self.settings.setValue("library/last-folder", folder)
            self.add_folder(folder)

    def add_folder(self, folder: str | Path) -> None:
        config.add_library_folders([folder])
        self.library.set_folders(config.library_folders())
        self._update_actions()
        if self.pack is None:
            self.statusBar().showMessage(
                "Install or choose a model pack (Models ▸ Model packs…) to scan.", 10000
            )
        elif self.job is None:
            self.scan()
        else:  # scanned as soon as the running task ends
            self._scan_when_idle = True
            self.statusBar().showMessage(
                f"{Path(folder).name} is scanned when “{self.job.title}” has finished.", 10000
            )

    def ask_remove_folder(self, folder: str) -> None:
        tracks = len(self.catalog.tracks([folder]))
        self._ask(
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
            self.library.set_folders(config.library_folders())
            self.statusBar().showMessage(f"Removed {folder} ({removed} tracks).", 8000)
            self.refresh_table(scores=True)
            self.refresh_problems()

        job.succeeded.connect(done)
        self.start_job(job)

    def scan(self) -> None:
        folders = config.library_folders()
        self.library.set_folders(folders)  # with those a 'moodlib scan' added meanwhile
        if self.pack is None or not folders:
            return
        pack = self.pack
        job = Job(
            f"Scanning with {pack.name}",
            lambda **kw: operations.scan_folders(folders, pack, self.taggers, **kw),
        )
        job.succeeded.connect(self._scanned)
        job.ended.connect(self._scan_refresh.stop)
        if self.start_job(job):
            self._scan_when_idle = False
            self._scan_refresh.start(SCAN_REFRESH_MS)

    def _scanned(self, result: ScanResult) -> None:
        self._missing_folders = result.missing_paths
        self.refresh_table(scores=True)
        self.refresh_problems()
        summary = (
            f"Scan: {len(result.tagged)} tagged, {len(result.skipped)} unchanged, "
            f"{len(result.failed)} failed"
        )
        if result.removed:
            summary += f", {result.removed} gone from disk"
        if result.cancelled:
            summary += " — cancelled; scan again to resume"
        self.statusBar().showMessage(summary, 15000)
        if result.failed or result.missing_paths:
            self.results_tabs.setCurrentWidget(self.problems_view)
            self.results_dock.show()

    def refresh_problems(self) -> None:
        outcomes = [FileOutcome(p, "error", "folder not found") for p in self._missing_folders]
        outcomes += [FileOutcome(path, "error", error) for path, error in scan_errors(self.catalog)]
        self.problems.set_outcomes(outcomes)
        label = f"Problems ({len(outcomes)})" if outcomes else "Problems"
        self.results_tabs.setTabText(self.results_tabs.indexOf(self.problems_view), label)

    # -- writing --------------------------------------------------------------------------

    def write(self, *, selection: bool) -> None:
        pack = self.pack
        if pack is None:
            self.statusBar().showMessage("No model pack: nothing to write.", 8000)
            return
        ids = self.selected_track_ids() if selection else None
        if selection and not ids:
            self.statusBar().showMessage("Select the tracks to write first.", 8000)
            return
        count = f"{len(ids)} selected tracks" if ids is not None else "all tracks"
        job = Job(f"Checking {count}", lambda **kw: operations.plan_write(ids, pack, **kw))
        job.succeeded.connect(self._confirm_write)
        self.start_job(job)

    def _confirm_write(self, plan: operations.WritePlan) -> None:
        unchanged = len(plan.plan) - plan.changes - plan.errors
        if plan.changes == 0:
            self._show_write_results(plan.dry_run, "Nothing to write")
            self.statusBar().showMessage(
                f"Nothing to write: {unchanged} files already carry their tags.", 10000
            )
            return
        detail = f"{unchanged} files already carry their tags."
        if plan.errors:
            detail += f" {plan.errors} files cannot be written (see Results)."
        detail += " You can undo the write afterwards."
        self._ask(
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
        self.start_job(job)

    def ask_undo(self) -> None:
        files = operations.last_write_size()
        if files is None:
            self.statusBar().showMessage("Nothing to undo.", 8000)
            return
        self._ask(
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
        self.start_job(job)

    def _written(self, results: list[WriteResult], verb: str) -> None:
        self._show_write_results(results, verb)
        changed = sum(r.changed for r in results)
        errors = sum(bool(r.error) for r in results)
        self.statusBar().showMessage(f"{changed} files {verb}, {errors} errors.", 15000)
        self.model.tracks_changed()
        self.show_current_track()

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
        self.write_results.set_outcomes(outcomes)
        self.results_tabs.setCurrentWidget(self.write_results_view)
        self.results_dock.show()

    def choose_playlist_folder(self) -> None:
        start = self.settings.value("playlists/last-folder", str(Path.home()))
        folder = QFileDialog.getExistingDirectory(self, "Write playlists into", start)
        if folder:
            self.settings.setValue("playlists/last-folder", folder)
            self.make_playlists(folder)

    def make_playlists(self, folder: str | Path) -> None:
        """Write one playlist per tag of the active pack into ``folder``, in a worker."""
        pack = self.pack
        if pack is None:
            self.statusBar().showMessage("No model pack: no tags to make playlists of.", 8000)
            return
        job = Job("Writing playlists", lambda **kw: operations.make_playlists(folder, pack, **kw))
        job.succeeded.connect(
            lambda playlists: self.statusBar().showMessage(
                f"{sum(bool(p.tracks) for p in playlists)} playlists written to {folder}.", 15000
            )
        )
        self.start_job(job)

    # -- help -----------------------------------------------------------------------------

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in SHORTCUTS)
        box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts", "", parent=self)
        box.setText(f"<table cellspacing='6'>{rows}</table>")
        box.open()

    def show_about(self) -> None:
        from moodlib import __version__

        QMessageBox.about(
            self,
            "About moodlib",
            f"<b>moodlib {__version__}</b><p>Predicts the 56 MTG-Jamendo mood/theme tags "
            "for your music and writes the ones you keep into the files.</p>",
        )

    def keyPressEvent(self, event) -> None:  # Escape cancels the running task
        if event.key() == Qt.Key.Key_Escape and self.job is not None:
            self.cancel_job()
            return
        super().keyPressEvent(event)
