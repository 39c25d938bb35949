"""Playlists from the catalog: one M3U8 file per tag, for any player to open.

A track is in a tag's playlist when the tag is one a write gives it (``journal.write_plan``:
the pack's decisions with the user's accepts, rejects and added tags). ``min_score`` keeps
only the model's tags scoring at least that much; the tags the user accepted or added always
count. Tracks are listed by score, highest first (user-added tags without a score last, by
path), as ``#EXTINF`` entries with the duration and "artist - title", and paths relative to
the playlist's folder, in UTF-8 (M3U8).

Each playlist starts ``#EXTM3U`` then ``#PLAYLIST:moodlib: TAG``; that second line marks the
files moodlib owns, so a tag that no longer has tracks loses its old playlist and nothing
else in the folder is touched.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from moodlib import config, vocabulary
from moodlib.library.catalog import Catalog, Track
from moodlib.metadata.journal import write_plan
from moodlib.packs import Pack

SUFFIX = ".m3u8"
MARKER = "#PLAYLIST:moodlib: "
_UNSAFE_IN_NAMES = re.compile(r'[\x00-\x1f<>:"/\\|?*]')


@dataclass(frozen=True)
class Entry:
    """One track in a tag's playlist."""

    track: Track
    score: float | None  # the pack's score for the tag; None for a tag the user added


@dataclass(frozen=True)
class Playlist:
    """A playlist file written (or, with ``tracks == 0``, an old one removed)."""

    tag: str
    path: Path
    tracks: int


def tag_entries(
    catalog: Catalog, pack: Pack, *, min_score: float | None = None
) -> dict[str, list[Entry]]:
    """Tag -> its tracks, best score first (see the module docstring); the 56 tags in their
    official order (``vocabulary.TAGS``), then the user's own tags alphabetically."""
    tracks = {track.path: track for track in catalog.tracks()}
    entries: dict[str, list[Entry]] = {}
    for path, tags in write_plan(catalog, pack, tracks.values(), config.max_tags()):
        track = tracks[path]
        scores = catalog.prediction(track.id, pack.name)
        decisions = catalog.decisions(track.id)
        for tag in tags:
            index = vocabulary.TAG_INDEX.get(tag)
            score = None if index is None or scores is None else float(scores[index])
            if score is not None and math.isnan(score):
                score = None
            by_user = decisions.get(tag) == "accept"
            if min_score is not None and not by_user and (score is None or score < min_score):
                continue
            entries.setdefault(tag, []).append(Entry(track, score))
    for listed in entries.values():
        listed.sort(key=lambda e: (e.score is None, -(e.score or 0.0), e.track.path))
    order = {tag: i for i, tag in enumerate(vocabulary.TAGS)}
    return dict(
        sorted(entries.items(), key=lambda kv: (kv[0] not in order, order.get(kv[0], 0), kv[0]))
    )


def write_playlists(
    catalog: Catalog, pack: Pack, folder: str | os.PathLike[str], *, min_score: float | None = None
) -> list[Playlist]:
    """Write ``folder/TAG.m3u8`` for every tag with tracks; remove moodlib's playlists of
    tags that have none now. Each file is replaced atomically."""
    folder = Path(folder).expanduser().absolute()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for tag, entries in tag_entries(catalog, pack, min_score=min_score).items():
        path = folder / (file_stem(tag) + SUFFIX)
        _replace(path, playlist_text(tag, entries, folder))
        written.append(Playlist(tag, path, len(entries)))
    kept = {playlist.path for playlist in written}
    removed = [
        Playlist(tag, path, 0)
        for path in sorted(folder.glob("*" + SUFFIX))
        if path not in kept and (tag := _owned_tag(path)) is not None
    ]
    for playlist in removed:
        playlist.path.unlink()
    return written + removed


def playlist_text(tag: str, entries: Sequence[Entry], folder: Path) -> str:
    """The M3U8 text of ``tag``'s playlist saved in ``folder``."""
    lines = ["#EXTM3U", MARKER + tag]
    for entry in entries:
        track = entry.track
        seconds = round(track.duration) if track.duration else -1
        title = track.title or Path(track.path).stem
        shown = f"{track.artist} - {title}" if track.artist else title
        lines += [f"#EXTINF:{seconds},{_one_line(shown)}", _relative(track.path, folder)]
    return "\n".join(lines) + "\n"


def file_stem(tag: str) -> str:
    """``tag`` as a file name: characters that some file systems refuse become ``_``."""
    return _UNSAFE_IN_NAMES.sub("_", tag).strip(" .") or "_"


def _relative(path: str, folder: Path) -> str:
    try:
        return os.path.relpath(path, folder)
    except ValueError:  # another drive (Windows): only an absolute path reaches it
        return path


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _owned_tag(path: Path) -> str | None:
    """The tag of a playlist moodlib wrote (its marker line), else None."""
    try:
        with path.open(encoding="utf-8") as file:
            head = [file.readline().rstrip("\n") for _ in range(2)]
    except (OSError, UnicodeDecodeError):
        return None
    if head[0] == "#EXTM3U" and head[1].startswith(MARKER):
        return head[1].removeprefix(MARKER)
    return None


def _replace(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile(
        "w",
        encoding="utf-8",
        dir=path.parent,
        prefix=f".{path.name}.",
        suffix=".tmp",
        delete=False,
    ) as temporary:
        temporary.write(text)
    os.replace(temporary.name, path)
