"""Finding audio files under folders and reading what a library view shows about them."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import mutagen

from moodlib.formats import AUDIO_EXTENSIONS
from moodlib.library.paths import printable, resolve_path
from moodlib.metadata.atomic import TEMP_MARKER


@dataclass(frozen=True)
class FoundFile:
    """An audio file a walk found, or a link that should have led to one (``error`` says why
    it does not)."""

    path: str  # the real path (for a broken link: the link's own)
    size: int
    mtime_ns: int
    error: str | None = None


def find_audio_files(
    paths: Iterable[str | os.PathLike], *, reached: set[str] | None = None
) -> Iterator[FoundFile]:
    """Every audio file at or below ``paths``, once, by its real path; sorted per folder.

    Links to files and folders are followed; a link that dangles or loops is yielded with an
    ``error`` when it could have been a track (an audio extension, or none: a folder). Hidden
    files and folders and moodlib's own temporary files are skipped, and so is a folder that
    cannot be listed (the caller reports missing top-level paths).

    ``reached`` collects where the walk starts from: the real ``paths`` and the targets of the
    links it follows. A track at or below one of them that the walk did not find is gone.
    """
    seen: set[str] = set()
    reached = set() if reached is None else reached
    for top in map(resolve_path, paths):
        yield from _walk(top, seen, reached)


def reached_paths(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Where a walk of ``paths`` starts from (see ``find_audio_files``); walks them."""
    reached: set[str] = set()
    for _ in find_audio_files(paths, reached=reached):
        pass
    return sorted(reached)


def _walk(top: str, seen: set[str], reached: set[str]) -> Iterator[FoundFile]:
    reached.add(top)
    try:
        top_stat = os.stat(top)
    except OSError:
        return
    if not stat.S_ISDIR(top_stat.st_mode):
        if top not in seen and _is_audio(top):
            seen.add(top)
            yield FoundFile(top, top_stat.st_size, top_stat.st_mtime_ns)
        return
    folders = [top]  # still to list, the next one last
    while folders:
        folder = folders.pop()
        if folder in seen:
            continue
        seen.add(folder)
        subfolders = []
        for entry in _listing(folder):
            if entry.is_symlink():
                yield from _follow(entry, folder, seen, reached, subfolders)
            elif entry.is_dir(follow_symlinks=False):
                subfolders.append(entry.path)
            elif entry.path not in seen and _is_audio(entry.name):
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:  # gone since the listing
                    continue
                if stat.S_ISREG(st.st_mode):
                    seen.add(entry.path)
                    yield FoundFile(entry.path, st.st_size, st.st_mtime_ns)
        folders += reversed(subfolders)


def _follow(
    link: os.DirEntry, folder: str, seen: set[str], reached: set[str], subfolders: list[str]
) -> Iterator[FoundFile]:
    """The file ``link`` leads to, or its target folder added to ``subfolders``."""
    target = os.path.realpath(link.path)
    try:
        st = os.stat(target)
    except OSError as error:
        if _could_be_a_track(link.name):
            yield _broken_link(link.path, _link_problem(link.path, error))
        return
    if stat.S_ISDIR(st.st_mode):
        if folder == target or folder.startswith(target.rstrip(os.sep) + os.sep):
            reason = f"a symbolic link to {printable(target)}, a folder that contains it"
            yield _broken_link(link.path, reason + ": not followed")
            return
        subfolders.append(target)
    elif not (stat.S_ISREG(st.st_mode) and _is_audio(target)):
        return
    reached.add(target)
    if target not in seen and stat.S_ISREG(st.st_mode):
        seen.add(target)
        yield FoundFile(target, st.st_size, st.st_mtime_ns)


def _listing(folder: str) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return sorted((e for e in entries if not e.name.startswith(".")), key=_name)
    except OSError:
        return []


def _name(entry: os.DirEntry) -> str:
    return entry.name


def _is_audio(path: str) -> bool:
    name = os.path.basename(path)
    return os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS and TEMP_MARKER not in name


def _could_be_a_track(name: str) -> bool:
    extension = os.path.splitext(name)[1].lower()
    return extension in AUDIO_EXTENSIONS or not extension


def _link_problem(link: str, error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "a symbolic link that loops (it leads back to itself)"
    if error.errno == errno.ENOENT:
        target = printable(os.path.realpath(link))
        return f"a symbolic link to {target}, which does not exist"
    return f"a symbolic link that cannot be followed: {error.strerror}"


def _broken_link(link: str, reason: str) -> FoundFile:
    try:
        st = os.lstat(link)
    except OSError:  # gone since the listing
        return FoundFile(link, 0, 0, reason)
    return FoundFile(link, st.st_size, st.st_mtime_ns, reason)


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
