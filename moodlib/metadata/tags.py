"""Read and write the mood field of a music file, whatever its container.

``read_moods`` and ``write_moods`` load the file with mutagen, which recognises the container
from its content, and hand it to the convention that container uses for moods:

=========================  ==============================  ===========================
container                  convention                      extensions
=========================  ==============================  ===========================
MP3, WAV, AIFF             ID3v2 ``TMOO`` (v2.3 or v2.4)   .mp3 .wav .aif .aiff
FLAC, Ogg Vorbis, Opus     Vorbis comment ``MOOD``         .flac .ogg .oga .opus
MP4 (AAC, ALAC)            ``----:com.apple.iTunes:MOOD``  .m4a
ASF                        ``WM/Mood``                     .wma
WavPack, Monkey's, MPC     APEv2 ``Mood``                  .wv .ape .mpc
=========================  ==============================  ===========================

A write never edits the file in place: the tags go into a copy that then replaces it. It
keeps the file's ID3 version; ``read_mood_state`` says which tag a file holds its moods in, so
that an undo can also take away a tag moodlib added (``drop_empty_tag``).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import mutagen
from mutagen import FileType, MutagenError
from mutagen.aiff import AIFF
from mutagen.asf import ASF
from mutagen.flac import FLAC
from mutagen.monkeysaudio import MonkeysAudio
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.musepack import Musepack
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE
from mutagen.wavpack import WavPack

from moodlib.formats import AUDIO_EXTENSIONS
from moodlib.metadata.atomic import replace_with_edited_copy
from moodlib.metadata.conventions import (
    APEv2Moods,
    ASFMoods,
    ID3Moods,
    MoodConvention,
    MP4Moods,
    VorbisMoods,
)
from moodlib.metadata.errors import TagWriteError

_ID3 = ID3Moods()

CONVENTIONS: dict[type[FileType], MoodConvention] = {
    MP3: _ID3,
    WAVE: _ID3,
    AIFF: _ID3,
    FLAC: VorbisMoods(),
    OggVorbis: VorbisMoods(),
    OggOpus: VorbisMoods(),
    MP4: MP4Moods(),
    ASF: ASFMoods(),
    WavPack: APEv2Moods(),
    MonkeysAudio: APEv2Moods(),
    Musepack: APEv2Moods(),
}

SUPPORTED_EXTENSIONS = AUDIO_EXTENSIONS  # the scanner's list: every file it finds is tagged

# Magic -> struct format of the size that follows it, for containers whose first unit
# declares its length: RIFF (WAV) and FORM (AIFF) wrap the whole file, "wvpk" is a WavPack block.
_DECLARED_SIZE_FORMATS = {b"RIFF": "<I", b"FORM": ">I", b"wvpk": "<I"}
_MPC_SV8_MAGIC = b"MPCK"

# Besides MutagenError, mutagen's parsers let these escape on some corrupt or truncated data.
_CORRUPT_DATA_ERRORS = (MutagenError, struct.error, EOFError, ValueError, IndexError)


def supported_extensions() -> frozenset[str]:
    """Lower-case file extensions (with the dot) of the containers moods are written to."""
    return SUPPORTED_EXTENSIONS


@dataclass(frozen=True)
class MoodState:
    """A file's mood values and the tag holding them ("" when the file has no tag)."""

    moods: list[str]
    tag: str


def read_moods(path: str | os.PathLike[str]) -> list[str]:
    """The mood values in the file, in order ([] when it has none).

    Raises ``TagWriteError`` when the file cannot be read or is not a supported audio file.
    """
    return read_mood_state(path).moods


def read_mood_state(path: str | os.PathLike[str]) -> MoodState:
    """The mood values in the file and the tag they are in ("ID3v2.3", "Vorbis comment", ...;
    "" when the file has no tag at all).

    Raises ``TagWriteError`` when the file cannot be read or is not a supported audio file.
    """
    with _as_tag_error(path):
        audio = _load(path)
        convention = CONVENTIONS[type(audio)]
        return MoodState(convention.read(audio), convention.tag(audio))


def write_moods(
    path: str | os.PathLike[str],
    moods: Sequence[str],
    *,
    expect: Sequence[str] | None = None,
    drop_empty_tag: bool = False,
) -> list[str]:
    """Make the file's mood field hold exactly ``moods`` and return the values it held before.

    An empty ``moods`` removes the field; writing the returned list back undoes the change.
    Every other tag and the audio stay as they were (an ID3 tag keeps its version), and the
    file is replaced atomically by an edited copy, so it is never left half-written. When the
    file already holds ``moods`` it is not rewritten.

    ``expect``: the values the file should hold now; it is not written when it holds others.
    ``drop_empty_tag``: when nothing but the moods was in the file's tag, remove the tag
    itself (an undo of a write that added it).

    Raises ``TagWriteError`` (file untouched) when the file is read-only, unreadable, corrupt
    or not a supported audio file, when the format cannot hold ``moods`` exactly (a NUL in a
    value of ID3v2, APEv2 or ASF; ID3v2's one empty value), when it does not hold ``expect``,
    or when the write fails; ``TypeError`` when a mood is not a str.
    """
    moods = list(moods)
    if not all(isinstance(mood, str) for mood in moods):
        raise TypeError(f"mood values must be strings: {moods!r}")

    def edit(copy: Path) -> list[str]:
        audio = _load(copy, for_writing=True)
        convention = CONVENTIONS[type(audio)]
        replaced = convention.read(audio)
        _check_expected(path, replaced, expect)
        convention.put(audio, moods)
        if drop_empty_tag and not audio.tags:
            audio.delete()
        else:
            convention.save(audio)
        return replaced

    with _as_tag_error(path):
        audio = _load(path)
        convention = CONVENTIONS[type(audio)]
        previous = convention.read(audio)
        _check_expected(path, previous, expect)
        if previous == moods:
            return previous
        _check_complete(path, audio)
        if reason := convention.cannot_hold(moods):
            raise TagWriteError(path, reason)
        return replace_with_edited_copy(Path(path), edit)


def _check_expected(
    path: str | os.PathLike[str], moods: list[str], expect: Sequence[str] | None
) -> None:
    if expect is not None and moods != list(expect):
        raise TagWriteError(path, f"its moods changed to {moods} since they were read")


def _load(path: str | os.PathLike[str], *, for_writing: bool = False) -> FileType:
    audio = mutagen.File(path, options=list(CONVENTIONS))
    if audio is None:
        raise MutagenError("not a supported audio file")
    if for_writing and CONVENTIONS[type(audio)] is _ID3:
        # Again, without mutagen's upgrade of every frame to ID3v2.4: saved as read.
        audio = type(audio)(path, translate=False)
    return audio


def _check_complete(path: str | os.PathLike[str], audio: FileType) -> None:
    """Refuse files that hold no audio or are visibly cut short.

    Writers insert tags at offsets computed from the sizes a header declares; in a truncated
    file those point past its end. Where the first unit of the container declares its size
    (the RIFF or AIFF form, the first WavPack block) that size must fit in the file; the
    packets of a Musepack SV8 stream must reach its end packet inside the file.
    """
    if audio.info.length <= 0:
        raise TagWriteError(path, "the file holds no audio")
    with open(path, "rb") as file:
        head = file.read(8)
        file_size = os.fstat(file.fileno()).st_size
        if head[:4] == _MPC_SV8_MAGIC:
            _check_musepack_packets(path, file, file_size)
            return
    size_format = _DECLARED_SIZE_FORMATS.get(head[:4])
    if size_format is None or len(head) < 8:
        return
    declared = 8 + struct.unpack(size_format, head[4:])[0]
    # One byte of slack: some writers leave out the pad byte after an odd-sized last chunk.
    if declared > file_size + 1:
        raise TagWriteError(
            path, f"truncated: its header declares {declared} bytes, the file has {file_size}"
        )


def _check_musepack_packets(path: str | os.PathLike[str], file: BinaryIO, file_size: int) -> None:
    """Walk a Musepack SV8 stream's packets (a 2-byte key, then the packet's size, key and
    size field included, in 7-bit groups, high bit = more) up to the stream end ``SE``."""
    offset = len(_MPC_SV8_MAGIC)
    while True:
        file.seek(offset)
        head = file.read(2 + 9)  # the key and the longest size field
        size, used = 0, 2
        for byte in head[2:]:
            size, used = (size << 7) | (byte & 0x7F), used + 1
            if not byte & 0x80:
                break
        else:
            raise TagWriteError(path, "truncated: the file ends in a Musepack packet header")
        if size < used:
            raise TagWriteError(path, f"corrupt: the Musepack packet at byte {offset} is {size} B")
        offset += size
        if offset > file_size:
            reason = (
                f"truncated: its Musepack packets run to byte {offset}, the file has {file_size}"
            )
            raise TagWriteError(path, reason)
        if head[:2] == b"SE":
            return


@contextmanager
def _as_tag_error(path: str | os.PathLike[str]) -> Iterator[None]:
    try:
        yield
    except TagWriteError:
        raise
    except OSError as error:
        raise TagWriteError(path, error.strerror or str(error)) from error
    except _CORRUPT_DATA_ERRORS as error:
        raise TagWriteError(path, f"not a readable audio file: {error}") from error
