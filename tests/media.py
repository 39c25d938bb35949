"""Test libraries built from real music.

Excerpts of the Singularity game soundtrack (Debian package ``singularity-music``) are encoded
with ffmpeg into every container moodlib writes tags to, each file carrying a title, artist
and album set by ffmpeg (and cover art where ffmpeg can embed it), so tests can check that
those survive. FFmpeg encodes neither Monkey's Audio nor Musepack: those are encoded from a
WAV by Debian's ``jmac`` (libjmac-java) and ``mpcenc`` (musepack-tools), and get their title,
artist and album as APEv2 items. ``decoded_pcm_sha`` fingerprints the decoded samples for
audio-identity checks.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mutagen
from mutagen.apev2 import APEv2

SOURCE_MUSIC_DIR = Path("/usr/share/games/singularity/music")
ARTIST = "Singularity"
ALBUM = "moodlib test library"


@dataclass(frozen=True)
class Encoding:
    """How one library file is encoded: file suffix, ffmpeg codec arguments, cover art; or,
    for codecs ffmpeg cannot encode, the command that encodes a WAV (``command IN.wav OUT``)."""

    suffix: str
    codec_args: tuple[str, ...] = ()
    cover_art: bool = False
    wav_encoder: tuple[str, ...] = ()


ENCODINGS: dict[str, Encoding] = {
    "mp3": Encoding(".mp3", ("-c:a", "libmp3lame", "-b:a", "128k"), cover_art=True),
    "flac": Encoding(".flac", ("-c:a", "flac"), cover_art=True),
    "ogg": Encoding(".ogg", ("-c:a", "libvorbis", "-q:a", "3")),
    "opus": Encoding(".opus", ("-c:a", "libopus", "-b:a", "96k")),
    "m4a": Encoding(".m4a", ("-c:a", "aac", "-b:a", "128k"), cover_art=True),
    "alac": Encoding(".alac.m4a", ("-c:a", "alac"), cover_art=True),
    "wav": Encoding(".wav", ("-c:a", "pcm_s16le")),
    # ffmpeg's AIFF muxer keeps only the title in its own chunks; an ID3 chunk holds them all.
    "aiff": Encoding(".aiff", ("-c:a", "pcm_s16be", "-write_id3v2", "1")),
    "wma": Encoding(".wma", ("-c:a", "wmav2", "-b:a", "128k")),
    "wv": Encoding(".wv", ("-c:a", "wavpack")),
    "ape": Encoding(".ape", wav_encoder=("jmac", "c2")),
    "mpc": Encoding(".mpc", wav_encoder=("mpcenc", "--silent", "--overwrite")),
}

WAV_ENCODERS = {"jmac": "libjmac-java", "mpcenc": "musepack-tools"}  # command -> Debian package

FORMATS: tuple[str, ...] = tuple(ENCODINGS)


def missing_tools() -> str | None:
    """Why a real-music library cannot be built here, or None when it can."""
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    for tool, package in WAV_ENCODERS.items():
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt install {package})"
    if not source_tracks():
        return f"no Singularity music in {SOURCE_MUSIC_DIR} (apt install singularity-music)"
    return None


def source_tracks() -> list[Path]:
    """The soundtrack's OGG files, sorted by name ([] when the package is not installed)."""
    return sorted(SOURCE_MUSIC_DIR.glob("*.ogg"))


def make_library(
    dest_dir: Path,
    seconds: float = 35.0,
    offset: float = 60.0,
    formats: Iterable[str] = FORMATS,
) -> dict[str, Path]:
    """Encode an excerpt of a different soundtrack track into each of ``formats``.

    Returns format name (a key of ``ENCODINGS``) -> file path. Each file is tagged with the
    source track's name as title, ``ARTIST`` and ``ALBUM``.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    tracks = source_tracks()
    if not tracks:
        raise FileNotFoundError(f"no .ogg files in {SOURCE_MUSIC_DIR}")
    cover = _make_cover(dest_dir / ".cover.png")
    jobs = {}
    for i, fmt in enumerate(formats):
        source = tracks[i % len(tracks)]
        jobs[fmt] = (source, dest_dir / (source.stem + ENCODINGS[fmt].suffix))
    with ThreadPoolExecutor() as pool:
        encodes = [
            pool.submit(
                _encode, source, target, ENCODINGS[fmt], seconds=seconds, offset=offset,
                cover=cover,
            )
            for fmt, (source, target) in jobs.items()
        ]  # fmt: skip
    cover.unlink()
    for encode in encodes:
        encode.result()
    return {fmt: target for fmt, (_, target) in jobs.items()}


def copy_library(library: Mapping[str, Path], dest_dir: Path) -> dict[str, Path]:
    """Copy every file of ``library`` into ``dest_dir`` (names kept, default permissions)."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    return {fmt: Path(shutil.copyfile(path, dest_dir / path.name)) for fmt, path in library.items()}


# A simulated user of "retrain on my corrections": the same four excerpts in several albums
# (the fine-tuner holds out whole albums), in formats mutagen's easy interface tags, and a
# consistent taste by excerpt: each tag accepted on these excerpts, rejected on the others.
ALBUM_SONGS = ("mp3", "flac", "ogg", "m4a")
TASTE = {"dark": {"mp3", "flac"}, "happy": {"mp3", "ogg"}}


def copy_albums(library: Mapping[str, Path], dest_dir: Path, albums: int) -> None:
    """``albums`` folders ``album K`` under ``dest_dir``, each with the ``ALBUM_SONGS`` of
    ``library`` (names kept) tagged with the album "Album K"."""
    for k in range(albums):
        folder = Path(dest_dir) / f"album {k}"
        copies = copy_library({song: library[song] for song in ALBUM_SONGS}, folder)
        for copy in copies.values():
            tags = mutagen.File(copy, easy=True)
            tags["album"] = f"Album {k}"
            tags.save()


def song_of(path: str | Path) -> str:
    """Which of the ``ALBUM_SONGS`` a copy made by ``copy_albums`` is (its extension)."""
    return Path(path).suffix[1:]


def review_by_taste(catalog, tracks) -> None:
    """Accept or reject each ``TASTE`` tag on every track (``Catalog.set_decision``)."""
    for track in tracks:
        for tag, songs in TASTE.items():
            catalog.set_decision(
                track.id, tag, "accept" if song_of(track.path) in songs else "reject"
            )


def decoded_pcm_sha(path: Path) -> str:
    """SHA-256 of the decoded audio samples (float32, native channel layout)."""
    pcm = _run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a", "-f", "f32le", "-"])
    return hashlib.sha256(pcm).hexdigest()


def probed_tags(path: Path) -> dict[str, str]:
    """Tags as ffprobe reports them, keys lowercased: the container's, then the audio stream's.

    Ogg files carry their comments on the stream, other containers on the format.
    """
    out = _run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
         "format_tags:stream_tags", "-of", "default=noprint_wrappers=1", str(path)]
    ).decode()  # fmt: skip
    tags = {}
    for line in out.splitlines():
        key, _, value = line.removeprefix("TAG:").partition("=")
        tags[key.lower()] = value
    return tags


def _encode(
    source: Path, target: Path, encoding: Encoding, *, seconds: float, offset: float, cover: Path
) -> None:
    inputs = ["-ss", str(offset), "-t", str(seconds), "-i", str(source)]
    tags = {"title": source.stem, "artist": ARTIST, "album": ALBUM}
    if encoding.wav_encoder:
        wav = target.with_name(f".{target.name}.wav")
        _run(["ffmpeg", "-v", "error", "-y", *inputs, "-map", "0:a", "-c:a", "pcm_s16le", str(wav)])
        _run([*encoding.wav_encoder, str(wav), str(target)])
        wav.unlink()
        ape = APEv2()
        for key, value in tags.items():
            ape[key.capitalize()] = value
        ape.save(target)
        return
    maps = ["-map", "0:a"]
    if encoding.cover_art:
        inputs += ["-i", str(cover)]
        maps += ["-map", "1:v", "-c:v", "copy", "-disposition:v:0", "attached_pic"]
    metadata = []
    for key, value in tags.items():
        metadata += ["-metadata", f"{key}={value}"]
    _run(
        ["ffmpeg", "-v", "error", "-y", *inputs, *maps, "-map_metadata", "-1", *metadata,
         *encoding.codec_args, str(target)]
    )  # fmt: skip


def _make_cover(path: Path) -> Path:
    _run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=0x336699:s=64x64",
         "-frames:v", "1", str(path)]
    )  # fmt: skip
    return path


def _run(command: list[str]) -> bytes:
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout


def tool_output(*command: str | Path) -> str:
    return subprocess.run(
        [str(part) for part in command], capture_output=True, check=True, text=True
    ).stdout


def kid3_moods(path: Path) -> list[str]:
    listing = tool_output("kid3-cli", "-c", "get", path)
    return re.findall(r"^\s+Mood\s+(.*)$", listing, flags=re.MULTILINE)


def exiftool_moods(path: Path) -> list[str]:
    return tool_output("exiftool", "-a", "-s3", "-sep", "|", "-Mood", path).splitlines()


def exiftool_raw_moods(path: Path) -> list[str]:
    """The Mood values as exiftool reads them, split at the NUL of ID3v2/APEv2 (``-b``)."""
    raw = tool_output("exiftool", "-b", "-Mood", path)
    return raw.split("\0") if raw else []


def wvunpack_moods(path: Path) -> list[str]:
    summary = tool_output("wvunpack", "-ss", path)
    match = re.search(r"^Mood:\s+(.*)$", summary, flags=re.MULTILINE)
    return match.group(1).split("\\") if match else []
