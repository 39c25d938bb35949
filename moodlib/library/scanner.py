"""Finding audio files under folders and reading what a library view shows about them."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import mutagen

from moodlib.formats import AUDIO_EXTENSIONS

# Temporary copies the tag writer makes beside a file start with this marker.
_SKIP_MARKERS = (".moodlib-tmp-",)


@dataclass(frozen=True)
class FoundFile:
    path: str
    size: int
    mtime_ns: int


def find_audio_files(paths: Iterable[str | os.PathLike]) -> Iterator[FoundFile]:
    """Every audio file at or below ``paths`` (absolute, sorted per folder, no duplicates).

    Hidden files and folders and moodlib's own temporary files are skipped; a folder that
    cannot be listed is skipped (the caller reports missing top-level paths).
    """
    seen: set[str] = set()
    for root in paths:
        root = Path(root).expanduser().absolute()
        if root.is_file():
            candidates: Iterable[Path] = [root]
        else:
            candidates = _walk(root)
        for path in candidates:
            key = str(path)
            if key in seen or path.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            if any(marker in path.name for marker in _SKIP_MARKERS):
                continue
            seen.add(key)
            try:
                stat = path.stat()
            except OSError:
                continue
            yield FoundFile(key, stat.st_size, stat.st_mtime_ns)


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root, onerror=lambda error: None):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder) / name


def display_tags(path: str | os.PathLike) -> dict[str, str | None]:
    """Title, artist and album as the file states them (None where absent or unreadable)."""
    try:
        audio = mutagen.File(path, easy=True)
    except Exception:  # a file mutagen cannot parse still gets scanned and decoded
        audio = None
    result: dict[str, str | None] = {"title": None, "artist": None, "album": None}
    if str(path).lower().endswith(".wav"):
        result.update(_riff_info(path))
    if audio is None or audio.tags is None:
        return result
    for key in result:
        try:
            values = audio.tags.get(key)
            for raw_keys in (_ID3_FRAMES, _ASF_ATTRIBUTES):
                if values is None and raw_keys[key] in audio.tags:
                    # WAV/AIFF ID3 chunks and ASF come as raw frames and attributes.
                    found = audio.tags[raw_keys[key]]
                    values = getattr(found, "text", found)
        except Exception:
            values = None
        if values:
            first = values[0] if isinstance(values, list) else values
            result[key] = str(getattr(first, "value", first))
    return result


_ID3_FRAMES = {"title": "TIT2", "artist": "TPE1", "album": "TALB"}
_ASF_ATTRIBUTES = {"title": "Title", "artist": "Author", "album": "WM/AlbumTitle"}
_RIFF_INFO = {b"INAM": "title", b"IART": "artist", b"IPRD": "album"}


def _riff_info(path: str | os.PathLike) -> dict[str, str]:
    """Title, artist and album from a WAV file's ``LIST/INFO`` chunk (which mutagen skips)."""
    found: dict[str, str] = {}
    try:
        with open(path, "rb") as handle:
            if handle.read(12)[8:12] != b"WAVE":
                return found
            while header := handle.read(8):
                if len(header) < 8:
                    break
                chunk, size = header[:4], int.from_bytes(header[4:], "little")
                if chunk == b"LIST" and handle.read(4) == b"INFO":
                    data = handle.read(size - 4)
                    offset = 0
                    while offset + 8 <= len(data):
                        key = data[offset : offset + 4]
                        length = int.from_bytes(data[offset + 4 : offset + 8], "little")
                        text = data[offset + 8 : offset + 8 + length].split(b"\0")[0]
                        if key in _RIFF_INFO and text:
                            found[_RIFF_INFO[key]] = text.decode("utf-8", "replace")
                        offset += 8 + length + (length & 1)
                    return found
                handle.seek(size + (size & 1) - (4 if chunk == b"LIST" else 0), os.SEEK_CUR)
    except OSError:
        pass
    return found
