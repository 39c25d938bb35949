"""The window around the review: packs, the retrain action, persistence, the palette."""

from __future__ import annotations

import json
import shutil
import threading
import time

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFontMetrics, QPalette
from PySide6.QtWidgets import QToolBar

from moodlib import config, vocabulary
from moodlib.gui.job_status import JobStatus
from moodlib.gui.jobs import Job
from moodlib.gui.plots import ScoreChart
from moodlib.inference import resolve_device
from moodlib.packstore import PackStore
from moodlib.progress import Progress

pytestmark = pytest.mark.gui


def test_retrain_works_on_the_shipped_pack_and_says_why_not_elsewhere(
    open_window, tmp_path
) -> None:
    window = open_window()
    action = window.retrain_action
    assert action.text().replace("&", "") == "Retrain on my corrections…"
    assert window.pack.name == "mtg-baseline" and window.pack.embedding_member
    assert action.isEnabled()
    assert action.toolTip() == (
        "Learn a personal pack from your accepted and rejected tags, on top of mtg-baseline"
    )
    models_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Models")
    assert action in models_menu.actions() and models_menu.toolTipsVisible()
    assert action in window.findChild(QToolBar, "main-toolbar").actions()
    window.close()

    # A pack that stores no embeddings cannot be personalised: the action says so.
    plain = tmp_path / "plain"
    shutil.copytree(PackStore().get("mtg-baseline").root, plain)
    manifest = json.loads((plain / "manifest.json").read_text())
    (plain / "manifest.json").write_text(json.dumps({**manifest, "embedding_member": None}))
    PackStore().install_folder(plain, name="plain")
    config.save_setting("active_pack", "plain")
    window = open_window()
    assert window.pack.name == "plain"
    assert not window.retrain_action.isEnabled()
    assert window.retrain_action.toolTip() == (
        "plain stores no embeddings, so it cannot be personalised"
    )


def test_folders_and_window_layout_survive_a_restart(open_window, wait_idle, tmp_path) -> None:
    music = tmp_path / "music"
    music.mkdir()
    window = open_window()
    assert window.pack.name == "mtg-baseline" and window.pack.builtin  # shipped, always there
    window.scans.add_folder(music)  # a new folder is scanned at once with the active pack
    assert window.busy and window.job.title == "Scanning with mtg-baseline"
    wait_idle(window)
    assert "Scan: 0 tagged" in window.statusBar().currentMessage()
    window.resize(760, 580)  # within the offscreen screen (800x600): restoring clamps to it
    size = window.size()
    window.splitter.setSizes([500, 260])
    sizes = window.splitter.sizes()
    window.table.sortByColumn(1, Qt.SortOrder.DescendingOrder)
    window.close()

    again = open_window(resize=False)
    assert config.library_folders() == [str(music)]
    assert [again.library.folders.item(i).text() for i in range(again.library.folders.count())] \
        == [str(music)]  # fmt: skip
    assert again.size() == size
    assert again.splitter.sizes() == sizes
    header = again.table.horizontalHeader()
    assert (header.sortIndicatorSection(), header.sortIndicatorOrder()) == (
        1,
        Qt.SortOrder.DescendingOrder,
    )
    assert again.model.descending


def test_a_folder_added_during_a_task_is_scanned_when_it_ends(
    qtbot, open_window, wait_idle, tmp_path
) -> None:
    music = tmp_path / "music"
    music.mkdir()
    window = open_window()
    release = threading.Event()
    assert window.jobs.start(Job("Waiting", lambda **_: release.wait(30)))
    window.scans.add_folder(music)
    assert window.job.title == "Waiting"
    assert "music is scanned when “Waiting” has finished" in window.statusBar().currentMessage()
    release.set()  # the scan starts when the task ends (an empty folder's may end at once)
    qtbot.waitUntil(lambda: "Scan: 0 tagged" in window.statusBar().currentMessage())
    wait_idle(window)


def test_the_status_bar_names_the_pack_and_the_device(open_window) -> None:
    window = open_window()
    assert config.active_pack_name() == config.DEFAULT_PACK == "mtg-baseline"
    assert window.pack_label.text() == "Pack: mtg-baseline"
    assert window.pack_label.toolTip() == "mtg-baseline (shipped): 56 of 56 tags covered"
    if resolve_device("auto").type == "cpu":
        assert window.device_label.text() == "Device: CPU"
    else:
        assert window.device_label.text().startswith("Device: GPU")
    assert not window.scan_action.isEnabled()  # no folder yet
    window.close()

    config.save_setting("active_pack", "gone")  # a pack removed behind the app's back
    window = open_window()
    assert window.pack is None
    assert window.pack_label.text() == "Pack: gone (not installed)"
    assert not window.retrain_action.isEnabled()


def test_plots_take_their_colours_from_the_palette(open_window) -> None:
    window = open_window()
    dark = QPalette(window.palette())
    dark.setColor(QPalette.ColorRole.Base, QColor("#1e1e1e"))
    dark.setColor(QPalette.ColorRole.Text, QColor("#eeeeee"))
    window.setPalette(dark)
    chart, spectrogram = window.panel.chart, window.panel.spectrogram
    assert chart.plot_widget.backgroundBrush().color() == QColor("#1e1e1e")
    assert spectrogram.backgroundBrush().color() == QColor("#1e1e1e")
    axis = chart.plot.getAxis("left")
    assert axis.textPen().color() == QColor("#eeeeee")


def test_the_chart_tells_uncovered_tags_apart(qtbot) -> None:
    chart = ScoreChart()
    qtbot.addWidget(chart)
    covered = [t for t in vocabulary.TAGS if t not in ("sexy", "trailer", "christmas")]
    scores = np.full(56, np.nan, dtype=np.float32)
    for i, tag in enumerate(covered):
        scores[vocabulary.TAG_INDEX[tag]] = (i + 1) / 100
    thresholds = dict.fromkeys(covered, 0.3)
    written = ["uplifting", "upbeat", "christmas"]  # what the file gets: solid bars
    chart.show_scores(
        scores, thresholds, covered, {"happy": "reject"}, added=["christmas"], written=written
    )

    assert chart.rows[: len(covered)] == sorted(
        covered, key=lambda t: -scores[vocabulary.TAG_INDEX[t]]
    )
    assert chart.rows[len(covered) :] == ["christmas", "sexy", "trailer"]
    assert len(chart.bars.opts["width"]) == len(covered)
    assert chart.uncovered_band.isVisible()
    assert list(chart.uncovered_band.opts["y"]) == [53, 54, 55]
    assert chart.uncovered_label.toPlainText() == "not predicted by this pack"
    labels = dict((tag_label.split()[-1], tag_label) for _, tag_label in
                  chart.plot.getAxis("left")._tickLevels[0])  # fmt: skip
    assert labels["happy"] == "✗ happy"
    assert labels["christmas"] == "+ christmas"
    # Room for every label from the first frame on (pyqtgraph widens an axis only after it
    # has drawn it once without the labels that did not fit).
    axis = chart.plot.getAxis("left")
    metrics = QFontMetrics(axis.style["tickFont"] or chart.plot_widget.font())
    assert axis.minimumWidth() > max(metrics.horizontalAdvance(t) for t in labels.values())
    brushes = chart.bars.opts["brushes"]
    alphas = {tag: b.color().alpha() for tag, b in zip(chart.rows, brushes, strict=False)}
    assert {tag for tag, alpha in alphas.items() if alpha == 255} == {"uplifting", "upbeat"}
    assert set(alphas.values()) == {255, 110}


def pack_list(dialog) -> list[str]:
    return [dialog.packs.item(i).text() for i in range(dialog.packs.count())]


def test_packs_are_imported_and_chosen_in_the_models_dialog(
    open_window, baseline_checkpoint, wait_idle
) -> None:
    window = open_window()
    window.show_models()
    dialog = window.models_dialog
    assert dialog.architecture.currentText() == "vggish_baseline"
    # The shipped packs are listed (the default active) from the start; they cannot be removed.
    assert pack_list(dialog) == [
        "● mtg-baseline\n56/56 tags · shipped · active", "starter\n11/56 tags · shipped",
    ]  # fmt: skip
    assert dialog.current_pack().name == "mtg-baseline"
    assert not dialog.remove_button.isEnabled() and not dialog.use_button.isEnabled()
    details = dialog.details.toPlainText()
    assert "Predicts 56 of 56 tags" in details and "Bogdanov" in details
    dialog.packs.setCurrentRow(1)
    assert "Not predicted by this pack (45)" in dialog.details.toPlainText()

    dialog.checkpoint_name.setText("my-baseline")
    dialog.import_checkpoint(str(baseline_checkpoint))
    wait_idle(window)
    assert PackStore().names() == ["mtg-baseline", "starter", "my-baseline"]
    # Installed, listed after the shipped packs, not made active.
    assert pack_list(dialog)[2] == "my-baseline\n56/56 tags · installed"
    assert dialog.current_pack().name == "my-baseline"
    assert config.active_pack_name() == "mtg-baseline" and window.pack.name == "mtg-baseline"
    assert dialog.remove_button.isEnabled()
    dialog.use_button.click()
    assert config.active_pack_name() == "my-baseline"
    assert window.pack_label.text() == "Pack: my-baseline"

    # Removing the active pack falls back to the shipped default.
    dialog.remove_button.click()
    assert config.active_pack_name() == "mtg-baseline" and window.pack.name == "mtg-baseline"
    assert "my-baseline" not in PackStore().names()


def test_a_pack_installed_while_the_active_one_is_gone_becomes_active(
    open_window, baseline_checkpoint, wait_idle
) -> None:
    config.save_setting("active_pack", "gone")
    window = open_window()
    assert window.pack is None
    window.show_models()
    dialog = window.models_dialog
    dialog.checkpoint_name.setText("my-baseline")
    dialog.import_checkpoint(str(baseline_checkpoint))
    wait_idle(window)
    assert config.active_pack_name() == "my-baseline"
    assert window.pack_label.text() == "Pack: my-baseline"


def test_the_job_status_shows_count_file_and_eta(qtbot) -> None:
    status = JobStatus()
    qtbot.addWidget(status)
    job = Job("Scanning", lambda **_: None)
    status.track(job)
    job.started_at = time.monotonic() - 10.0  # ten seconds for the first four files
    status.show_progress(Progress(4, 12, "/music/album/track.flac"))
    assert status.bar.format() == "4/12"
    assert (status.bar.value(), status.bar.maximum()) == (4, 12)
    assert status.detail.text().startswith("track.flac · ETA 0:")
    assert status.eta_seconds(Progress(4, 12)) == pytest.approx(20.0, abs=1.0)


def test_run_opens_the_app_and_returns_when_it_is_closed(qtbot, home) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from moodlib.gui import run
    from moodlib.gui.main_window import MainWindow

    seen = []

    def close_windows() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        seen.extend(w.windowTitle() for w in windows if w.isVisible())
        for window in windows:
            window.close()

    QTimer.singleShot(500, close_windows)
    assert run([]) == 0
    assert seen == ["moodlib"]


def test_a_long_session_does_not_exhaust_none_or_true(qapp) -> None:
    """PySide6 6.12.0 drops a reference to None per void call and to True per emit, and on
    Python 3.11 the process aborts after a few thousand events (pyproject excludes it)."""
    import sys

    from PySide6.QtCore import QObject, QTimer, Signal

    class Emitter(QObject):
        fired = Signal()

    timer, emitter = QTimer(), Emitter()
    calls = 20_000  # more than the few thousand references None and True start with
    before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(calls):
        timer.setInterval(5)  # a void method
        emitter.fired.emit()
    # With the bug each count falls by one per call, if the process lives that long.
    after = sys.getrefcount(None), sys.getrefcount(True)
    assert after[0] > before[0] - calls // 2 and after[1] > before[1] - calls // 2
