"""The main window: the widgets, docks, actions and menus, composed with the controllers
that do the work.

- ``JobRunner``: the foreground job (one at a time, in the status bar with Cancel);
- ``PackController``: the active pack and the Models dialog;
- ``ReviewController``: the current track in the panel, decisions, bulk accept;
- ``PreviewController``: the current track's spectrogram, on a pool of its own;
- ``ScanController``: the library's folders, the scan, the Problems it leaves;
- ``WriteController``: writing tags into the files, undo, playlists;
- ``RetrainController``: retraining on the user's corrections.

The controllers talk to each other through public methods and signals; the window builds
them, connects the widgets to them, and enables its actions from their state. The catalog
connection of the window is used for reads and for single review decisions; workers open
their own.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QByteArray, Qt, SignalInstance
from PySide6.QtGui import QAction, QCloseEvent, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSplitter,
    QStyle,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from moodlib import config
from moodlib.gui import operations
from moodlib.gui.filter_bar import FilterBar
from moodlib.gui.job_runner import JobRunner
from moodlib.gui.job_status import JobStatus
from moodlib.gui.jobs import Job
from moodlib.gui.keyboard_help import KeyHelp, help_html, keyboard_help
from moodlib.gui.library_panel import LibraryPanel
from moodlib.gui.models_dialog import ModelsDialog
from moodlib.gui.pack_controller import PackController
from moodlib.gui.playback import Playback
from moodlib.gui.preview_controller import PreviewController
from moodlib.gui.prompts import Prompts
from moodlib.gui.results import ResultsDock
from moodlib.gui.retrain_controller import RetrainController
from moodlib.gui.retrain_dialog import RetrainDialog
from moodlib.gui.review_controller import ReviewController
from moodlib.gui.scan_controller import ScanController
from moodlib.gui.settings import ui_settings
from moodlib.gui.table_model import Column, TrackTableModel
from moodlib.gui.track_panel import TrackPanel
from moodlib.gui.track_table import TrackTable, table_keys
from moodlib.gui.write_controller import WriteController
from moodlib.inference import resolve_device
from moodlib.library.catalog import Catalog
from moodlib.metadata import journal
from moodlib.packs import Pack

CANCEL_KEY = Qt.Key.Key_Escape  # cancels the running task (``keyPressEvent``): no action's
# shortcut, so that dialogs, popups and fields keep Escape for themselves


def add_actions(to: QMenu | QToolBar, actions: list[QAction | None]) -> None:
    """Add ``actions`` to a menu or toolbar in order, a separator for each None."""
    for action in actions:
        to.addSeparator() if action is None else to.addAction(action)


class MainWindow(QMainWindow):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("moodlib")
        self.settings = ui_settings()
        self.catalog = Catalog(config.catalog_path())
        self.taggers = operations.TaggerCache()
        self.playback = Playback(self)

        self._build_central()
        self._build_docks()
        self._build_status_bar()
        self._build_controllers()
        self._build_actions()
        self._build_menus_and_toolbar()

        self.scans.show_folders()
        self._restore_settings()
        self.packs.load()  # the first read of the catalog, with the restored sort order
        self.scans.refresh_problems()
        self.update_actions()
        # A handful of files at most: what one interrupted write or undo left unsettled.
        if summary := journal.recover(self.catalog).summary():
            self.statusBar().showMessage(f"{summary[0].upper()}{summary[1:]}.", 15000)

    # -- building -------------------------------------------------------------------------

    def _build_central(self) -> None:
        self.model = TrackTableModel(self.catalog, self)
        self.table = TrackTable(self.model)
        self.filter_bar = FilterBar()
        table_side = QWidget()
        table_layout = QVBoxLayout(table_side)
        table_layout.setContentsMargins(4, 4, 0, 0)
        table_layout.addWidget(self.filter_bar)
        table_layout.addWidget(self.table, 1)

        self.panel = TrackPanel(self.playback)
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
        self.library_dock = QDockWidget("Library folders", self)
        self.library_dock.setObjectName("library-dock")
        self.library_dock.setWidget(self.library)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.library_dock)
        self.results_dock = ResultsDock(self)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.results_dock)
        self.splitDockWidget(self.library_dock, self.results_dock, Qt.Orientation.Horizontal)
        self.resizeDocks(
            [self.library_dock, self.results_dock], [300, 900], Qt.Orientation.Horizontal
        )
        self.resizeDocks([self.results_dock], [120], Qt.Orientation.Vertical)

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

    def _build_controllers(self) -> None:
        self.prompts = Prompts(self)
        self.jobs = JobRunner(self.job_status, self.prompts, self)
        self.packs = PackController(self, self.pack_label, self.catalog, self.jobs, self.prompts)
        self.previews = PreviewController(
            self.panel, packs=self.packs, taggers=self.taggers, jobs=self.jobs, parent=self
        )
        self.review = ReviewController(
            self.catalog, table=self.table, panel=self.panel, tracks_label=self.tracks_label,
            packs=self.packs, previews=self.previews, jobs=self.jobs, prompts=self.prompts,
            parent=self,
        )  # fmt: skip
        self.scans = ScanController(
            self, settings=self.settings, catalog=self.catalog, library=self.library,
            results=self.results_dock, packs=self.packs, review=self.review,
            taggers=self.taggers, jobs=self.jobs, prompts=self.prompts,
        )  # fmt: skip
        self.writes = WriteController(
            self, settings=self.settings, table=self.table, results=self.results_dock,
            packs=self.packs, review=self.review, jobs=self.jobs, prompts=self.prompts,
        )  # fmt: skip
        self.retraining = RetrainController(
            self, catalog=self.catalog, packs=self.packs, scans=self.scans,
            taggers=self.taggers, jobs=self.jobs, prompts=self.prompts,
        )  # fmt: skip
        self.filter_bar.changed.connect(self.review.set_filter)
        self.packs.changed.connect(self._pack_loaded)
        self.packs.installed_changed.connect(self._packs_installed)
        for signal in (
            self.jobs.busy_changed,
            self.review.track_shown,
            self.scans.folders_changed,
        ):
            signal.connect(self.update_actions)

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
        panel, review, writes = self.panel, self.review, self.writes
        self.add_folder_action = self._action(
            "&Add music folder…", self.scans.choose_folder, "Ctrl+O", pixmap.SP_DirOpenIcon,
            "Add a folder to the library and scan it",
        )  # fmt: skip
        self.scan_action = self._action(
            "&Scan library", self.scans.scan, "F5", pixmap.SP_BrowserReload,
            "Scan the library folders for new and changed files",
        )  # fmt: skip
        self.cancel_action = self._action(
            "&Cancel task", self.jobs.cancel, None, pixmap.SP_BrowserStop, "Stop the running task"
        )
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)

        self.accept_action = self._action(
            "&Accept tag", lambda: panel.decide("accept"), "A",
            tip="Accept the current tag and go to the next",
        )  # fmt: skip
        self.reject_action = self._action(
            "&Reject tag", lambda: panel.decide("reject"), "R",
            tip="Reject the current tag and go to the next",
        )  # fmt: skip
        self.clear_action = self._action(
            "&Undecide tag", lambda: panel.decide(None), "U", tip="Undecide the current tag"
        )
        self.next_tag_action = self._action("Next tag", lambda: panel.move_tag(1), "]")
        self.previous_tag_action = self._action("Previous tag", lambda: panel.move_tag(-1), "[")
        self.next_track_action = self._action(
            "&Next track", lambda: self.table.move_current(1), "J"
        )
        self.previous_track_action = self._action(
            "&Previous track", lambda: self.table.move_current(-1), "K"
        )
        self.add_tag_action = self._action(
            "Add a &tag…", panel.focus_add_tag, "T", tip="Add any of the 56 tags to the track"
        )
        self.accept_predicted_action = self._action(
            "Accept &predicted tags of the selection", review.accept_predicted, "Shift+A",
            tip="Accept every tag reaching its threshold on the selected tracks "
            "(tags you rejected stay rejected)",
        )  # fmt: skip
        self.play_action = self._action(
            "&Play / pause", panel.toggle_playback, "Space", pixmap.SP_MediaPlay
        )
        self.play_action.setEnabled(self.playback.available)
        self.filter_action = self._action(
            "&Filter…", lambda: self.filter_bar.text.setFocus(), QKeySequence.StandardKey.Find,
            tip="Filter the table by text, tag and score",
        )  # fmt: skip

        self.write_selected_action = self._action(
            "&Write tags of the selection…", lambda: writes.write(selection=True), "Ctrl+S",
            pixmap.SP_DialogSaveButton, "Write the reviewed tags into the selected tracks' files",
        )  # fmt: skip
        self.write_all_action = self._action(
            "Write tags of &all tracks…", lambda: writes.write(selection=False), "Ctrl+Shift+S",
            tip="Write the reviewed tags into every scanned file",
        )  # fmt: skip
        self.undo_write_action = self._action(
            "&Undo last write…", writes.ask_undo, QKeySequence.StandardKey.Undo,
            pixmap.SP_ArrowBack, "Put back the moods the last write replaced",
        )  # fmt: skip
        self.playlists_action = self._action(
            "Make &playlists…", writes.choose_playlist_folder,
            tip="Write one M3U8 playlist per tag into a folder",
        )  # fmt: skip

        self.models_action = self._action(
            "&Model packs…", self.packs.show_dialog, None, pixmap.SP_FileDialogDetailedView,
            "Choose, install and import model packs",
        )  # fmt: skip
        self.retrain_action = self._action(
            "&Retrain on my corrections…", self.retraining.retrain, None, pixmap.SP_CommandLink
        )
        self.retrain_action.setObjectName("retrain-action")
        self.retraining.base_changed.connect(self.retrain_action.setToolTip)
        self.retraining.base_changed.connect(self.retrain_action.setStatusTip)

        self.shortcuts_action = self._action("&Keyboard shortcuts", self.show_shortcuts, "F1")
        self.about_action = self._action("&About moodlib", self.show_about)

    def _build_menus_and_toolbar(self) -> None:
        menus = self.menuBar()
        add_actions(menus.addMenu("&Library"), [
            self.add_folder_action, self.scan_action, self.cancel_action, None, self.quit_action,
        ])  # fmt: skip
        add_actions(menus.addMenu("&Review"), [
            self.accept_action, self.reject_action, self.clear_action, self.add_tag_action, None,
            self.next_tag_action, self.previous_tag_action, self.next_track_action,
            self.previous_track_action, None,
            self.accept_predicted_action, self.play_action, self.filter_action,
        ])  # fmt: skip
        add_actions(menus.addMenu("&Tags"), [
            self.write_selected_action, self.write_all_action, self.undo_write_action, None,
            self.playlists_action,
        ])  # fmt: skip
        models = menus.addMenu("&Models")
        models.setToolTipsVisible(True)  # the retrain action says what it does, or why not
        add_actions(models, [self.models_action, self.retrain_action])
        add_actions(menus.addMenu("&View"), [
            self.library_dock.toggleViewAction(), self.results_dock.toggleViewAction(),
        ])  # fmt: skip
        add_actions(menus.addMenu("&Help"), [self.shortcuts_action, self.about_action])

        toolbar = QToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.setMovable(False)
        add_actions(toolbar, [
            self.add_folder_action, self.scan_action, None,
            self.write_selected_action, self.undo_write_action, None,
            self.models_action, self.retrain_action,
        ])  # fmt: skip
        self.addToolBar(toolbar)

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
        self.scans.stop_refreshing()
        self.jobs.cancel_all()
        self.playback.stop()
        self.jobs.pool.waitForDone()
        self.previews.pool.waitForDone()
        super().closeEvent(event)

    # -- following the controllers --------------------------------------------------------

    def _pack_loaded(self) -> None:
        self.retraining.update_base()
        self.review.show_pack()
        self.update_actions()

    def _packs_installed(self) -> None:
        self.retraining.update_base()  # a personal pack's base may have come or gone
        self.update_actions()

    def update_actions(self) -> None:
        """Enable the actions that make sense now."""
        job = self.jobs.job
        idle = job is None
        has_pack = self.packs.pack is not None
        has_track = self.panel.view is not None
        has_folders = self.library.folders.count() > 0
        self.scan_action.setEnabled(idle and has_pack and has_folders)
        self.cancel_action.setEnabled(not idle and job.cancellable)
        self.add_folder_action.setEnabled(True)
        for action in (self.write_selected_action, self.write_all_action, self.undo_write_action):
            action.setEnabled(idle)
        self.playlists_action.setEnabled(idle and has_pack)
        self.accept_predicted_action.setEnabled(idle and has_pack)
        self.retrain_action.setEnabled(idle and self.retraining.base is not None)
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

    # -- the window's state, as its dialogs and tests read it -----------------------------

    @property
    def job_started(self) -> SignalInstance:
        """Emitted with a foreground Job just before it starts."""
        return self.jobs.job_started

    @property
    def busy(self) -> bool:
        return self.jobs.busy

    @property
    def job(self) -> Job | None:
        return self.jobs.job

    @property
    def pack(self) -> Pack | None:
        return self.packs.pack

    @property
    def question(self) -> QMessageBox | None:
        return self.prompts.question

    @property
    def notice(self) -> QMessageBox | None:
        return self.prompts.notice

    @property
    def models_dialog(self) -> ModelsDialog | None:
        return self.packs.dialog

    @property
    def retrain_dialog(self) -> RetrainDialog | None:
        return self.retraining.dialog

    @property
    def retrain_base(self) -> Pack | None:
        return self.retraining.base

    def show_models(self) -> None:
        self.packs.show_dialog()

    def select_track(self, track_id: int) -> bool:
        return self.table.select_track(track_id)

    # -- help -----------------------------------------------------------------------------

    def keyboard_help(self) -> list[KeyHelp]:
        """What every key does: the actions' shortcuts, then the keys that are no action's."""
        cancel = KeyHelp.of([QKeySequence(CANCEL_KEY)], "Cancel the running task")
        return keyboard_help(self.actions(), [cancel, *table_keys()])

    def show_shortcuts(self) -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts", "", parent=self)
        box.setText(help_html(self.keyboard_help()))
        box.open()
        return box

    def show_about(self) -> None:
        from moodlib import __version__

        QMessageBox.about(
            self,
            "About moodlib",
            f"<b>moodlib {__version__}</b><p>Predicts the 56 MTG-Jamendo mood/theme tags "
            "for your music and writes the ones you keep into the files.</p>",
        )

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == CANCEL_KEY and self.jobs.busy:
            self.jobs.cancel()
            return
        super().keyPressEvent(event)
