"""Where each tag format keeps the mood: one small reader/writer per convention.

Each convention reads the mood values from a loaded mutagen file and writes a new list into
it (saving the file mutagen loaded). Everything else in the tag is left as it was.
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
    nul_separated: bool  # several values are joined with NUL, so a value cannot contain one

    def read(self, audio: FileType) -> list[str]: ...

    def write(self, audio: FileType, moods: Sequence[str]) -> None: ...


class ID3Moods:
    """ID3v2 ``TMOO``: one text frame, several values null-separated; saved as ID3v2.4."""

    name = "ID3v2 TMOO"
    nul_separated = True

    def read(self, audio: FileType) -> list[str]:
        if audio.tags is None:
            return []
        return [str(value) for frame in audio.tags.getall("TMOO") for value in frame.text]

    def write(self, audio: FileType, moods: Sequence[str]) -> None:
        if audio.tags is None:
            audio.add_tags()
        audio.tags.delall("TMOO")
        if moods:
            audio.tags.add(TMOO(encoding=Encoding.UTF8, text=list(moods)))
        audio.save(v2_version=4)


class VorbisMoods:
    """Vorbis comment ``MOOD``: one field per value (field names are case-insensitive)."""

    name = "Vorbis comment MOOD"
    nul_separated = False
    key = "MOOD"

    def read(self, audio: FileType) -> list[str]:
        if audio.tags is None:
            return []
        return list(audio.tags.get(self.key, []))

    def write(self, audio: FileType, moods: Sequence[str]) -> None:
        if audio.tags is None:
            audio.add_tags()
        if moods:
            audio.tags[self.key] = list(moods)
        elif self.key in audio.tags:
            del audio.tags[self.key]
        audio.save()


class MP4Moods:
    """iTunes freeform atom ``----:com.apple.iTunes:MOOD``: one UTF-8 data atom per value."""

    name = "MP4 ----:com.apple.iTunes:MOOD"
    nul_separated = False
    key = "----:com.apple.iTunes:MOOD"

    def read(self, audio: FileType) -> list[str]:
        if audio.tags is None:
            return []
        return [bytes(value).decode("utf-8") for value in audio.tags.get(self.key, [])]

    def write(self, audio: FileType, moods: Sequence[str]) -> None:
        if audio.tags is None:
            audio.add_tags()
        if moods:
            audio.tags[self.key] = [
                MP4FreeForm(mood.encode("utf-8"), dataformat=AtomDataType.UTF8) for mood in moods
            ]
        else:
            audio.tags.pop(self.key, None)
        audio.save()


class ASFMoods:
    """ASF (WMA) ``WM/Mood``: one attribute per value."""

    name = "ASF WM/Mood"
    nul_separated = False
    key = "WM/Mood"

    def read(self, audio: FileType) -> list[str]:
        return [str(value) for value in audio.tags.get(self.key, [])]

    def write(self, audio: FileType, moods: Sequence[str]) -> None:
        if moods:
            audio.tags[self.key] = list(moods)
        elif self.key in audio.tags:
            del audio.tags[self.key]
        audio.save()


class APEv2Moods:
    """APEv2 ``Mood``: one text item, several values null-separated (keys case-insensitive)."""

    name = "APEv2 Mood"
    nul_separated = True
    key = "Mood"

    def read(self, audio: FileType) -> list[str]:
        if audio.tags is None or self.key not in audio.tags:
            return []
        value = audio.tags[self.key]
        if value.kind != TEXT:
            raise ValueError(f"the APEv2 {self.key} item holds binary data, not text")
        return list(value)

    def write(self, audio: FileType, moods: Sequence[str]) -> None:
        if audio.tags is None:
            audio.add_tags()
        if moods:
            audio.tags[self.key] = list(moods)
        elif self.key in audio.tags:
            del audio.tags[self.key]
        audio.save()
