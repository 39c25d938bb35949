"""The SQLite catalog and the scan pipeline's incremental, cancellable, resumable behaviour."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from moodlib import vocabulary
from moodlib.inference import Tagger
from moodlib.metadata import read_moods, write_moods
from moodlib.metadata.journal import undo_last, write_tracks
from moodlib.packstore import PackStore
from moodlib.pipeline import read_track, scan, thread_counts

SHARED = Path(__file__).resolve().parents[2] / "shared"
BASELINE = SHARED / "models" / "mtg-baseline" / "best_model.pth"


def scores_with(**values: float) -> np.ndarray:
    scores = np.full(56, np.nan, dtype=np.float32)
    for tag, value in values.items():
        scores[vocabulary.TAG_INDEX[tag]] = value
    return scores


@pytest.fixture
def tagger(tmp_path: Path) -> Tagger:
    """The MTG-Jamendo baseline, imported as the pack "base", on the CPU."""
    if not BASELINE.is_file():
        pytest.skip(f"no checkpoint at {BASELINE}")
    store = PackStore(tmp_path / "packs", builtin_dir=tmp_path / "none")
    pack = store.import_checkpoint(BASELINE, name="base", architecture="vggish_baseline")
    return Tagger(pack, device="cpu")


def test_the_catalog_uses_write_ahead_logging(catalog, tmp_path) -> None:
    # SQL here, outside moodlib/library/: the file's journal mode, as any other program sees it.
    mode = sqlite3.connect(tmp_path / "catalog.sqlite").execute("PRAGMA journal_mode").fetchone()
    assert mode[0] == "wal"


def test_set_decisions_decides_for_many_tracks_and_clears_them(catalog) -> None:
    tracks = [catalog.upsert_track(f"/m/{n}.mp3", size=1, mtime_ns=1) for n in range(3)]
    catalog.set_decision(tracks[2], "happy", "reject")
    catalog.set_decisions(tracks[:2], "happy", "accept")
    assert [catalog.decisions(t) for t in tracks] == [
        {"happy": "accept"}, {"happy": "accept"}, {"happy": "reject"}
    ]  # fmt: skip
    catalog.set_decisions(tracks, "happy", None)
    assert [catalog.decisions(t) for t in tracks] == [{}, {}, {}]


def test_reviewed_tracks_are_those_with_a_decision_of_any_kind(catalog) -> None:
    tracks = [catalog.upsert_track(f"/m/{n}.mp3", size=1, mtime_ns=1) for n in range(4)]
    catalog.set_decision(tracks[3], "happy", "reject")
    catalog.add_tag(tracks[1], "boss fight")
    catalog.set_decisions(tracks[1:2], "sad", "accept")
    assert catalog.reviewed_track_ids() == [tracks[1], tracks[3]]
    catalog.set_decision(tracks[3], "happy", None)
    assert catalog.reviewed_track_ids() == [tracks[1]]


def test_many_tracks_and_predictions_go_in_at_once_as_one_at_a_time(catalog) -> None:
    first = catalog.upsert_track("/m/a.mp3", size=1, mtime_ns=1, title="Old")
    catalog.put_prediction(first, "p", scores_with(happy=0.5))
    ids = catalog.upsert_tracks([
        {"path": "/m/a.mp3", "size": 2, "mtime_ns": 2, "title": "New"},
        {"path": "/m/b.mp3", "size": 1, "mtime_ns": 1, "artist": "B", "duration": 3.5},
    ])  # fmt: skip
    assert ids[0] == first and catalog.track(first).title == "New"
    assert not catalog.has_prediction(first, "p"), "a changed file loses its predictions"
    second = catalog.track(ids[1])
    assert (second.path, second.artist, second.duration) == ("/m/b.mp3", "B", 3.5)
    catalog.put_predictions(
        "p", [(first, scores_with(sad=0.25), None), (ids[1], scores_with(epic=0.75), [1.0, 2.0])]
    )
    assert catalog.prediction(first, "p")[vocabulary.TAG_INDEX["sad"]] == 0.25
    assert catalog.embedding(first, "p") is None
    np.testing.assert_array_equal(catalog.embedding(ids[1], "p"), [1.0, 2.0])


def test_final_tags_start_from_the_predicted_tags(catalog) -> None:
    track = catalog.upsert_track("/m/a.mp3", size=1, mtime_ns=1)
    scores = scores_with(happy=0.5, epic=0.5, sad=0.9, dark=0.29)
    catalog.put_prediction(track, "p", scores)
    thresholds = {"happy": 0.5, "epic": 0.4, "sad": 0.95, "dark": 0.3}
    # Equal scores keep the tag order; a score just under its threshold is not predicted.
    assert vocabulary.predicted_tags(scores, thresholds) == ["epic", "happy"]
    assert catalog.final_tags(track, "p", thresholds) == ["epic", "happy"]


def test_a_changed_file_loses_its_predictions_but_not_the_users_decisions(catalog) -> None:
    track = catalog.upsert_track("/m/a.mp3", size=10, mtime_ns=1)
    catalog.put_prediction(track, "p", scores_with(happy=0.9))
    catalog.set_decision(track, "sad", "reject")
    assert catalog.upsert_track("/m/a.mp3", size=10, mtime_ns=1) == track
    assert catalog.has_prediction(track, "p")
    catalog.upsert_track("/m/a.mp3", size=11, mtime_ns=2)
    assert not catalog.has_prediction(track, "p")
    assert catalog.decisions(track) == {"sad": "reject"}


def test_scores_round_trip_with_nan_for_uncovered_tags(catalog) -> None:
    track = catalog.upsert_track("/m/a.mp3", size=1, mtime_ns=1)
    catalog.put_prediction(track, "p", scores_with(happy=0.25), np.arange(4, dtype=np.float32))
    scores = catalog.prediction(track, "p")
    assert scores[vocabulary.TAG_INDEX["happy"]] == 0.25
    assert np.isnan(scores).sum() == 55
    np.testing.assert_array_equal(catalog.embedding(track, "p"), [0, 1, 2, 3])


def test_final_tags_are_decisions_plus_accepts_minus_rejects_by_score(catalog) -> None:
    track = catalog.upsert_track("/m/a.mp3", size=1, mtime_ns=1)
    catalog.put_prediction(track, "p", scores_with(happy=0.9, epic=0.6, sad=0.2, dark=0.1))
    thresholds = {"happy": 0.5, "epic": 0.5, "sad": 0.5, "dark": 0.5}
    assert catalog.final_tags(track, "p", thresholds) == ["happy", "epic"]
    catalog.set_decision(track, "epic", "reject")
    catalog.set_decision(track, "sad", "accept")
    catalog.add_tag(track, "road trip")
    assert catalog.final_tags(track, "p", thresholds) == ["happy", "sad", "road trip"]
    catalog.set_decision(track, "epic", None)
    assert catalog.final_tags(track, "p", thresholds)[:2] == ["happy", "epic"]


def test_tracks_under_a_folder_do_not_include_a_sibling_with_the_same_prefix(catalog) -> None:
    for path in ("/m/rock/a.mp3", "/m/rock_old/b.mp3", "/m/rock/sub/c.mp3"):
        catalog.upsert_track(path, size=1, mtime_ns=1)
    assert [t.path for t in catalog.tracks(["/m/rock"])] == ["/m/rock/a.mp3", "/m/rock/sub/c.mp3"]


def test_undo_refuses_a_file_whose_moods_changed_since(catalog, music_copy) -> None:
    path = str(music_copy["flac"])
    results = write_tracks(catalog, [(path, ["happy"])], description="test")
    assert results[0].changed and read_moods(path) == ["happy"]

    write_moods(path, ["happy", "mine"])
    undone = undo_last(catalog)
    assert undone[0].error and "changed since" in undone[0].error
    assert read_moods(path) == ["happy", "mine"]
    assert catalog.undoable_batches(), "the batch stays undoable"


def test_undo_all_restores_every_batch_newest_first(catalog, music_copy) -> None:
    path = str(music_copy["mp3"])
    write_tracks(catalog, [(path, ["happy"])])
    write_tracks(catalog, [(path, ["sad", "dark"])])
    assert read_moods(path) == ["sad", "dark"]
    undo_last(catalog, all_batches=True)
    assert read_moods(path) == []
    assert catalog.undoable_batches() == []


def test_a_cancelled_scan_resumes_where_it_stopped(catalog, music_copy, tagger) -> None:
    folder = str(Path(music_copy["flac"]).parent)
    cancel = threading.Event()
    seen = []

    def stop_after_first_batch(progress) -> None:
        seen.append(progress.done)
        if progress.done >= 2:
            cancel.set()

    first = scan([folder], catalog, tagger, batch_tracks=2, progress=stop_after_first_batch,
                 cancel=cancel)  # fmt: skip
    assert first.cancelled
    assert 2 <= len(first.tagged) < len(music_copy)

    second = scan([folder], catalog, tagger, batch_tracks=2)
    assert not second.cancelled
    assert len(second.skipped) == len(first.tagged)
    assert len(second.tagged) == len(music_copy) - len(first.tagged)
    assert all(catalog.has_prediction(t.id, "base") for t in catalog.tracks([folder]))

    os.remove(music_copy["wav"])
    third = scan([folder], catalog, tagger)
    assert third.removed == 1 and len(third.skipped) == len(music_copy) - 1


def test_an_unchanged_library_is_rescanned_without_making_a_tagger(
    catalog, music_copy, tagger
) -> None:
    folder = str(Path(music_copy["flac"]).parent)
    scan([folder], catalog, tagger)

    def no_tagger() -> Tagger:
        raise AssertionError("a rescan of unchanged files made a Tagger")

    rescan = scan([folder], catalog, no_tagger, pack_name="base")
    assert len(rescan.skipped) == len(music_copy) and not rescan.tagged

    made = []

    def make_tagger() -> Tagger:
        made.append(tagger)
        return tagger

    changed = music_copy["ogg"]
    os.utime(changed, ns=(1, 1))
    third = scan([folder], catalog, make_tagger, pack_name="base")
    assert [r.path for r in third.tagged] == [str(changed)] and len(made) == 1


def test_file_states_tell_a_rescan_what_the_last_scan_left(catalog) -> None:
    scored = catalog.upsert_track("/m/scored.mp3", size=10, mtime_ns=5)
    catalog.put_prediction(scored, "p", scores_with(happy=0.5))
    failed = catalog.upsert_track("/m/failed.mp3", size=10, mtime_ns=5, error="truncated")
    other_pack = catalog.upsert_track("/m/other.mp3", size=10, mtime_ns=5)
    catalog.put_prediction(other_pack, "q", scores_with(happy=0.5))
    catalog.upsert_track("/music/outside.mp3", size=10, mtime_ns=5)

    states = catalog.file_states(["/m"], "p")

    assert set(states) == {"/m/scored.mp3", "/m/failed.mp3", "/m/other.mp3"}
    assert states["/m/scored.mp3"].unchanged(10, 5)
    assert not states["/m/scored.mp3"].unchanged(10, 6), "a new mtime is a change"
    assert not states["/m/failed.mp3"].unchanged(10, 5), "a failed file is tried again"
    assert not states["/m/other.mp3"].unchanged(10, 5), "another pack's scores do not count"
    assert states["/m/failed.mp3"].id == failed


def test_file_states_of_more_files_than_one_query_takes(catalog) -> None:
    paths = [f"/m/{n:03d}.mp3" for n in range(250)]
    ids = catalog.upsert_tracks({"path": p, "size": 1, "mtime_ns": 1} for p in paths)
    catalog.put_prediction(ids[-1], "p", scores_with(happy=0.5))
    states = catalog.file_states(paths, "p")  # three queries
    assert sorted(states) == paths and [states[p].id for p in paths] == ids
    assert [states[p].predicted for p in paths] == [False] * 249 + [True]


def test_removing_missing_files_below_no_folder_removes_nothing(catalog) -> None:
    catalog.upsert_track("/m/a.mp3", size=1, mtime_ns=1)
    assert catalog.remove_missing([], set()) == 0
    assert catalog.count_tracks() == 1


def test_a_scan_of_a_path_that_does_not_exist_keeps_the_catalog(catalog, tmp_path) -> None:
    catalog.upsert_track("/m/a.mp3", size=1, mtime_ns=1)

    result = scan([tmp_path / "typo"], catalog, lambda: None, pack_name="base")

    assert result.missing_paths == [str(tmp_path / "typo")]
    assert result.removed == 0 and catalog.count_tracks() == 1


@pytest.mark.parametrize(
    ("cores", "expected"), [(1, (1, 1)), (2, (1, 1)), (8, (2, 6)), (32, (8, 24))]
)
def test_with_spinning_threads_decode_workers_and_inference_share_the_cores(
    cores, expected
) -> None:
    assert thread_counts(cores, sleeping_waits=False) == expected


def test_with_sleeping_threads_inference_takes_every_core_beside_the_decode_workers() -> None:
    assert thread_counts(2, sleeping_waits=True) == (1, 2)
    assert thread_counts(32, sleeping_waits=True) == (8, 32)


def test_decode_workers_asked_for_leave_the_other_cores_to_inference() -> None:
    assert thread_counts(8, workers=3, sleeping_waits=False) == (3, 5)
    assert thread_counts(2, workers=4, sleeping_waits=False) == (4, 1)


def test_read_track_gives_the_audio_a_scan_tags(catalog, real_music_library, tagger) -> None:
    path = str(real_music_library["flac"])
    scan([path], catalog, tagger)

    audio = read_track(path, tagger)

    assert audio.offset_seconds == tagger.read_window(audio.info.duration_seconds)[0]
    scores = tagger.predict_waveforms([audio.waveform])[0].scores
    track = catalog.track_by_path(path)
    np.testing.assert_allclose(catalog.prediction(track.id, "base"), scores, atol=1e-5)
