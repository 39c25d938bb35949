"""One file, one name: paths resolved where they come in, names that are not UTF-8, links.

The scans tag with the shipped default pack; which tags it predicts does not matter here, so
the tests that write accept a tag in review to have something to write.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from moodlib import config
from moodlib.cli import main
from moodlib.inference import Tagger
from moodlib.library.catalog import Catalog
from moodlib.library.paths import printable, resolve_path
from moodlib.library.scanner import find_audio_files, reached_paths
from moodlib.metadata import read_moods
from moodlib.packstore import PackStore
from moodlib.pipeline import scan

LATIN1 = "caf\udce9.flac"  # b"caf\xe9.flac", a Latin-1 name
NOT_UTF8 = os.fsdecode(b"\xff\xfe.mp3")


@pytest.fixture(scope="module")
def tagger(tmp_path_factory: pytest.TempPathFactory) -> Tagger:
    store = PackStore(tmp_path_factory.mktemp("no-user-packs"))
    return Tagger(store.get(config.DEFAULT_PACK), device="cpu")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MOODLIB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def library(real_music_library: dict[str, Path], tmp_path: Path) -> Path:
    """lib/a.flac, lib/sub/b.ogg, and outside/c.mp3 reached through the link lib/ext."""
    lib, outside = tmp_path / "lib", tmp_path / "outside"
    (lib / "sub").mkdir(parents=True)
    outside.mkdir()
    shutil.copyfile(real_music_library["flac"], lib / "a.flac")
    shutil.copyfile(real_music_library["ogg"], lib / "sub" / "b.ogg")
    shutil.copyfile(real_music_library["mp3"], outside / "c.mp3")
    (lib / "ext").symlink_to(outside)
    return lib


def tracks(home: Path) -> list[str]:
    with Catalog(home / "catalog.sqlite") as catalog:
        return [t.path for t in catalog.tracks()]


def scan_into(home: Path, tagger: Tagger, *paths: Path):
    """``moodlib scan PATHS``, with a loaded tagger."""
    with Catalog(home / "catalog.sqlite") as catalog:
        return scan(paths, catalog, tagger)


def accept_happy(paths) -> None:
    for path in paths:
        assert main(["review", str(path), "--accept", "happy"]) == 0


# Finding files


def test_every_file_is_found_once_by_its_real_path_however_it_is_reached(library) -> None:
    tmp = library.parent
    (library / "alias").symlink_to(library / "sub")  # the same folder, again
    roots = [library, library / "sub" / ".." / "a.flac", tmp / "outside", library / "ext"]

    found = list(find_audio_files(roots))

    assert [f.path for f in found] == [
        str(library / "a.flac"),
        str(library / "sub" / "b.ogg"),  # through alias, sorted before ext and sub
        str(tmp / "outside" / "c.mp3"),
    ]
    assert reached_paths(roots) == sorted(
        map(str, [library, library / "a.flac", library / "sub", tmp / "outside"])
    )


def test_links_that_dangle_or_loop_are_reported_each(tmp_path, real_music_library) -> None:
    shutil.copyfile(real_music_library["flac"], tmp_path / "song.flac")
    (tmp_path / "gone.mp3").symlink_to(tmp_path / "nowhere.mp3")
    (tmp_path / "self.ogg").symlink_to(tmp_path / "self.ogg")
    (tmp_path / "again").symlink_to(tmp_path)
    (tmp_path / "cover.jpg").symlink_to(tmp_path / "nowhere.jpg")  # not a track: not reported

    found = {Path(f.path).name: f.error for f in find_audio_files([tmp_path])}

    assert found == {
        "again": f"a symbolic link to {tmp_path}, a folder that contains it: not followed",
        "gone.mp3": f"a symbolic link to {tmp_path / 'nowhere.mp3'}, which does not exist",
        "self.ogg": "a symbolic link that loops (it leads back to itself)",
        "song.flac": None,
    }


def test_names_that_are_not_utf8_are_found(tmp_path: Path) -> None:
    for name in (LATIN1, NOT_UTF8):
        (tmp_path / name).write_bytes(b"")
    assert sorted(Path(f.path).name for f in find_audio_files([tmp_path])) == [LATIN1, NOT_UTF8]


def test_resolve_path_expands_home_dots_and_links(tmp_path, monkeypatch) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path / "real")
    expected = str(tmp_path / "real" / "x.flac")
    for given in ("~/link/x.flac", "../link/./x.flac", b"x.flac", Path("x.flac")):
        assert resolve_path(given) == expected
    assert printable(str(tmp_path / NOT_UTF8)) == f"{tmp_path}/\\xff\\xfe.mp3"


# The catalog


def test_the_catalog_keeps_names_that_are_not_utf8(catalog, tmp_path) -> None:
    folder = tmp_path / "d\udce9j\udce0"  # a folder with a Latin-1 name
    paths = [tmp_path / "plain.flac", tmp_path / LATIN1, folder / NOT_UTF8, folder / "x.mp3"]
    paths = list(map(str, paths))
    ids = [catalog.upsert_track(path, size=1, mtime_ns=1, error="\udcff") for path in paths]

    assert [catalog.track_by_path(p).id for p in paths] == ids
    assert {t.path for t in catalog.tracks([str(tmp_path)])} == set(paths)
    assert [t.path for t in catalog.tracks([str(folder)])] == sorted(paths[2:], key=os.fsencode)
    assert catalog.track(ids[0]).error == "\\xff"
    assert catalog.remove_missing([str(folder)], {paths[3]}) == 1


def test_tracks_below_a_folder_match_its_name_exactly(catalog) -> None:
    for path in ("/m/Rock/a.mp3", "/m/rock/b.mp3", "/m/rock_c/c.mp3", "/m/rock%/d.mp3"):
        catalog.upsert_track(path, size=1, mtime_ns=1)
    assert [t.path for t in catalog.tracks(["/m/rock"])] == ["/m/rock/b.mp3"]
    assert [t.path for t in catalog.tracks(["/m/rock%/"])] == ["/m/rock%/d.mp3"]


# The CLI


def test_a_file_scanned_under_three_names_is_one_track(home, library, tagger) -> None:
    same = [library / "sub" / ".." / "a.flac", library / "ext" / "c.mp3"]
    scan_into(home, tagger, library, library / "a.flac", *same)
    again = scan_into(home, tagger, library.parent / "outside" / "c.mp3", *same)

    assert len(again.skipped) == 2

    assert tracks(home) == [
        str(library / "a.flac"),
        str(library / "sub" / "b.ogg"),
        str(library.parent / "outside" / "c.mp3"),
    ]


def test_write_with_a_relative_path_writes_the_files_below_it(
    home, library, tagger, monkeypatch, capsys
) -> None:
    scan_into(home, tagger, library)
    files = [Path(path) for path in tracks(home)]
    accept_happy(files)
    monkeypatch.chdir(library / "sub")
    capsys.readouterr()

    assert main(["write", "../"]) == 0

    assert capsys.readouterr().err.endswith("3 files written, 0 write errors\n")
    assert all("happy" in read_moods(path) for path in files)


def test_a_file_deleted_from_a_linked_folder_leaves_the_catalog(home, library, tagger) -> None:
    scan_into(home, tagger, library)
    (library.parent / "outside" / "c.mp3").unlink()
    assert scan_into(home, tagger, library).removed == 1
    assert tracks(home) == [str(library / "a.flac"), str(library / "sub" / "b.ogg")]


def test_names_that_are_not_utf8_are_scanned_tagged_and_shown(
    home, real_music_library, tmp_path, capfdbinary
) -> None:
    music = tmp_path / "music"
    music.mkdir()
    files = [music / LATIN1, music / NOT_UTF8]
    shutil.copyfile(real_music_library["flac"], files[0])
    shutil.copyfile(real_music_library["mp3"], files[1])

    assert main(["scan", str(music)]) == 0
    accept_happy(files)
    assert main(["write"]) == 0
    assert main(["show", str(files[1])]) == 0

    assert all("happy" in read_moods(path) for path in files)
    out = capfdbinary.readouterr().out
    assert os.fsencode(files[0]) in out and os.fsencode(files[1]) + b"\n  title:" in out


def test_links_that_dangle_or_loop_are_reported_and_the_scan_goes_on(home, library, capsys) -> None:
    (library / "gone.mp3").symlink_to(library / "nowhere.mp3")
    (library / "loop").symlink_to(library / "sub")
    (library / "sub" / "up").symlink_to(library)

    assert main(["scan", str(library)]) == 1

    err = capsys.readouterr().err
    assert f"error: {library / 'gone.mp3'}: a symbolic link to " in err
    assert f"error: {library / 'sub' / 'up'}: a symbolic link to {library}, a folder" in err
    assert "3 tagged, 0 unchanged, 2 failed" in err
