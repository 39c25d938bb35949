"""The library's folders: one list for the app's "Library folders" panel and the CLI.

``moodlib scan FOLDER`` adds the folder; ``moodlib scan`` without one scans the library's
folders, those the app added included.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from media import copy_library

from moodlib import config
from moodlib.cli import main


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MOODLIB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_folders_are_added_once_in_order_and_removed(home, tmp_path) -> None:
    rock, jazz = tmp_path / "rock", tmp_path / "jazz"

    assert config.add_library_folders([rock, jazz, rock]) == [str(rock), str(jazz)]
    assert config.add_library_folders([jazz]) == []
    config.remove_library_folder(rock)

    assert config.library_folders() == [str(jazz)]


def test_a_folder_inside_the_library_is_in_it_and_one_above_takes_its_place(home, tmp_path):
    music = tmp_path / "music"
    config.add_library_folders([music / "album", tmp_path / "other"])

    assert config.add_library_folders([music / "album" / "cd1"]) == []
    assert config.add_library_folders([music]) == [str(music)]
    assert config.library_folders() == [str(tmp_path / "other"), str(music)]


def test_relative_folders_are_stored_absolute(home, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config.add_library_folders(["music"])
    assert config.library_folders() == [str(tmp_path / "music")]


def test_a_cli_scan_adds_its_folders_and_a_bare_scan_scans_the_library(
    home, real_music_library, tmp_path, capsys
) -> None:
    cli_folder = tmp_path / "from-cli"
    app_folder = tmp_path / "from-app"
    copy_library({"flac": real_music_library["flac"]}, cli_folder)
    copy_library({"mp3": real_music_library["mp3"]}, app_folder)
    single = copy_library({"ogg": real_music_library["ogg"]}, tmp_path / "loose")["ogg"]

    assert main(["scan", str(cli_folder), str(single)]) == 0
    assert config.library_folders() == [str(cli_folder)]  # folders, not single files

    config.add_library_folders([app_folder])  # as the app's "Add music folder" does
    report = tmp_path / "report.json"
    assert main(["scan", "--json", str(report)]) == 0

    scanned = {Path(t["path"]).parent for t in json.loads(report.read_text())["tracks"]}
    assert scanned == {cli_folder, app_folder}
    assert capsys.readouterr().err.splitlines()[-1].startswith("1 tagged, 1 unchanged, 0 failed")
