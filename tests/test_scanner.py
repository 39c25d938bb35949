"""Finding audio files and reading what the library view shows about them."""

from __future__ import annotations

from pathlib import Path

import media

from moodlib.library.scanner import display_tags, find_audio_files


def test_title_artist_and_album_are_read_from_every_format(real_music_library) -> None:
    for fmt, path in real_music_library.items():
        shown = display_tags(path)
        assert shown["artist"] == media.ARTIST, fmt
        assert shown["album"] == media.ALBUM, fmt
        assert shown["title"] and shown["title"] in path.name, fmt


def test_hidden_files_temporary_copies_and_non_audio_are_not_found(tmp_path: Path) -> None:
    for name in ("a.flac", "b.MP3", ".hidden.mp3", ".a.flac.moodlib-tmp-x1", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "c.mp3").write_bytes(b"")
    found = [Path(f.path).name for f in find_audio_files([tmp_path, tmp_path / "a.flac"])]
    assert found == ["a.flac", "b.MP3"]
