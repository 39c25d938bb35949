"""Where each tag format keeps the mood: one small reader/writer per convention.

Each convention reads the mood values from a loaded mutagen file, puts a new list into it,
names the tag the file holds them in, and saves the file mutagen loaded. Everything else in
the tag is left as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mutagen import FileType
from mutagen.apev2 import TEXT
from mutagen.id3 import TMOO, Encoding
from mutagen.mp4 import AtomDataType, MP4FreeForm


class MoodConvention(Protocol):
    """How one tag format stores the mood field."""

    name: str

    def read(self, audio: FileType) -> list[str]: ...

    def cannot_hold(self, moods: Sequence[str]) -> str | None:
        """Why the format cannot hold exactly ``moods``, or None when it can."""

    def put(self, audio: FileType, moods: Sequence[str]) -> None:
        """Make the loaded tag hold exactly ``moods`` (adding a tag if the file has none)."""

    def tag(self, audio: FileType) -> str:
        """The tag the file holds its moods in ("ID3v2.3", "APEv2", ...), "" when it has none."""

    def save(self, audio: FileType) -> None: ...


class _Convention:
    """What most conventions share: a tag made when missing, saved as mutagen saves it."""

    name = ""
    tag_name = ""

    def cannot_hold(self, moods: Sequence[str]) -> str | None:
        return None

    def tag(self, audio: FileType) -> str:
        return "" if audio.tags is None else self.tag_name

    def save(self, audio: FileType) -> None:
        audio.save()


class ID3Moods(_Convention):
    """ID3v2 ``TMOO``: one text frame, several values null-separated.

    A tag is saved in the version it was read in (v2.3 stays v2.3, a v2.3 tag keeping its
    v2.3 frames: load it with ``translate=False``); a new tag, or a v2.2 one (mutagen writes
    only v2.3 and v2.4), is saved as v2.4.
    """

    name = "ID3v2 TMOO"

    def read(self, audio: FileType) -> list[str]:
        if audio.tags is None:
            return []
        return [str(value) for frame in audio.tags.getall("TMOO") for value in frame.text]

    def cannot_hold(self, moods: Sequence[str]) -> str | None:
        if list(moods) == [""]:  # mutagen leaves out a text frame with no text
            return f"{self.name} cannot hold one empty value"
        return _nul_in(moods, f"NUL, the {self.name} separator")

    def put(self, audio: FileType, moods: Sequence[str]) -> None:
        if audio.tags is None:
            audio.add_tags()
        audio.tags.delall("TMOO")
        if moods:
            audio.tags.add(TMOO(encoding=Encoding.UTF8, text=list(moods)))

    def tag(self, audio: FileType) -> str:
        if audio.tags is None:
            return ""
        major, minor = audio.tags.version[:2]
        return f"ID3v{major}.{minor}" if major == 2 else ""

    def save(self, audio: FileType) -> None:
        if audio.tags.version[:2] == (2, 3):
            # NUL between values, as in v2.4, rather than "/": the values read back as a list.
            audio.save(v2_version=3, v23_sep=None)
            return
        if audio.tags.version < (2, 3, 0):
            audio.tags.update_to_v24()
        audio.save(v2_version=4)


class VorbisMoods(_Convention):
    """Vorbis comment ``MOOD``: one field per value (field names are case-insensitive)."""

    name = "Vorbis comment MOOD"
    tag_name = "Vorbis comment"
    key = "MOOD"

    def read(self, audio: FileType) -> list[str]:
        if audio.tags is None:
            return []
        return list(audio.tags.get(self.key, []))

    def put(self, audio: FileType, moods: Sequence[str]) -> None:
        if audio.tags is None:
            audio.add_tags()
        if moods:
            audio.tags[self.key] = list(moods)
        elif self.key in audio.tags:
            del audio.tags[self.key]


class MP4Moods(_Convention):
    """iTunes freeform atom ``----:com.apple.iTunes:MOOD``: one UTF-8 data atom per value."""

    name = "MP4 ----:com.apple.iTunes:MOOD"
    tag_name = "MP4 ilst"
    key = "----:com.apple.iTunes:MOOD"

    def read(self, audio: FileType) -> list[str]:
        if audio.tags is None:
            return []
        return [bytes(value).decode("utf-8") for value in audio.tags.get(self.key, [])]

    def put(self, audio: FileType, moods: Sequence[str]) -> None:
        if audio.tags is None:
            audio.add_tags()
        if moods:
            audio.tags[self.key] = [
                MP4FreeForm(mood.encode("utf-8"), dataformat=AtomDataType.UTF8) for mood in moods
            ]
        else:
            audio.tags.pop(self.key, None)


class ASFMoods(_Convention):
    """ASF (WMA) ``WM/Mood``: one attribute per value."""

    name = "ASF WM/Mood"
    tag_name = "ASF"
    key = "WM/Mood"

    def read(self, audio: FileType) -> list[str]:
        return [str(value) for value in audio.tags.get(self.key, [])]

    def cannot_hold(self, moods: Sequence[str]) -> str | None:
        return _nul_in(moods, f"NUL, which ends an {self.name} value")

    def put(self, audio: FileType, moods: Sequence[str]) -> None:
        if moods:
            audio.tags[self.key] = list(moods)
        elif self.key in audio.tags:
            del audio.tags[self.key]


class APEv2Moods(_Convention):
    """APEv2 ``Mood``: one text item, several values null-separated (keys case-insensitive)."""

    name = "APEv2 Mood"
    tag_name = "APEv2"
    key = "Mood"

    def read(self, audio: FileType) -> list[str]:
        if audio.tags is None or self.key not in audio.tags:
            return []
        value = audio.tags[self.key]
        if value.kind != TEXT:
            raise ValueError(f"the APEv2 {self.key} item holds binary data, not text")
        return list(value)

    def cannot_hold(self, moods: Sequence[str]) -> str | None:
        return _nul_in(moods, f"NUL, the {self.name} separator")

    def put(self, audio: FileType, moods: Sequence[str]) -> None:
        if audio.tags is None:
            audio.add_tags()
        if moods:
            audio.tags[self.key] = list(moods)
        elif self.key in audio.tags:
            del audio.tags[self.key]


def _nul_in(moods: Sequence[str], what: str) -> str | None:
    return f"a mood contains {what}" if any("\0" in mood for mood in moods) else None
