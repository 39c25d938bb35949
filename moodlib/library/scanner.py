"""Finding audio files under folders and reading what a library view shows about them."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import mutagen

from moodlib.audio.decode import AUDIO_EXTENSIONS

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
    if audio is None or audio.tags is None:
        return result
    for key in result:
        try:
            values = audio.tags.get(key)
        except Exception:
            values = None
        if values:
            result[key] = str(values[0]) if isinstance(values, list) else str(values)
    return result
