"""Specification of moodlib.metadata: mood tags written into real music files.

Each behaviour is checked on one real file per container. What other programs show is checked
with the programs themselves (kid3-cli and exiftool as tag editors, ffprobe as a player would
read the file, wvunpack for WavPack).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import mutagen
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from media import (
    ALBUM,
    ARTIST,
    FORMATS,
    copy_library,
    decoded_pcm_sha,
    exiftool_moods,
    exiftool_raw_moods,
    kid3_moods,
    probed_tags,
    wvunpack_moods,
)

from moodlib.metadata import (
    SUPPORTED_EXTENSIONS,
    TagWriteError,
    read_mood_state,
    read_moods,
    supported_extensions,
    write_moods,
)
from moodlib.metadata.atomic import TEMP_MARKER
from moodlib.metadata.tags import CONVENTIONS

MOODS = ["happy", "epic"]

ID3_FORMATS = ("mp3", "wav", "aiff")
VORBIS_FORMATS = ("flac", "ogg", "opus")
MP4_FORMATS = ("m4a", "alac")
APE_FORMATS = ("wv", "ape", "mpc")
COVER_ART_FORMATS = ("mp3", "flac", "m4a", "alac")

# kid3-cli's "get" listing, one entry per frame. ID3 and MP4 keep the values in one frame
# ("happy|epic"). ASF stores the first value in the Extended Content Description and the others
# in the Metadata Library, which comes first in the header, so tag editors list it last.
# TagLib (kid3's backend) shows only the first value of an APEv2 item: see wvunpack below.
KID3_SHOWS = {
    **dict.fromkeys(ID3_FORMATS + MP4_FORMATS, ("happy|epic",)),
    **dict.fromkeys(VORBIS_FORMATS, ("happy", "epic")),
    "wma": ("epic", "happy"),
    **dict.fromkeys(APE_FORMATS, ("happy",)),
}

# exiftool joins ID3 values with "/" and MP4 values with the separator asked for; it prints
# a Monkey's Audio item's values run together (the NUL between them is kept in its -b output);
# it cannot read WavPack or Musepack SV8 files at all.
EXIFTOOL_SHOWS = {
    **dict.fromkeys(ID3_FORMATS, ("happy/epic",)),
    **dict.fromkeys(MP4_FORMATS, ("happy|epic",)),
    **dict.fromkeys(VORBIS_FORMATS, ("happy", "epic")),
    "wma": ("epic", "happy"),
    "ape": ("happyepic",),
}

# ffprobe's key (lowercased) and value. FFmpeg joins Vorbis comments with ";" and shows only
# the first value elsewhere. It drops a WAV's ID3 chunk when a LIST INFO chunk (which ffmpeg
# itself writes) is present, so WAV is left out.
FFPROBE_SHOWS = {
    **dict.fromkeys(("mp3", "aiff"), ("tmoo", "happy")),
    **dict.fromkeys(VORBIS_FORMATS, ("mood", "happy;epic")),
    **dict.fromkeys(MP4_FORMATS, ("mood", "happy")),
    "wma": ("wm/mood", "happy"),
    **dict.fromkeys(APE_FORMATS, ("mood", "happy")),
}


def requires(tool: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} is not installed")


def temp_files(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if TEMP_MARKER in name]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cover_art_sha(path: Path) -> str:
    picture = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-c", "copy", "-f", "image2pipe",
         "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert picture
    return hashlib.sha256(picture).hexdigest()


@pytest.fixture(params=FORMATS)
def fmt(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def song(real_music_library: dict[str, Path], fmt: str, tmp_path: Path) -> Path:
    """A writable copy of the library's file of the format under test, with no mood yet."""
    return copy_library({fmt: real_music_library[fmt]}, tmp_path / "music")[fmt]


# Writing and reading back


def test_library_files_start_without_moods(song: Path) -> None:
    assert read_moods(song) == []


def test_written_moods_read_back_in_order(song: Path) -> None:
    write_moods(song, MOODS)
    assert read_moods(song) == MOODS


def test_first_write_returns_empty_previous_moods(song: Path) -> None:
    assert write_moods(song, MOODS) == []


def test_overwrite_replaces_all_values_and_returns_old_ones(song: Path) -> None:
    write_moods(song, MOODS)
    assert write_moods(song, ["dark"]) == MOODS
    assert read_moods(song) == ["dark"]


def test_unicode_moods_round_trip(song: Path) -> None:
    moods = ["fröhlich", "悲しい", "épique 🎵"]
    write_moods(song, moods)
    assert read_moods(song) == moods


def test_empty_value_among_moods_round_trips(song: Path) -> None:
    write_moods(song, ["happy", ""])
    assert read_moods(song) == ["happy", ""]


def test_writing_the_same_moods_leaves_the_file_alone(song: Path) -> None:
    write_moods(song, MOODS)
    before = song.stat()
    assert write_moods(song, MOODS) == MOODS
    assert (song.stat().st_ino, song.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


# Any text a str can hold (no lone surrogates), the separators of every format and of the
# programs that join values, empty and very long values.
MOOD_VALUES = st.text(st.characters(exclude_categories=("Cs",)), max_size=300) | st.sampled_from(
    ["", " ", "/", ";", "|", "\\", "\0", "a\0b", "=", "MOOD=x", "\r\n", "x" * 70_000]
)


@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,  # the same examples on every run
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(moods=st.lists(MOOD_VALUES, max_size=6))
@example(moods=[""]).via("ID3 leaves out an empty frame")
@example(moods=["", ""]).via("two empty values are a value")
@example(moods=["happy/epic", "dark;sad", "calm|soft"]).via("other programs' separators")
@example(moods=["épique", "悲しい", "🎵" * 1000]).via("unicode, long")
def test_mood_values_read_back_exactly_or_are_refused_untouched(song: Path, moods) -> None:
    reason = CONVENTIONS[type(mutagen.File(song))].cannot_hold(moods)
    if reason is None:
        write_moods(song, moods)
        assert read_moods(song) == moods
    else:
        before = sha(song)
        with pytest.raises(TagWriteError, match=reason):
            write_moods(song, moods)
        assert sha(song) == before


@pytest.mark.parametrize("fmt", ID3_FORMATS, indirect=True)
def test_an_id3v23_tag_stays_id3v23(song: Path, fmt: str) -> None:
    audio = mutagen.File(song)
    if audio.tags is None:
        audio.add_tags()
    audio.save(v2_version=3)

    write_moods(song, MOODS)

    assert read_mood_state(song).tag == "ID3v2.3"
    assert read_moods(song) == MOODS
    if fmt == "mp3":
        assert song.read_bytes()[:4] == b"ID3\x03"


def test_a_file_not_holding_the_expected_moods_is_not_written(song: Path) -> None:
    write_moods(song, ["mine"])
    before = sha(song)
    with pytest.raises(TagWriteError, match=r"its moods changed to \['mine'\]"):
        write_moods(song, MOODS, expect=[])
    assert sha(song) == before


def test_a_tag_holding_only_moods_can_be_dropped(song: Path, fmt: str) -> None:
    had_tag = read_mood_state(song).tag
    write_moods(song, MOODS)
    write_moods(song, [], drop_empty_tag=True)
    # The library's files have titles: their tag stays; only the WAV file had none.
    assert read_mood_state(song).tag == had_tag
    assert (had_tag == "") == (fmt == "wav")


@pytest.mark.parametrize("fmt", ["mp3"], indirect=True)
def test_mp3_without_any_tag_gets_an_id3v24_tag(song: Path) -> None:
    bare = song.with_name("bare.mp3")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(song), "-map", "0:a", "-c", "copy",
         "-map_metadata", "-1", "-id3v2_version", "0", "-write_xing", "0", str(bare)],
        check=True,
    )  # fmt: skip
    assert not bare.read_bytes().startswith(b"ID3")
    write_moods(bare, MOODS)
    assert bare.read_bytes()[:4] == b"ID3\x04"
    assert read_moods(bare) == MOODS


# What other programs see


@requires("kid3-cli")
def test_kid3_shows_the_moods(song: Path, fmt: str) -> None:
    write_moods(song, MOODS)
    assert tuple(kid3_moods(song)) == KID3_SHOWS[fmt]


@requires("exiftool")
@pytest.mark.parametrize("fmt", sorted(EXIFTOOL_SHOWS), indirect=True)
def test_exiftool_shows_every_mood(song: Path, fmt: str) -> None:
    write_moods(song, MOODS)
    assert tuple(exiftool_moods(song)) == EXIFTOOL_SHOWS[fmt]


@requires("wvunpack")
@pytest.mark.parametrize("fmt", ["wv"], indirect=True)
def test_wvunpack_shows_every_wavpack_mood(song: Path) -> None:
    write_moods(song, MOODS)
    assert wvunpack_moods(song) == MOODS


@requires("exiftool")
@pytest.mark.parametrize("fmt", ["ape"], indirect=True)
def test_exiftool_keeps_every_monkeys_audio_mood_nul_separated(song: Path) -> None:
    write_moods(song, MOODS)
    assert exiftool_raw_moods(song) == MOODS


@pytest.mark.parametrize("fmt", sorted(FFPROBE_SHOWS), indirect=True)
def test_ffprobe_shows_the_moods(song: Path, fmt: str) -> None:
    write_moods(song, MOODS)
    key, value = FFPROBE_SHOWS[fmt]
    assert probed_tags(song)[key] == value


# Nothing else changes


def test_title_artist_album_survive(song: Path) -> None:
    title = probed_tags(song)["title"]
    write_moods(song, MOODS)
    tags = probed_tags(song)
    assert (tags["title"], tags["artist"], tags["album"]) == (title, ARTIST, ALBUM)


def test_all_other_tags_survive(song: Path) -> None:
    before = probed_tags(song)
    write_moods(song, MOODS)
    write_moods(song, [])
    assert probed_tags(song) == before


@pytest.mark.parametrize("fmt", COVER_ART_FORMATS, indirect=True)
def test_cover_art_survives(song: Path) -> None:
    before = cover_art_sha(song)
    write_moods(song, MOODS)
    assert cover_art_sha(song) == before


def test_decoded_audio_is_unchanged(song: Path) -> None:
    before = decoded_pcm_sha(song)
    write_moods(song, MOODS)
    assert decoded_pcm_sha(song) == before


def test_permission_bits_are_kept(song: Path) -> None:
    song.chmod(0o640)
    write_moods(song, MOODS)
    assert stat.S_IMODE(song.stat().st_mode) == 0o640


def test_no_temporary_file_is_left(song: Path) -> None:
    write_moods(song, MOODS)
    assert temp_files(song.parent) == []


def test_symlink_is_kept_and_its_target_written(song: Path, tmp_path: Path) -> None:
    link = tmp_path / ("link" + song.suffix)
    link.symlink_to(song)
    write_moods(link, MOODS)
    assert link.is_symlink()
    assert read_moods(song) == MOODS


def test_tags_go_into_a_hidden_copy_next_to_the_original(
    song: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace
    renamed = []

    def recording_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        renamed.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    write_moods(song, MOODS)
    [(copy, target)] = renamed
    assert target == song
    assert copy.parent == song.parent
    assert copy.name.startswith(f".{song.name}{TEMP_MARKER}")


@pytest.mark.parametrize("fmt", ["flac"], indirect=True)
def test_file_with_a_very_long_name_can_be_written(song: Path) -> None:
    long_name = song.with_name("x" * 240 + ".flac")
    song.rename(long_name)
    write_moods(long_name, MOODS)
    assert read_moods(long_name) == MOODS


# Undo


def test_undo_of_first_write_removes_the_field(song: Path) -> None:
    previous = write_moods(song, MOODS)
    write_moods(song, previous)
    assert read_moods(song) == []


@requires("kid3-cli")
def test_undo_of_first_write_leaves_no_mood_field_for_players(song: Path, fmt: str) -> None:
    write_moods(song, write_moods(song, MOODS))
    shown = wvunpack_moods(song) if fmt == "wv" else kid3_moods(song)
    assert shown == []


def test_undo_restores_previous_moods(song: Path) -> None:
    write_moods(song, ["calm", "dark", "space"])
    previous = write_moods(song, MOODS)
    assert write_moods(song, previous) == MOODS
    assert read_moods(song) == ["calm", "dark", "space"]


# Files that cannot be written: TagWriteError, original untouched, no temp file left


def assert_refused(path: Path, reason: str | None = None) -> TagWriteError:
    before = sha(path)
    with pytest.raises(TagWriteError, match=reason) as caught:
        write_moods(path, MOODS)
    assert sha(path) == before
    assert temp_files(path.parent) == []
    assert caught.value.path == path
    assert str(caught.value) == f"{path}: {caught.value.reason}"
    return caught.value


def test_zero_byte_file_is_refused(song: Path) -> None:
    song.write_bytes(b"")
    assert_refused(song)


def test_file_cut_inside_its_header_is_refused(song: Path) -> None:
    song.write_bytes(song.read_bytes()[:64])
    assert_refused(song)


@pytest.mark.parametrize("fmt", ["wav", "aiff", "mpc"], indirect=True)
def test_file_cut_in_its_audio_is_refused_where_the_container_declares_sizes(song: Path) -> None:
    song.write_bytes(song.read_bytes()[: song.stat().st_size // 2])
    assert_refused(song, "truncated")


def test_text_file_named_mp3_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp3"
    fake.write_text("Not music, just a shopping list.\n" * 50)
    assert_refused(fake)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TagWriteError, match="No such file"):
        write_moods(tmp_path / "gone.flac", MOODS)


def test_reading_non_audio_raises_tag_write_error(tmp_path: Path) -> None:
    fake = tmp_path / "cover.flac"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(500))
    with pytest.raises(TagWriteError):
        read_moods(fake)


def test_read_only_file_is_refused(song: Path) -> None:
    song.chmod(0o444)
    assert_refused(song, "read-only")


def test_file_in_read_only_folder_is_refused(song: Path) -> None:
    folder = song.parent
    folder.chmod(0o555)
    try:
        assert_refused(song, "read-only")
    finally:
        folder.chmod(0o755)


def test_failure_at_the_final_rename_leaves_the_original(
    song: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    assert_refused(song, "No space left on device")


def test_failure_while_saving_tags_leaves_the_original(
    song: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def fsync_then_fail(fd: int) -> None:
        real_fsync(fd)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync_then_fail)
    assert_refused(song, "Input/output error")


def test_file_changed_by_another_program_during_the_write_is_not_overwritten(
    song: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def fsync_while_another_program_writes(fd: int) -> None:
        real_fsync(fd)
        with song.open("ab") as other_program:
            other_program.write(b"\0")

    monkeypatch.setattr(os, "fsync", fsync_while_another_program_writes)
    with pytest.raises(TagWriteError, match="changed on disk"):
        write_moods(song, MOODS)
    monkeypatch.undo()
    assert read_moods(song) == []
    assert temp_files(song.parent) == []


def test_interrupt_at_the_final_rename_leaves_the_original(
    song: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted_replace)
    before = sha(song)
    with pytest.raises(KeyboardInterrupt):
        write_moods(song, MOODS)
    assert sha(song) == before
    assert temp_files(song.parent) == []


def test_non_string_moods_are_rejected_before_touching_the_file(song: Path) -> None:
    before = sha(song)
    with pytest.raises(TypeError):
        write_moods(song, ["happy", None])
    assert sha(song) == before


@pytest.mark.parametrize("fmt", ["mp3", "wv"], indirect=True)
def test_nul_in_a_mood_is_refused_where_nul_separates_values(song: Path) -> None:
    before = sha(song)
    with pytest.raises(TagWriteError, match="NUL"):
        write_moods(song, ["happy\0epic"])
    assert sha(song) == before


# Supported containers


def test_supported_extensions_cover_the_library(real_music_library: dict[str, Path]) -> None:
    assert supported_extensions() == SUPPORTED_EXTENSIONS
    assert {path.suffix for path in real_music_library.values()} <= SUPPORTED_EXTENSIONS
