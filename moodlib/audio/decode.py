"""Decode music files to mono float32 waveforms at a chosen sample rate.

libsndfile (through ``soundfile``) reads WAV, AIFF, FLAC, Ogg Vorbis, Opus and MP3 with exact,
sample-accurate seeking; FFmpeg (through PyAV) reads everything else (MP4/M4A with AAC or ALAC,
WMA, WavPack, Monkey's Audio, Musepack) and takes over whenever libsndfile fails on a file.
Channels are averaged to mono at the file's own rate, then resampled with soxr.

An excerpt (``offset_seconds`` / ``duration_seconds``) is read by seeking, never by decoding the
whole file, and is the same (to float rounding) as the matching slice of a full decode: the read
starts on a sample where the input and output sampling grids meet and takes
``RESAMPLER_CONTEXT_SECONDS`` of audio either side, so the resampler sees the same neighbourhood
as it does in a full decode.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import soxr

from moodlib.formats import AUDIO_EXTENSIONS

__all__ = ["AUDIO_EXTENSIONS", "AudioInfo", "DecodeError", "decode", "decode_spans", "probe"]

RESAMPLE_QUALITY = "VHQ"
"""soxr quality recipe. 'VHQ' computes in double precision, so an excerpt and the slice of a full
decode agree to about 1e-8 ('HQ' works in single precision: about 2e-7); it costs about 20 ms per
minute of 48 kHz audio, far below the cost of decoding."""

RESAMPLER_CONTEXT_SECONDS = 0.1
"""Audio decoded either side of an excerpt for the resampler's filter; soxr's filters at these
rates reach about 10 ms."""

SEEK_PREROLL_SECONDS = 1.0
"""How far before an excerpt PyAV seeks. Frames decoded in the first half of that are discarded
unseen: after a seek, decoders with inter-frame state (AAC, Vorbis, WMA) emit a few frames
of the wrong content or length. The second half is placed by the first timestamp in it and
decoded through, so that the kept samples come out as in a decode from the start."""

_SEEKABLE_CODECS = frozenset({"aac", "alac", "wavpack", "wmav1", "wmav2"})
"""Codecs that PyAV seeks in. FFmpeg's timestamps after a seek are exact for these (ASF's are
in milliseconds, see ``_frame_position``); the others are decoded from the start when they
reach PyAV: its Vorbis timestamps after a seek can be off by hundreds of samples, and seeking
in VBR MP3s is approximate."""

TRUNCATION_TOLERANCE = 0.01
"""A decode that ends short of the length the container declares by more than this fraction of
that length is a truncated file. Headers of valid files can be a little off (bitrate estimates
of MP3s without a Xing header, padding), so exact agreement is not required."""

_SOUNDFILE_FORMATS = {
    ".wav": "WAV",
    ".flac": "FLAC",
    ".ogg": "OGG",
    ".oga": "OGG",
    ".opus": "OGG",
    ".aif": "AIFF",
    ".aiff": "AIFF",
    ".mp3": "MP3",
}
_SOUNDFILE_EXTENSIONS = frozenset(
    extension
    for extension, major_format in _SOUNDFILE_FORMATS.items()
    if major_format in sf.available_formats()  # MP3 needs libsndfile >= 1.1
)

_READ_BLOCK_FRAMES = 65536
"""Frames libsndfile reads at a time (1 MiB of stereo float32) before they are downmixed."""

_PCM_SCALES = {"u8": 128.0, "s16": 32768.0, "s32": 2.0**31, "s64": 2.0**63}


class DecodeError(Exception):
    """A file could not be decoded; ``path`` names it and ``reason`` says why."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    """What a file's container says about its first audio stream."""

    duration_seconds: float
    sample_rate: int
    channels: int
    codec: str
    """FFmpeg's codec name: 'mp3', 'flac', 'vorbis', 'opus', 'aac', 'alac', 'wmav2', 'wavpack',
    'pcm_s16le', ..."""
    container: str
    """FFmpeg's demuxer name: 'mp3', 'flac', 'ogg', 'mov,mp4,m4a,3gp,3g2,mj2', 'asf', 'wav', ..."""


def decode(
    path: str | os.PathLike[str],
    *,
    sample_rate: int,
    offset_seconds: float = 0.0,
    duration_seconds: float | None = None,
) -> np.ndarray:
    """Decode an audio file (or an excerpt of it) to a mono waveform.

    Parameters
    ----------
    path
        The audio file.
    sample_rate
        Sample rate of the returned waveform, in Hz.
    offset_seconds
        Where the excerpt starts, from the start of the audio.
    duration_seconds
        Length of the excerpt; ``None`` reads to the end. An excerpt running past the end of the
        audio is returned shorter.

    Returns
    -------
    numpy.ndarray
        1-D float32 waveform at ``sample_rate``: the channels averaged, full scale = 1.0.
        Sample ``i`` is at ``offset_seconds + i / sample_rate`` in the file.

    Raises
    ------
    DecodeError
        The file is missing, unreadable, empty, not audio, corrupt or truncated, or nothing of it
        lies in the requested excerpt.

    Examples
    --------
    >>> waveform = decode("song.flac", sample_rate=12000, offset_seconds=60, duration_seconds=30)
    >>> waveform.shape
    (360000,)
    """
    if offset_seconds < 0:
        raise ValueError(f"offset_seconds must not be negative, got {offset_seconds}")
    if duration_seconds is not None and duration_seconds <= 0:
        raise ValueError(f"duration_seconds must be positive, got {duration_seconds}")
    start = round(offset_seconds * sample_rate)
    stop = None if duration_seconds is None else start + round(duration_seconds * sample_rate)
    [waveform] = decode_spans(path, sample_rate=sample_rate, spans=[(start, stop)])
    return waveform


def decode_spans(
    path: str | os.PathLike[str],
    *,
    sample_rate: int,
    spans: Sequence[tuple[int, int | None]],
) -> list[np.ndarray]:
    """Decode several excerpts of one file, opening it once.

    Parameters
    ----------
    path
        The audio file.
    sample_rate
        Sample rate of the returned waveforms, in Hz.
    spans
        ``(start, stop)`` of each excerpt in samples at ``sample_rate``; ``stop=None`` reads to
        the end. Excerpts may overlap and come in any order.

    Returns
    -------
    list of numpy.ndarray
        One waveform per span, as ``decode`` returns it for that excerpt: a span running past the
        end of the audio is returned shorter. Files that FFmpeg cannot seek in are decoded in a
        single pass for all spans.

    Raises
    ------
    DecodeError
        As ``decode``; also when a span holds no audio samples.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    for start, stop in spans:
        if start < 0 or (stop is not None and stop <= start):
            raise ValueError(f"a span must satisfy 0 <= start < stop, got {(start, stop)}")
    path = Path(path)
    _check_readable(path)
    excerpts = [_Excerpt(sample_rate=sample_rate, start=start, stop=stop) for start, stop in spans]
    decoded = None
    if path.suffix.lower() in _SOUNDFILE_EXTENSIONS:
        try:
            decoded = _read_with_soundfile(path, excerpts)
        except (sf.SoundFileError, _Truncated):
            decoded = None  # FFmpeg is more lenient and gives the better error message.
    if decoded is None:
        decoded = _read_with_pyav(path, excerpts)
    waveforms = []
    for excerpt, (native, native_rate, native_start) in zip(excerpts, decoded, strict=True):
        waveform = excerpt.cut(native, native_rate, native_start)
        if waveform.size == 0:
            where = f" from {excerpt.start / sample_rate:g} s on" if excerpt.start else ""
            raise DecodeError(path, f"no audio samples{where}")
        waveforms.append(waveform)
    return waveforms


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Read duration, sample rate, channels and codec from the container, without decoding.

    Raises
    ------
    DecodeError
        The file is missing, unreadable, empty or not a container FFmpeg recognises, or it has no
        audio stream.
    """
    path = Path(path)
    _check_readable(path)
    with _open_audio(path) as (container, stream):
        if stream.duration is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            raise DecodeError(path, "the container does not state a duration")
        return AudioInfo(
            duration_seconds=duration,
            sample_rate=stream.codec_context.sample_rate,
            channels=stream.codec_context.channels,
            codec=stream.codec_context.codec.canonical_name,
            container=container.format.name,
        )


@dataclass(frozen=True)
class _Excerpt:
    """Output samples ``[start, stop)`` at ``sample_rate``; ``stop=None`` runs to the end."""

    sample_rate: int
    start: int
    stop: int | None

    def native_span(self, native_rate: int) -> tuple[int, int | None]:
        """Input samples to decode: the excerpt plus resampler context, starting on a sample
        that falls exactly on an output sample."""
        if native_rate == self.sample_rate:
            return self.start, self.stop
        context = math.ceil(RESAMPLER_CONTEXT_SECONDS * self.sample_rate)
        grid = self.sample_rate // math.gcd(native_rate, self.sample_rate)
        first_output = max(0, (self.start - context) // grid * grid)
        start = first_output * native_rate // self.sample_rate
        if self.stop is None:
            return start, None
        return start, -(-(self.stop + context) * native_rate // self.sample_rate)

    def cut(self, native: np.ndarray, native_rate: int, native_start: int) -> np.ndarray:
        """Resample what was decoded from ``native_start`` on and keep the excerpt."""
        if native_rate == self.sample_rate or native.size == 0:
            resampled = native
        else:
            resampled = soxr.resample(native, native_rate, self.sample_rate, RESAMPLE_QUALITY)
        first_output = native_start * self.sample_rate // native_rate
        stop = None if self.stop is None else self.stop - first_output
        return np.ascontiguousarray(resampled[self.start - first_output : stop], dtype=np.float32)


class _Truncated(Exception):
    """The decoder ran out of data before the length the container declares."""


def _check_readable(path: Path) -> None:
    """Turn the file-system reasons for failing into DecodeErrors before any decoder sees them."""
    try:
        with path.open("rb") as file:
            if not file.read(1):
                raise DecodeError(path, "empty file (0 bytes)")
    except FileNotFoundError:
        raise DecodeError(path, "no such file") from None
    except IsADirectoryError:
        raise DecodeError(path, "is a directory, not a file") from None
    except PermissionError:
        raise DecodeError(path, "permission denied") from None
    except OSError as error:
        raise DecodeError(path, f"cannot read: {error.strerror or error}") from error


def _check_complete(decoded_stop: int, wanted_stop: int | None, declared_total: int | None) -> None:
    if declared_total is None or declared_total <= 0:
        return
    expected_stop = declared_total if wanted_stop is None else min(wanted_stop, declared_total)
    if expected_stop - decoded_stop > TRUNCATION_TOLERANCE * declared_total:
        raise _Truncated(decoded_stop, declared_total)


def _truncation_reason(error: _Truncated, native_rate: int) -> str:
    decoded_stop, declared_total = error.args
    return (
        f"truncated or corrupt: decoding stops at {decoded_stop / native_rate:.1f} s "
        f"of the {declared_total / native_rate:.1f} s the file declares"
    )


def _read_with_soundfile(
    path: Path, excerpts: Sequence[_Excerpt]
) -> list[tuple[np.ndarray, int, int]]:
    decoded = []
    # As bytes: soundfile encodes a str strictly, which fails on a name that is not UTF-8.
    with sf.SoundFile(os.fsencode(path)) as file:
        native_rate, declared_total = file.samplerate, file.frames
        for excerpt in excerpts:
            start, stop = excerpt.native_span(native_rate)
            stop = declared_total if stop is None else min(stop, declared_total)
            if start >= stop:
                decoded.append((np.zeros(0, np.float32), native_rate, start))
                continue
            # Seek even to 0: without a seek, libsndfile 1.2 does not skip an Opus stream's
            # pre-skip when the first granule position is not 0 (ffmpeg writes such files).
            file.seek(start)
            mono = _read_mono(file, stop - start)
            _check_complete(start + len(mono), stop, declared_total)
            decoded.append((mono, native_rate, start))
    return decoded


def _read_mono(file: sf.SoundFile, frames: int) -> np.ndarray:
    """Up to ``frames`` frames from ``file``'s position, downmixed block by block into one
    array: the interleaved multi-channel samples of a whole track are never held at once."""
    mono = np.empty(frames, np.float32)
    block = np.empty((min(frames, _READ_BLOCK_FRAMES), file.channels), np.float32)
    filled = 0
    while filled < frames:
        count = file.read(min(len(block), frames - filled), dtype="float32", out=block)
        if not len(count):
            break
        mono[filled : filled + len(count)] = _downmix(count.T)
        filled += len(count)
    return mono[:filled]


def _read_with_pyav(path: Path, excerpts: Sequence[_Excerpt]) -> list[tuple[np.ndarray, int, int]]:
    """Decode with FFmpeg, seeking to a keyframe before each excerpt when it is worth it.

    Positions are counted in samples from the first decoded frame. After a seek, one frame is
    placed by its timestamp relative to that first frame's (see ``SEEK_PREROLL_SECONDS``) and
    the positions of the frames after it are counted on; the excerpts that no seek serves (near
    the start, a codec FFmpeg does not seek in, or a seek landing after the excerpt's start) are
    gathered in one pass from the start.
    """
    native_rate = None
    try:
        with _open_audio(path) as (container, stream):
            frames = container.decode(stream)
            first = next(frames, None)
            if first is None:
                raise DecodeError(path, "no audio samples")
            native_rate = first.sample_rate
            spans = [excerpt.native_span(native_rate) for excerpt in excerpts]
            declared_total = _declared_samples(stream, first, native_rate)
            seekable = stream.codec_context.codec.canonical_name in _SEEKABLE_CODECS
            gathered: list[tuple[np.ndarray, int] | None] = [None] * len(spans)
            sought = False
            if seekable and first.pts is not None:
                for i, (start, stop) in enumerate(spans):
                    if start > SEEK_PREROLL_SECONDS * native_rate:
                        gathered[i] = _gather_after_seek(container, stream, first, start, stop)
                        sought = True
            rest = [i for i, found in enumerate(gathered) if found is None]
            if rest and not sought:
                found = _gather(chain([first], frames), 0, [spans[i] for i in rest])
                for i, item in zip(rest, found, strict=True):
                    gathered[i] = item
                rest = []
        if rest:
            with _open_audio(path) as (container, stream):
                found = _gather(container.decode(stream), 0, [spans[i] for i in rest])
            for i, item in zip(rest, found, strict=True):
                gathered[i] = item
        decoded = []
        for (start, stop), (samples, end) in zip(spans, gathered, strict=True):
            _check_complete(end, stop, declared_total)
            decoded.append((samples, native_rate, start))
    except _Truncated as error:
        raise DecodeError(path, _truncation_reason(error, native_rate)) from None
    except av.FFmpegError as error:
        reason = f"corrupt or truncated audio data ({_strerror(error)})"
        raise DecodeError(path, reason) from error
    return decoded


def _gather_after_seek(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    first: av.AudioFrame,
    start: int,
    stop: int | None,
) -> tuple[np.ndarray, int] | None:
    """``_gather`` after seeking ``SEEK_PREROLL_SECONDS`` before ``start``; None when no frame
    to place the rest by comes before ``start``."""
    native_rate = first.sample_rate
    preroll = round(SEEK_PREROLL_SECONDS * native_rate)
    target = first.pts + int(Fraction(start - preroll, native_rate) / stream.time_base)
    container.seek(target, stream=stream)
    frames = container.decode(stream)
    for frame in frames:
        if frame.pts is None:
            continue
        position = _frame_position(frame, first, stream.time_base)
        if position > start:
            return None
        if position >= start - preroll // 2:
            return _gather(chain([frame], frames), position, [(start, stop)])[0]
    return None


def _frame_position(frame: av.AudioFrame, first: av.AudioFrame, time_base: Fraction) -> int:
    """Where ``frame`` starts, in samples from the start of ``first``, by their timestamps."""
    position = (frame.pts - first.pts) * time_base * first.sample_rate
    if time_base > Fraction(1, first.sample_rate) and frame.samples == first.samples:
        # Timestamps coarser than a sample (ASF's milliseconds) only tell which frame this is,
        # and in a stream of equal frames, frame k starts at sample k * length.
        return round(position / frame.samples) * frame.samples
    return round(position)


@contextmanager
def _open_audio(path: Path) -> Iterator[tuple[av.container.InputContainer, av.AudioStream]]:
    """Open ``path`` with FFmpeg and find its first audio stream."""
    try:
        container = av.open(os.fspath(path))
    except av.FFmpegError as error:
        reason = f"not a recognised audio file ({_strerror(error)})"
        raise DecodeError(path, reason) from error
    with container:
        if not container.streams.audio:
            raise DecodeError(path, f"no audio stream in this {container.format.name} file")
        yield container, container.streams.audio[0]


def _gather(
    frames: Iterator[av.AudioFrame], position: int, spans: Sequence[tuple[int, int | None]]
) -> list[tuple[np.ndarray, int]]:
    """Keep the mono samples of ``frames`` in each ``[start, stop)`` of ``spans``, the first
    frame starting at sample ``position``; returns, per span, its samples and the position where
    decoding ended (past the span's stop, or the end of the stream)."""
    kept: list[list[np.ndarray]] = [[] for _ in spans]
    stops = [stop for _, stop in spans]
    last_stop = None if None in stops else max(stops, default=0)
    for frame in frames:
        mono = _frame_to_mono(frame)
        end = position + len(mono)
        for pieces, (start, stop) in zip(kept, spans, strict=True):
            if end > start and (stop is None or position < stop):
                pieces.append(
                    mono[max(0, start - position) : None if stop is None else stop - position]
                )
        position = end
        if last_stop is not None and position >= last_stop:
            break
    return [
        (np.concatenate(pieces) if pieces else np.zeros(0, np.float32), position) for pieces in kept
    ]


def _frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    """Average the channels of a decoded frame, as float32 with full scale = 1.0."""
    channels = frame.to_ndarray()
    if not frame.format.is_planar:
        channels = channels.reshape(-1, len(frame.layout.channels)).T
    sample_format = frame.format.name.rstrip("p")
    if sample_format in _PCM_SCALES:
        # The same conversion as libsndfile's, so lossless files decode alike in both backends.
        offset = 128 if sample_format == "u8" else 0
        channels = (channels.astype(np.float32) - offset) * np.float32(
            1.0 / _PCM_SCALES[sample_format]
        )
    return _downmix(channels.astype(np.float32, copy=False))


def _downmix(channels: np.ndarray) -> np.ndarray:
    """Average the rows of a ``(channels, samples)`` float32 array (row by row: numpy's
    ``mean(axis=0)`` over a few strided rows is ten times slower)."""
    mono = channels[0].copy()
    for channel in channels[1:]:
        mono += channel
    if len(channels) > 1:
        mono /= np.float32(len(channels))
    return mono


def _declared_samples(stream: av.AudioStream, first: av.AudioFrame, native_rate: int) -> int | None:
    """The stream length the container declares, in samples from the first decoded frame."""
    if stream.duration is None:
        return None
    first_pts = first.pts or 0
    start_pts = stream.start_time or 0
    return round((stream.duration - (first_pts - start_pts)) * stream.time_base * native_rate)


def _strerror(error: av.FFmpegError) -> str:
    return error.strerror or type(error).__name__
