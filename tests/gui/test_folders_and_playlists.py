"""The app and the CLI share the library's folders; the app makes the CLI's playlists."""

from __future__ import annotations

import m3u8
import pytest
from media import copy_library

from moodlib import config
from moodlib.cli import main

pytestmark = pytest.mark.gui


def panel_folders(window) -> list[str]:
    panel = window.library.folders
    return [panel.item(row).text() for row in range(panel.count())]


def test_folders_scanned_from_the_cli_are_the_apps_library_folders(
    open_window, wait_idle, real_music_library, tmp_path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    copy_library({"flac": real_music_library["flac"]}, first)
    copy_library({"mp3": real_music_library["mp3"]}, second)
    assert main(["scan", str(first)]) == 0

    window = open_window()
    assert panel_folders(window) == [str(first)]

    second.mkdir(exist_ok=True)
    config.add_library_folders([second])  # a 'moodlib scan' while the app is open
    window.scan_action.trigger()
    assert panel_folders(window) == [str(first), str(second)]
    wait_idle(window)
    assert window.catalog.count_tracks() == 2


def test_make_playlists_writes_what_the_command_writes(
    open_window, wait_idle, real_music_library, tmp_path
) -> None:
    music = tmp_path / "music"
    copy_library({fmt: real_music_library[fmt] for fmt in ("flac", "ogg", "m4a")}, music)
    assert main(["scan", str(music)]) == 0
    assert main(["playlists", str(tmp_path / "from-cli")]) == 0
    window = open_window()
    tags_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Tags")
    assert window.playlists_action in tags_menu.actions()
    assert window.playlists_action.isEnabled()

    window.writes.make_playlists(tmp_path / "from-app")
    assert window.busy and window.job.title == "Writing playlists"
    wait_idle(window)

    from_cli = sorted((tmp_path / "from-cli").iterdir())
    from_app = sorted((tmp_path / "from-app").iterdir())
    assert from_cli, "the starter pack tags these tracks"
    assert [p.name for p in from_app] == [p.name for p in from_cli]
    for app_list, cli_list in zip(from_app, from_cli, strict=True):
        assert app_list.read_text(encoding="utf-8") == cli_list.read_text(encoding="utf-8")
        assert m3u8.load(str(app_list)).segments
    message = window.statusBar().currentMessage()
    assert message == f"{len(from_app)} playlists written to {tmp_path / 'from-app'}."
