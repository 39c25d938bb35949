"""The write journal: intents on disk before a file is replaced, recovery after a crash, undo
that restores what was there, and only moodlib's own values replaced.

Crashes are real: a child process (``writer_process``) SIGKILLs itself at a chosen step of a
write or an undo. What a user then runs is the CLI, whose start-up settles the journal.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import media
import pytest
import writer_process
from writer_process import KILLED, Kill

from moodlib.cli import main
from moodlib.library.catalog import Catalog, CatalogError
from moodlib.library.schema import SCHEMA_VERSION
from moodlib.metadata import read_mood_state, read_moods, write_moods
from moodlib.metadata.atomic import TEMP_MARKER
from moodlib.metadata.journal import merged_moods, recover, undo_last, write_tracks
from moodlib.metadata.lock import WriteLock


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MOODLIB_HOME for the CLI; its catalog is the one the tests write through."""
    monkeypatch.setenv("MOODLIB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def home_catalog(home: Path):
    with Catalog(home / "catalog.sqlite") as opened:
        yield opened


def temp_files(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if TEMP_MARKER in name]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plan_for(music: dict[str, Path], *formats: str) -> list[tuple[str, list[str]]]:
    return [(str(music[fmt]), ["happy", "epic"]) for fmt in formats]


def encode(source: Path, dest: Path, *args: str) -> Path:
    media.tool_output("ffmpeg", "-v", "error", "-y", "-i", source, "-map", "0:a", *args, dest)
    return dest


# The intent comes first


def test_the_intent_is_in_the_catalog_before_the_file_is_replaced(
    catalog, music_copy, monkeypatch
) -> None:
    path = str(music_copy["flac"])
    journal_at_rename = []
    real_replace = os.replace

    def replace_and_look(src, dst) -> None:
        # Another connection sees only what is committed.
        with Catalog(catalog.path) as other:
            journal_at_rename.extend(
                (e.path, e.before, e.after, e.state) for e in other.unsettled_journal()
            )
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_and_look)
    write_tracks(catalog, [(path, ["happy"])])

    assert journal_at_rename == [(path, [], ["happy"], "pending")]
    assert [e.state for e in catalog.journal(catalog.undoable_batches()[0])] == ["written"]


# Crashes, then the next start-up


def test_a_write_killed_just_after_a_rename_is_undone_by_the_next_undo(
    home, home_catalog, music_copy, capsys
) -> None:
    plan = plan_for(music_copy, "mp3", "flac", "wv")
    killed = writer_process.run(home_catalog.path, "write", plan, Kill(call="replace", nth=2))
    assert killed.returncode == KILLED
    assert [read_moods(path) for path, _ in plan] == [["happy", "epic"]] * 2 + [[]]

    assert main(["undo"]) == 0

    assert [read_moods(path) for path, _ in plan] == [[], [], []]
    err = capsys.readouterr().err
    assert "recovered from an interrupted write or undo: 1 written" in err
    assert "2 files restored, 0 errors" in err


def test_a_write_killed_while_it_copies_a_file_leaves_no_temporary_file(
    home, home_catalog, music_copy, capsys
) -> None:
    folder = music_copy["mp3"].parent
    before = sha(music_copy["mp3"])
    plan = plan_for(music_copy, "mp3")
    killed = writer_process.run(home_catalog.path, "write", plan, Kill(call="copyfile"))
    assert killed.returncode == KILLED
    assert len(temp_files(folder)) == 1

    assert main(["undo"]) == 0

    assert temp_files(folder) == []
    assert sha(music_copy["mp3"]) == before
    assert "1 not written, 1 temporary copies removed" in capsys.readouterr().err
    assert home_catalog.undoable_batches() == []


def test_an_undo_killed_midway_is_settled_and_finished_by_undoing_again(
    home, home_catalog, music_copy
) -> None:
    plan = plan_for(music_copy, "mp3", "ogg", "m4a")
    write_tracks(home_catalog, plan)
    killed = writer_process.run(home_catalog.path, "undo", kill=Kill(call="replace", nth=2))
    assert killed.returncode == KILLED
    assert sorted(map(len, (read_moods(path) for path, _ in plan))) == [0, 0, 2]

    recovery = recover(home_catalog)

    # The first file's entry was settled before the kill; the second's file was restored.
    assert (len(recovery.undone), len(recovery.not_undone)) == (1, 1)
    assert main(["undo"]) == 0
    assert [read_moods(path) for path, _ in plan] == [[], [], []]
    assert home_catalog.undoable_batches() == []


def test_recovery_leaves_a_write_in_progress_alone(home_catalog, music_copy) -> None:
    plan = plan_for(music_copy, "flac")
    killed = writer_process.run(home_catalog.path, "write", plan, Kill(call="replace"))
    assert killed.returncode == KILLED
    other_writer = WriteLock(home_catalog.path)
    assert other_writer.acquire(wait=False)
    try:
        assert recover(home_catalog).summary() == ""
        assert [e.state for e in home_catalog.unsettled_journal()] == ["pending"]
    finally:
        other_writer.release()
    assert recover(home_catalog).written == [plan[0][0]]


def test_an_entry_whose_file_was_deleted_since_the_crash_is_dropped(
    home_catalog, music_copy
) -> None:
    plan = plan_for(music_copy, "ogg")
    writer_process.run(home_catalog.path, "write", plan, Kill(call="replace", when="before"))
    music_copy["ogg"].unlink()

    recovery = recover(home_catalog)

    assert recovery.not_written == [plan[0][0]] and len(recovery.removed) == 1
    assert home_catalog.unsettled_journal() == []


# Undo restores what was there


def test_an_id3v23_file_stays_id3v23_and_keeps_its_v23_frames(catalog, music_copy) -> None:
    song = encode(music_copy["mp3"], music_copy["mp3"].with_name("v23.mp3"), "-c", "copy",
                  "-id3v2_version", "3", "-metadata", "date=1999")  # fmt: skip
    assert read_mood_state(song).tag == "ID3v2.3"

    write_tracks(catalog, [(str(song), ["happy", "epic"])])

    assert song.read_bytes()[:4] == b"ID3\x03"
    assert read_mood_state(song).moods == ["happy", "epic"]
    assert media.probed_tags(song)["date"] == "1999"  # TYER, a v2.3 frame
    undo_last(catalog)
    assert song.read_bytes()[:4] == b"ID3\x03" and read_moods(song) == []


@pytest.mark.parametrize(
    ("fmt", "args"),
    [
        ("wav", ()),
        ("aiff", ("-c:a", "pcm_s16be")),
        ("wv", ("-map_metadata", "-1", "-fflags", "+bitexact")),
    ],
)
def test_undo_takes_away_the_tag_a_write_added_to_a_file_without_one(
    catalog, music_copy, fmt, args
) -> None:
    song = music_copy[fmt]
    if args:
        song = encode(song, song.with_name("bare" + song.suffix), *args)
    assert read_mood_state(song).tag == ""
    original = sha(song)

    write_tracks(catalog, [(str(song), ["happy"])])
    assert read_mood_state(song).tag != ""
    undo_last(catalog)

    assert read_mood_state(song).tag == ""
    assert sha(song) == original  # the file is as it was, byte for byte


# Only moodlib's values are moodlib's


def test_values_moodlib_did_not_write_are_kept_even_when_they_are_tags() -> None:
    assert merged_moods(["Chill", "Happy"], ["epic", "dark"]) == ["Chill", "Happy", "epic", "dark"]
    assert merged_moods(["Happy"], ["happy", "sad"]) == ["Happy", "sad"]
    assert merged_moods([], ["epic", "epic"]) == ["epic"]


def test_values_moodlib_wrote_are_replaced_by_the_new_ones() -> None:
    existing = ["Chill", "happy", "epic"]
    assert merged_moods(existing, ["sad"], written={"happy", "epic"}) == ["Chill", "sad"]


def test_a_rejected_tag_goes_whoever_wrote_it() -> None:
    assert merged_moods(["Chill", " HAPPY"], ["sad"], rejected=["happy"]) == ["Chill", "sad"]


def test_a_hand_set_happy_survives_every_write(catalog, music_copy) -> None:
    path = str(music_copy["mp3"])
    write_moods(path, ["Chill", "Happy"])

    write_tracks(catalog, [(path, ["happy", "epic"])])
    assert read_moods(path) == ["Chill", "Happy", "epic"]
    write_tracks(catalog, [(path, ["happy", "sad"])])
    assert read_moods(path) == ["Chill", "Happy", "sad"]
    undo_last(catalog, all_batches=True)
    assert read_moods(path) == ["Chill", "Happy"]


def test_a_review_rejection_removes_a_hand_set_value(catalog, music_copy) -> None:
    path = str(music_copy["flac"])
    write_moods(path, ["Chill", "Happy"])
    track = catalog.upsert_track(path, size=1, mtime_ns=1)
    catalog.set_decision(track, "happy", "reject")

    write_tracks(catalog, [(path, ["sad"])])

    assert read_moods(path) == ["Chill", "sad"]


def test_replace_existing_takes_over_hand_set_tag_values_only(catalog, music_copy) -> None:
    path = str(music_copy["ogg"])
    write_moods(path, ["Chill", "Happy", "dark"])

    write_tracks(catalog, [(path, ["sad"])], replace_existing=True)

    assert read_moods(path) == ["Chill", "sad"]
    undo_last(catalog)
    assert read_moods(path) == ["Chill", "Happy", "dark"]


# Catalogs made before the journal had states


V1_SCHEMA = """
CREATE TABLE tracks (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, duration REAL, format TEXT, title TEXT, artist TEXT, album TEXT,
    error TEXT, scanned_at REAL);
CREATE TABLE write_batches (id INTEGER PRIMARY KEY, created_at REAL NOT NULL, description TEXT,
    undone_at REAL);
CREATE TABLE write_journal (id INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES write_batches(id), path TEXT NOT NULL,
    before TEXT NOT NULL, after TEXT NOT NULL, written_at REAL NOT NULL);
CREATE INDEX journal_by_batch ON write_journal(batch_id);
CREATE INDEX journal_by_path ON write_journal(path);
PRAGMA user_version = 1;
"""


def test_a_version_1_catalog_is_upgraded_and_its_writes_stay_undoable(tmp_path, music_copy) -> None:
    path = str(music_copy["mp3"])
    write_moods(path, ["Chill", "happy"])  # what moodlib 0.1 wrote, adding "happy"
    # SQL here, outside moodlib/library/: the old catalog is one this moodlib cannot write.
    with sqlite3.connect(tmp_path / "old.sqlite") as old:
        old.executescript(V1_SCHEMA)
        old.execute("INSERT INTO write_batches VALUES (1, 1.0, 'old undone', 2.0)")
        old.execute("INSERT INTO write_batches VALUES (2, 3.0, 'old write', NULL)")
        for batch, after in ((1, ["Chill", "sad"]), (2, ["Chill", "happy"])):
            old.execute(
                "INSERT INTO write_journal (batch_id, path, before, after, written_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (batch, path, json.dumps(["Chill"]), json.dumps(after), 1.0),
            )

    with Catalog(tmp_path / "old.sqlite") as upgraded:
        assert [(e.state, e.before_tag) for e in upgraded.journal(1)] == [("undone", None)]
        assert upgraded.moods_written(path) == {"happy"}
        assert [r.changed for r in undo_last(upgraded)] == [True]

    assert read_moods(path) == ["Chill"]
    with sqlite3.connect(tmp_path / "old.sqlite") as upgraded:
        assert upgraded.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2


def test_a_catalog_from_a_newer_moodlib_is_refused(tmp_path) -> None:
    # SQL here, outside moodlib/library/: only a newer moodlib writes such a catalog.
    with sqlite3.connect(tmp_path / "new.sqlite") as newer:
        newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(CatalogError, match="made by a newer moodlib"):
        Catalog(tmp_path / "new.sqlite")


def test_the_cli_reports_no_recovery_when_there_was_nothing_to_recover(home, capsys) -> None:
    assert main(["undo"]) == 0
    assert capsys.readouterr().err == "0 files restored, 0 errors\n"


def test_the_child_writer_runs_to_the_end_without_a_kill(home_catalog, music_copy) -> None:
    done = writer_process.run(home_catalog.path, "write", plan_for(music_copy, "opus"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["events"] > 10
