"""The desktop app driven like a user would: real music, the official baseline, offscreen.

Add a folder, scan it, open a track (its spectrogram must be the mel the model computed,
its bars the catalog's scores), review with the keyboard, write the tags into the files,
undo the write; the files are checked with ``read_moods``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from media import copy_library
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from moodlib import config, vocabulary
from moodlib.audio.decode import decode, probe
from moodlib.gui.plots import frequency_ticks
from moodlib.gui.table_model import Column
from moodlib.inference import Tagger
from moodlib.library.catalog import Catalog
from moodlib.metadata import read_moods
from moodlib.packstore import PackStore
from moodlib.pipeline import scan

pytestmark = [pytest.mark.gui, pytest.mark.slow]

PACK = "mtg-baseline"


@pytest.fixture(scope="module")
def scanned_home(tmp_path_factory, real_music_library) -> Path:
    """A home whose catalog holds the (read-only) real-music library scanned by the
    shipped baseline, for the tests that only look."""
    home = tmp_path_factory.mktemp("scanned") / "home"
    folder = next(iter(real_music_library.values())).parent
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOODLIB_HOME", str(home))
        config.add_library_folders([folder])
        with Catalog(config.catalog_path()) as catalog:
            scan([folder], catalog, Tagger(PackStore().get(PACK), device="cpu"))
    return home


@pytest.fixture
def library_window(scanned_home, monkeypatch, open_window):
    monkeypatch.setenv("MOODLIB_HOME", str(scanned_home))
    return open_window()


def track_id_of(window, path: Path) -> int:
    return window.catalog.track_by_path(str(path)).id


def open_track(qtbot, window, path: Path):
    """Select the track of ``path`` and wait for its spectrogram."""
    assert window.select_track(track_id_of(window, path))
    panel = window.panel
    qtbot.waitUntil(lambda: panel.preview is not None and panel.preview.path == str(path),
                    timeout=30_000)  # fmt: skip
    return panel


def press(qtbot, window, key: Qt.Key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """A key press where a user's focus usually is: on the track table."""
    window.activateWindow()
    window.table.setFocus()
    qtbot.keyClick(window.table, key, modifier)


def answer(qtbot, window, accept: bool = True) -> str:
    """Wait for the window's question, answer it, return its text."""
    qtbot.waitUntil(lambda: window.question is not None, timeout=30_000)
    box = window.question
    text = box.text()
    button = box.defaultButton() if accept else box.button(QMessageBox.StandardButton.Cancel)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    return text


def test_scanning_a_folder_cancel_resume_and_the_files_that_fail(
    qtbot, home, music_copy, open_window, wait_idle
) -> None:
    folder = next(iter(music_copy.values())).parent
    (folder / "broken.mp3").write_text("not audio at all\n")
    window = open_window()
    window.scans.add_folder(folder)  # a new folder is scanned at once...
    assert window.busy and window.job_status.isVisible()
    window.cancel_action.trigger()  # ...and can be cancelled
    wait_idle(window)
    assert "cancelled; scan again to resume" in window.statusBar().currentMessage()
    assert config.library_folders() == [str(folder)]
    assert window.catalog.count_tracks() < len(music_copy) + 1

    window.scan_action.trigger()
    progress = []
    window.job.progressed.connect(progress.append)
    wait_idle(window)
    assert window.model.rowCount() == len(music_copy) + 1
    assert progress[-1].done == progress[-1].total > 0
    problems = window.results_dock.problems.outcomes
    assert [(Path(p.path).name, p.outcome) for p in problems] == [("broken.mp3", "error")]
    assert problems[0].detail  # the decoder's reason
    assert "Problems (1)" in window.results_dock.tabs.tabText(0)
    assert "failed" in window.statusBar().currentMessage()

    window.scans.scan()  # incremental: nothing changed, only the bad file is tried again
    wait_idle(window)
    assert f"0 tagged, {len(music_copy)} unchanged, 1 failed" in (
        window.statusBar().currentMessage()
    )

    window.scans.ask_remove_folder(str(folder))
    assert f"{len(music_copy) + 1} tracks" in window.question.informativeText()
    assert f"Remove {folder}" in answer(qtbot, window)
    wait_idle(window)
    assert config.library_folders() == []
    assert window.model.rowCount() == 0 and window.results_dock.problems.outcomes == []
    assert all(path.exists() for path in music_copy.values())


def test_a_rescan_of_an_unchanged_library_loads_no_model(
    home, real_music_library, tmp_path, open_window, wait_idle
) -> None:
    folder = tmp_path / "music"
    copy_library({"flac": real_music_library["flac"]}, folder)
    window = open_window()
    assert window.taggers.loaded == []
    window.scans.add_folder(folder)
    wait_idle(window)
    assert "Scan: 1 tagged, 0 unchanged" in window.statusBar().currentMessage()
    assert window.taggers.loaded == [PACK]  # made to tag the new file
    track = window.catalog.tracks()[0]
    window.catalog.set_decision(track.id, "happy", "accept")
    window.filter_bar.unreviewed.setChecked(True)  # kept for the next start
    window.close()

    # Every track reviewed and hidden: no spectrogram to compute, nothing to tag.
    again = open_window()
    assert again.model.rowCount() == 0
    assert again.panel.spectrogram.plot.opacity() == 0.0  # no axes around an empty image
    again.scan_action.trigger()
    wait_idle(again)
    assert "Scan: 0 tagged, 1 unchanged, 0 failed" in again.statusBar().currentMessage()
    assert again.taggers.loaded == []


def test_the_track_panel_shows_the_mel_the_model_saw_and_the_catalogs_scores(
    qtbot, library_window, real_music_library
) -> None:
    window, path = library_window, real_music_library["flac"]
    panel = open_track(qtbot, window, path)

    pack = PackStore().get(PACK)
    tagger = Tagger(pack, device="cpu")
    info = probe(path)
    offset, duration = tagger.read_window(info.duration_seconds)
    waveform = decode(path, sample_rate=tagger.sample_rate, offset_seconds=offset,
                      duration_seconds=duration)  # fmt: skip
    mel = tagger.mel(waveform).numpy()
    assert panel.spectrogram.plot.opacity() == 1.0
    shown = panel.spectrogram.image.image
    assert shown.shape == mel.shape == (96, mel.shape[1])
    np.testing.assert_allclose(shown, mel, atol=1e-3)

    # Time in seconds across (frame t centred on offset + t * hop / rate), mel bands up.
    seconds_per_frame = tagger.hop_length / tagger.sample_rate
    rect = panel.spectrogram.image.mapRectToParent(panel.spectrogram.image.boundingRect())
    assert rect.left() == pytest.approx(offset - seconds_per_frame / 2)
    assert rect.width() == pytest.approx(mel.shape[1] * seconds_per_frame)
    assert (rect.top(), rect.height()) == (0, 96)
    ticks = dict((label, position) for position, label in
                 panel.spectrogram.plot.getAxis("left")._tickLevels[0])  # fmt: skip
    assert ticks == dict((label, position) for position, label in
                         frequency_ticks(panel.preview.band_hz))  # fmt: skip
    # librosa's Slaney mel scale, independently: the row whose band centre is 1 kHz.
    librosa = pytest.importorskip("librosa")
    centres = librosa.mel_frequencies(n_mels=96 + 2, fmin=0.0, fmax=tagger.sample_rate / 2)[1:-1]
    assert ticks["1k"] == pytest.approx(np.interp(1000.0, centres, np.arange(96)) + 0.5)

    # The bars are the catalog's scores, highest first, with the pack's thresholds.
    scores = window.catalog.prediction(track_id_of(window, path), PACK)
    chart = panel.chart
    assert sorted(chart.rows) == sorted(vocabulary.TAGS)
    widths = chart.bars.opts["width"]
    assert len(widths) == 56  # the baseline covers every tag
    expected = [scores[vocabulary.TAG_INDEX[tag]] for tag in chart.rows]
    np.testing.assert_allclose(widths, expected, rtol=1e-6)
    assert np.all(np.diff(widths) <= 0)
    marks_x, _ = chart.thresholds.getData()
    np.testing.assert_allclose(marks_x[::2], [pack.thresholds[t] for t in chart.rows])
    assert not chart.uncovered_band.isVisible()


def test_the_solid_bars_are_the_tags_written_at_most_the_setting(
    qtbot, library_window, real_music_library
) -> None:
    panel = open_track(qtbot, library_window, real_music_library["flac"])
    scores = panel.view.scores
    pack = panel.view.pack
    above = [t for t in pack.covered if scores[vocabulary.TAG_INDEX[t]] >= pack.thresholds[t]]
    assert len(above) >= 2, "the excerpt has several tags reaching their threshold"

    def solid() -> list[str]:
        brushes = panel.chart.bars.opts["brushes"]
        return [
            t for t, b in zip(panel.chart.rows, brushes, strict=False) if b.color().alpha() == 255
        ]

    assert panel.max_tags_box.text() == "at most 3 tags per file"  # the default
    assert solid() == sorted(above, key=lambda t: -scores[vocabulary.TAG_INDEX[t]])[:3]
    panel.max_tags_box.setValue(1)
    assert solid() == panel.chart.rows[:1] and config.max_tags() == 1
    panel.max_tags_box.setValue(0)
    assert panel.max_tags_box.text() == "all"
    assert sorted(solid()) == sorted(above) and config.max_tags() is None
    panel.max_tags_box.setValue(3)  # the module's other tests share this home


def test_clicking_the_spectrogram_seeks_and_playback_degrades_without_a_device(
    qtbot, library_window, real_music_library
) -> None:
    from PySide6.QtMultimedia import QMediaDevices

    panel = open_track(qtbot, library_window, real_music_library["ogg"])
    view = panel.spectrogram
    target = view.start_seconds + 4.0
    point = view.view_to_widget(target, 48.0)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    qtbot.waitUntil(lambda: abs(panel.position_seconds - target) < 0.2)
    assert view.cursor.isVisible()
    assert view.cursor.value() == pytest.approx(target, abs=0.2)

    has_output = bool(QMediaDevices.audioOutputs())
    assert panel.playback.available == has_output
    assert panel.play_button.isEnabled() == has_output
    assert library_window.play_action.isEnabled() == has_output
    if has_output:  # plays from where the click put the cursor, which follows playback
        panel.toggle_playback()
        qtbot.waitUntil(lambda: panel.position_seconds > target + 0.5, timeout=15_000)
        assert view.cursor.value() == pytest.approx(panel.position_seconds)
        panel.toggle_playback()
        qtbot.waitUntil(lambda: not panel.playback.playing)
    else:
        assert panel.playback_note.isVisible()
        assert "no audio output" in panel.playback_note.text()


def test_review_write_and_undo(qtbot, scanned_window, music_copy, wait_idle) -> None:
    window = scanned_window
    mp3, flac = music_copy["mp3"], music_copy["flac"]
    panel = open_track(qtbot, window, mp3)
    mp3_id = track_id_of(window, mp3)
    first, second = panel.chart.rows[:2]

    press(qtbot, window, Qt.Key.Key_A)  # accept the top tag, move to the next
    assert window.catalog.decisions(mp3_id) == {first: "accept"}
    assert panel.current_tag() == second
    press(qtbot, window, Qt.Key.Key_R)
    assert window.catalog.decisions(mp3_id) == {first: "accept", second: "reject"}
    window.review.add_tag("christmas")
    assert window.catalog.decisions(mp3_id)["christmas"] == "accept"
    assert panel.chart.plot.getAxis("left")._tickLevels[0][0][1] == f"✓ {first}"
    row = window.model.row_of(mp3_id)
    assert window.model.data(window.model.index(row, Column.REVIEW)) == "✓2 ✗1"

    press(qtbot, window, Qt.Key.Key_J)
    assert window.table.current_track_id() == window.model.track_id(row + 1)
    press(qtbot, window, Qt.Key.Key_K)
    assert window.table.current_track_id() == mp3_id
    window.table.sortByColumn(Column.DURATION, Qt.SortOrder.DescendingOrder)
    assert window.table.current_track_id() == mp3_id  # sorting keeps the track
    row = window.model.row_of(mp3_id)

    # Bulk: the tags the policy writes on each selected track (the 3 highest-scoring ones
    # reaching their threshold, by default), rejects kept.
    flac_id = track_id_of(window, flac)
    window.table.selectRow(window.model.row_of(flac_id))
    window.table.selectionModel().select(
        window.model.index(row, 0),
        window.table.selectionModel().SelectionFlag.Select
        | window.table.selectionModel().SelectionFlag.Rows,
    )
    assert set(window.table.selected_track_ids()) == {mp3_id, flac_id}
    press(qtbot, window, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
    wait_idle(window)
    pack = PackStore().get(PACK)
    flac_scores = window.catalog.prediction(flac_id, PACK)
    above = [t for t in pack.covered if flac_scores[vocabulary.TAG_INDEX[t]]
             >= pack.thresholds[t]]  # fmt: skip
    best = sorted(above, key=lambda t: -flac_scores[vocabulary.TAG_INDEX[t]])[:3]
    assert best, "the excerpt has tags reaching their threshold"
    assert {t for t, d in window.catalog.decisions(flac_id).items() if d == "accept"} == set(best)
    assert window.catalog.decisions(mp3_id)[second] == "reject"

    # Write the selection: the question counts the files that change.
    expected = {
        p: window.catalog.final_tags(track_id_of(window, p), PACK, pack.thresholds)
        for p in (mp3, flac)
    }
    changing = sum(bool(tags) for tags in expected.values())
    window.write_selected_action.trigger()
    text = answer(qtbot, window)
    assert f"into {changing} file" in text
    wait_idle(window)
    for path, tags in expected.items():
        assert read_moods(path) == tags
    assert "christmas" in read_moods(mp3) and second not in read_moods(mp3)
    results = {Path(o.path).name: o.outcome for o in window.results_dock.write_results.outcomes}
    assert results[mp3.name] == "written"
    written = window.model.data(window.model.index(window.model.row_of(mp3_id), Column.WRITTEN))
    assert written == "written"
    assert read_moods(music_copy["ogg"]) == []  # not selected, not written

    window.undo_write_action.trigger()
    assert f"({changing} file" in answer(qtbot, window)
    wait_idle(window)
    assert read_moods(mp3) == read_moods(flac) == []
    assert {o.outcome for o in window.results_dock.write_results.outcomes} == {"restored"}
