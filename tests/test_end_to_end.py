"""The headless pipeline end to end: real music in every format, the shipped official
baseline, ``moodlib scan --write``, the files checked with the tools players use, then
``moodlib undo``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import media
import pytest

from moodlib import vocabulary
from moodlib.cli import main
from moodlib.metadata import read_moods

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("kid3-cli") is None, reason="kid3-cli is not installed"),
    pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed"),
]

# How each format shows a multi-valued mood to kid3-cli (TagLib): ID3 and MP4 keep the values
# in one frame joined by "|"; TagLib shows only the first value of an APEv2 item (wvunpack and
# exiftool show them all for WavPack and Monkey's Audio), and ASF lists the values stored in
# the Metadata Library before the first one.
KID3_JOINED = {"mp3", "wav", "aiff", "m4a", "alac"}
KID3_FIRST_ONLY = {"mpc"}


def kid3_values(path: Path, fmt: str) -> list[str]:
    """Every mood value as a tag editor shows it (Musepack: the first, as TagLib shows it)."""
    if fmt == "wv":
        return media.wvunpack_moods(path)
    if fmt == "ape":
        return media.exiftool_raw_moods(path)
    shown = media.kid3_moods(path)
    if fmt in KID3_JOINED:
        return shown[0].split("|") if shown else []
    if fmt == "wma" and shown:
        return shown[-1:] + shown[:-1]
    return shown


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> dict[str, Path]:
    reason = media.missing_tools()
    if reason:
        pytest.skip(reason)
    # 35 s excerpts: the baseline looks at the central 29.1 s.
    return media.make_library(tmp_path_factory.mktemp("library"), seconds=35.0, offset=45.0)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh home: nothing installed, the shipped default pack."""
    monkeypatch.setenv("MOODLIB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_scan_write_and_undo_on_every_format(library, home, tmp_path, capsys) -> None:
    music = media.copy_library(library, tmp_path / "music")
    pcm_before = {fmt: media.decoded_pcm_sha(path) for fmt, path in music.items()}
    report = tmp_path / "report.json"

    assert main(["scan", str(tmp_path / "music"), "--write", "--json", str(report)]) == 0

    tracks = {Path(t["path"]).name: t for t in json.loads(report.read_text())["tracks"]}
    assert len(tracks) == len(music)
    for fmt, path in music.items():
        entry = tracks[path.name]
        assert entry["error"] is None
        assert len(entry["scores"]) == 56
        expected = entry["tags"]
        assert 1 <= len(expected) <= 3, fmt
        assert read_moods(path) == expected, fmt
        assert kid3_values(path, fmt) == (expected[:1] if fmt in KID3_FIRST_ONLY else expected)
        if fmt != "wav":  # ffmpeg ignores a WAV's ID3 chunk beside LIST INFO
            probed = media.probed_tags(path)
            first = next((v for k, v in probed.items() if k in ("mood", "tmoo", "wm/mood")), None)
            assert (first or "").split(";")[0] == (expected[0] if expected else ""), fmt
        assert media.probed_tags(path).get("album") == media.ALBUM, fmt
        assert media.decoded_pcm_sha(path) == pcm_before[fmt], f"{fmt} audio changed"

    capsys.readouterr()
    assert main(["undo"]) == 0
    for fmt, path in music.items():
        assert read_moods(path) == [], fmt
        assert kid3_values(path, fmt) == [], fmt
        assert media.decoded_pcm_sha(path) == pcm_before[fmt]


def test_a_second_scan_skips_unchanged_files(library, home, tmp_path, capsys) -> None:
    music = media.copy_library({k: library[k] for k in ("flac", "mp3")}, tmp_path / "music")
    assert main(["scan", str(tmp_path / "music"), "--write"]) == 0
    capsys.readouterr()
    assert main(["scan", str(tmp_path / "music"), "--write"]) == 0
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert summary.startswith(f"0 tagged, {len(music)} unchanged, 0 failed; 0 files written")


def test_bad_files_are_reported_and_the_scan_goes_on(library, home, tmp_path, capsys) -> None:
    music = media.copy_library({"flac": library["flac"]}, tmp_path / "music")
    folder = tmp_path / "music"
    (folder / "empty.mp3").write_bytes(b"")
    (folder / "notes.ogg").write_text("not audio at all\n")
    data = music["flac"].read_bytes()
    (folder / "truncated.flac").write_bytes(data[: len(data) // 50])
    report = tmp_path / "report.json"

    assert main(["scan", str(folder), "--write", "--json", str(report)]) == 1

    err = capsys.readouterr().err
    tracks = {Path(t["path"]).name: t for t in json.loads(report.read_text())["tracks"]}
    for bad in ("empty.mp3", "notes.ogg"):
        assert tracks[bad]["error"], bad
        assert tracks[bad]["tags"] == [] and tracks[bad]["reason"] == "not decodable"
        assert f"error: {folder / bad}:" in err
    undecodable = json.loads(report.read_text())["files"]["no_tag"]["not decodable"]
    assert undecodable >= 2 and f"no tag: {undecodable} not decodable" in err
    assert tracks[music["flac"].name]["error"] is None
    assert read_moods(music["flac"]) == tracks[music["flac"].name]["tags"]


def test_max_tags_sets_how_many_tags_a_file_gets(library, home, tmp_path, capsys) -> None:
    music = media.copy_library({k: library[k] for k in ("flac", "ogg")}, tmp_path / "music")
    assert main(["scan", str(tmp_path / "music"), "--write", "--max-tags", "1"]) == 0
    assert [len(read_moods(path)) for path in music.values()] == [1, 1]
    first = {fmt: read_moods(path)[0] for fmt, path in music.items()}

    assert main(["write", "--max-tags", "all"]) == 0
    capsys.readouterr()
    for fmt, path in music.items():
        assert main(["show", str(path), "--json", "--max-tags", "all"]) == 0
        shown = json.loads(capsys.readouterr().out)
        above = [t for t, score in shown["scores"].items() if score >= shown["thresholds"][t]]
        assert read_moods(path) == shown["tags"], fmt
        assert sorted(shown["tags"]) == sorted(above) or shown["reason"], fmt
        assert read_moods(path)[0] == first[fmt], "the best tag comes first"
    with pytest.raises(SystemExit) as exit_info:
        main(["write", str(tmp_path / "music"), "--max-tags", "0"])
    assert exit_info.value.code == 2


def test_usage_errors_exit_2(home, tmp_path) -> None:
    assert main(["scan", str(tmp_path), "--pack", "no-such-pack"]) == 2
    assert main(["show", str(tmp_path / "never-scanned.mp3")]) == 2
    assert main(["scan"]) == 2  # no folder named, and the library has none yet
    assert main(["playlists", str(tmp_path), "--min-score", "2"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["scan", "--device", "tpu"])
    assert exit_info.value.code == 2


def test_a_fresh_install_tags_every_file_of_a_mixed_library(
    library, home, tmp_path, capsys
) -> None:
    assert main(["models", "list"]) == 0
    assert capsys.readouterr().out.split()[:5] == ["*", "mtg-baseline", "1", "shipped", "56/56"]
    music = media.copy_library(library, tmp_path / "music")
    short = tmp_path / "music" / "seven seconds.ogg"  # shorter than the 29.1-s segment
    media.tool_output("ffmpeg", "-v", "error", "-ss", "100", "-t", "7", "-i",
                      media.source_tracks()[-1], "-c:a", "libvorbis", short)  # fmt: skip
    music["short"] = short

    assert main(["scan", str(tmp_path / "music"), "--write"]) == 0  # the README's command

    for name, path in music.items():
        tags = read_moods(path)
        assert 1 <= len(tags) <= 3 and set(tags) <= set(vocabulary.TAGS), (name, tags)
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"of the {len(music)} read, {len(music)} get tags (at most 3)" in summary
    assert "no tag:" not in summary


METAL_SONG = Path("/usr/share/games/fretsonfire/data/songs/muldjord/armygeddon/song.ogg")
QUIET_PIECE = media.SOURCE_MUSIC_DIR / "lose" / "Chimes They Fade.ogg"


@pytest.mark.skipif(
    not (METAL_SONG.is_file() and QUIET_PIECE.is_file()),
    reason="needs Debian's singularity-music and fretsonfire-songs-muldjord",
)
def test_a_quiet_piece_and_a_metal_song_get_different_tags(home, tmp_path) -> None:
    folder = tmp_path / "music"
    folder.mkdir()
    quiet, metal = folder / "quiet.mp3", folder / "metal.mp3"
    for source, offset, dest in ((QUIET_PIECE, 0, quiet), (METAL_SONG, 45, metal)):
        media.tool_output("ffmpeg", "-v", "error", "-ss", str(offset), "-t", "30", "-i", source,
                          "-c:a", "libmp3lame", "-b:a", "160k", dest)  # fmt: skip
    report = tmp_path / "report.json"

    assert main(["scan", str(folder), "--write", "--json", str(report)]) == 0

    assert json.loads(report.read_text())["pack"] == "mtg-baseline"
    quiet_tags, metal_tags = read_moods(quiet), read_moods(metal)
    assert quiet_tags and metal_tags
    assert set(quiet_tags) <= {"calm", "relaxing", "meditative", "dream", "soft", "slow", "sad"}
    assert not set(quiet_tags) & set(metal_tags)
    for path, tags in ((quiet, quiet_tags), (metal, metal_tags)):
        assert media.probed_tags(path).get("tmoo") == tags[0], "ffprobe shows the first value"
