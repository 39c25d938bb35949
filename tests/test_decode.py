"""Decoding real music files: every container moodlib reads, excerpts, and broken files."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import media
import numpy as np
import pytest

from moodlib.audio import AUDIO_EXTENSIONS, DecodeError, decode, probe
from moodlib.audio.decode import decode_spans

EXCERPT_SECONDS = 20.0
SOURCE_RATE = 48000  # The Singularity soundtrack's sample rate, kept by every encoding.
LOSSLESS = ("flac", "wav", "aiff", "alac", "wv")
# media.make_library encodes every file from the decoded (float) Vorbis excerpt: WavPack keeps
# the floats, FLAC and ALAC round them to 24 bits, WAV and AIFF to 16.
LOSSLESS_BITS = {"flac": 24, "alac": 24, "wav": 16, "aiff": 16, "wv": 32}
LOSSY = ("mp3", "ogg", "opus", "m4a", "wma")
RATES = (12000, 16000)
CODECS = {
    "mp3": "mp3",
    "flac": "flac",
    "ogg": "vorbis",
    "opus": "opus",
    "m4a": "aac",
    "alac": "alac",
    "wav": "pcm_s16le",
    "aiff": "pcm_s16be",
    "wma": "wmav2",
    "wv": "wavpack",
    "ape": "ape",
    "mpc": "musepack8",
}

# FFmpeg states a Musepack SV8 stream's duration in whole packets of 64 x 1152 samples.
MPC_PACKET_SECONDS = 64 * 1152 / SOURCE_RATE


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Format name -> file, every one encoded from the same excerpt so they can be compared
    (``real_music_library`` draws each format from a different track)."""
    reason = media.missing_tools()
    if reason is not None:
        pytest.skip(f"cannot build the real-music library: {reason}")
    root = tmp_path_factory.mktemp("decode_library")

    def build(fmt: str) -> dict[str, Path]:
        return media.make_library(root / fmt, seconds=EXCERPT_SECONDS, formats=[fmt])

    with ThreadPoolExecutor() as pool:
        return {
            fmt: path for built in pool.map(build, media.FORMATS) for fmt, path in built.items()
        }


@pytest.fixture(scope="session")
def reference(library: dict[str, Path]) -> dict[int, np.ndarray]:
    """Sample rate -> full decode of the WavPack file, which holds the encoder's float input."""
    return {rate: full_decode(library["wv"], rate) for rate in (*RATES, SOURCE_RATE)}


def ffmpeg(*args: str | Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


@functools.cache
def full_decode(path: Path, rate: int) -> np.ndarray:
    waveform = decode(path, sample_rate=rate)
    waveform.flags.writeable = False
    return waveform


def best_correlation(signal: np.ndarray, reference: np.ndarray, max_lag: int) -> float:
    """Highest normalised cross-correlation of two signals over lags up to ``max_lag``."""
    length = min(len(signal), len(reference))
    signal, reference = signal[:length] - signal.mean(), reference[:length] - reference.mean()
    size = 1 << (2 * length - 1).bit_length()
    spectrum = np.fft.rfft(signal, size) * np.conj(np.fft.rfft(reference, size))
    correlation = np.fft.irfft(spectrum, size)
    lags = np.concatenate([correlation[: max_lag + 1], correlation[size - max_lag :]])
    return float(lags.max() / (np.linalg.norm(signal) * np.linalg.norm(reference)))


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("fmt", media.FORMATS)
def test_decodes_to_mono_float32_at_the_requested_rate(
    library: dict[str, Path], fmt: str, rate: int
) -> None:
    waveform = full_decode(library[fmt], rate)

    assert waveform.dtype == np.float32
    assert waveform.ndim == 1
    assert waveform.flags.c_contiguous
    assert len(waveform) == pytest.approx(EXCERPT_SECONDS * rate, rel=0.01)
    assert np.isfinite(waveform).all()
    assert 0.05 < np.abs(waveform).max() <= 1.5


@pytest.mark.parametrize("rate", (*RATES, SOURCE_RATE))
@pytest.mark.parametrize("fmt", LOSSLESS)
def test_lossless_formats_decode_to_the_same_samples(
    library: dict[str, Path], reference: dict[int, np.ndarray], fmt: str, rate: int
) -> None:
    waveform = full_decode(library[fmt], rate)

    # Within one step of the file's quantisation (rounding, spread a little by resampling).
    tolerance = 2.0 ** (1 - LOSSLESS_BITS[fmt]) + 1e-6
    np.testing.assert_allclose(waveform, reference[rate], rtol=0, atol=tolerance)


@pytest.mark.parametrize("fmt", LOSSY)
def test_lossy_formats_sound_like_the_source(
    library: dict[str, Path], reference: dict[int, np.ndarray], fmt: str
) -> None:
    waveform = full_decode(library[fmt], 12000)

    # Against ffmpeg 5.1's own decode of these files, the AAC one starts 320 samples (at 48 kHz)
    # late and the WMA one 2048 early; moodlib decodes them as ffmpeg does.
    assert best_correlation(waveform, reference[12000], max_lag=1200) > 0.99


@pytest.mark.parametrize(("offset", "duration"), [(7.3, 5.0), (13.17, None), (0.4, 2.5)])
@pytest.mark.parametrize("fmt", media.FORMATS)
def test_excerpt_equals_the_slice_of_a_full_decode(
    library: dict[str, Path], fmt: str, offset: float, duration: float | None
) -> None:
    rate = 12000
    full = full_decode(library[fmt], rate)
    start = round(offset * rate)
    expected = full[start:] if duration is None else full[start : start + round(duration * rate)]

    excerpt = decode(
        library[fmt], sample_rate=rate, offset_seconds=offset, duration_seconds=duration
    )

    assert len(excerpt) == len(expected)
    if fmt == "m4a":
        # FFmpeg's AAC decoder fills noise-substituted bands from a random generator whose state
        # a seek changes, so an excerpt differs from the full decode in that noise.
        assert np.corrcoef(excerpt, expected)[0, 1] > 0.999
    else:
        np.testing.assert_allclose(excerpt, expected, rtol=0, atol=1e-6)


# Out of order, overlapping, one at the very start and one running to the end.
SPANS = [(7 * 12000, 9 * 12000), (100, 3000), (8 * 12000, None), (0, 12000)]


def assert_same_audio(fmt: str, waveform: np.ndarray, expected: np.ndarray) -> None:
    assert len(waveform) == len(expected)
    if fmt == "m4a":  # AAC's noise substitution depends on where decoding started
        assert np.corrcoef(waveform, expected)[0, 1] > 0.999
    else:
        np.testing.assert_allclose(waveform, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("fmt", media.FORMATS)
def test_spans_equal_the_slices_of_a_full_decode(library: dict[str, Path], fmt: str) -> None:
    full = full_decode(library[fmt], 12000)

    parts = decode_spans(library[fmt], sample_rate=12000, spans=SPANS)

    for (start, stop), part in zip(SPANS, parts, strict=True):
        assert_same_audio(fmt, part, full[start:stop])


def test_spans_of_a_file_ffmpeg_does_not_seek_in_equal_its_full_decode(
    library: dict[str, Path], tmp_path: Path
) -> None:
    # libsndfile refuses MP3 data named .wma, and FFmpeg decodes MP3 from the start.
    misnamed = Path(shutil.copyfile(library["mp3"], tmp_path / "mp3_inside.wma"))
    full = decode(misnamed, sample_rate=12000)

    parts = decode_spans(misnamed, sample_rate=12000, spans=SPANS)

    for (start, stop), part in zip(SPANS, parts, strict=True):
        assert_same_audio("mp3", part, full[start:stop])


@pytest.mark.parametrize("span", [(-1, 100), (500, 500), (500, 400)])
def test_invalid_spans_raise_value_error(library: dict[str, Path], span: tuple) -> None:
    with pytest.raises(ValueError, match="span"):
        decode_spans(library["flac"], sample_rate=12000, spans=[span])


def test_excerpt_running_past_the_end_is_shortened(library: dict[str, Path]) -> None:
    offset = EXCERPT_SECONDS - 2

    excerpt = decode(library["flac"], sample_rate=12000, offset_seconds=offset, duration_seconds=5)

    assert len(excerpt) == len(full_decode(library["flac"], 12000)) - offset * 12000 < 5 * 12000


def test_excerpt_after_the_end_is_an_error(library: dict[str, Path]) -> None:
    with pytest.raises(DecodeError, match="no audio samples") as caught:
        decode(library["flac"], sample_rate=12000, offset_seconds=EXCERPT_SECONDS + 1)

    assert caught.value.path == library["flac"]


@pytest.fixture(scope="session")
def high_resolution(
    library: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """24-bit, 44.1 kHz files: libsndfile (FLAC) and FFmpeg's 32-bit integer output (ALAC,
    WavPack), and a rate whose sampling grid meets 12 kHz only every 40 output samples."""
    root = tmp_path_factory.mktemp("high_resolution")
    encodings = {
        "flac": ("-c:a", "flac", "-sample_fmt", "s32"),
        "alac.m4a": ("-c:a", "alac", "-sample_fmt", "s32p"),
        "wv": ("-c:a", "wavpack", "-sample_fmt", "s32p"),
    }
    files = {}
    for suffix, codec in encodings.items():
        files[suffix] = root / f"hires.{suffix}"
        ffmpeg("-i", library["wav"], "-ar", "44100", *codec, files[suffix])
    return files


def test_24_bit_files_decode_alike_in_both_backends(high_resolution: dict[str, Path]) -> None:
    flac = decode(high_resolution["flac"], sample_rate=12000)

    for suffix in ("alac.m4a", "wv"):
        np.testing.assert_allclose(
            decode(high_resolution[suffix], sample_rate=12000), flac, rtol=0, atol=1e-6
        )


@pytest.mark.parametrize("suffix", ["flac", "wv"])
def test_excerpt_of_a_44k1_file_equals_the_slice_of_a_full_decode(
    high_resolution: dict[str, Path], suffix: str
) -> None:
    full = decode(high_resolution[suffix], sample_rate=12000)

    excerpt = decode(
        high_resolution[suffix], sample_rate=12000, offset_seconds=13.3371, duration_seconds=4
    )

    start = round(13.3371 * 12000)
    np.testing.assert_allclose(excerpt, full[start : start + 4 * 12000], rtol=0, atol=1e-6)


def test_a_misnamed_file_is_decoded_by_its_content(
    library: dict[str, Path], tmp_path: Path
) -> None:
    misnamed = Path(shutil.copyfile(library["m4a"], tmp_path / "actually_aac.mp3"))

    np.testing.assert_array_equal(
        decode(misnamed, sample_rate=12000), decode(library["m4a"], sample_rate=12000)
    )


@pytest.mark.parametrize("fmt", media.FORMATS)
def test_probe_reads_the_stream_parameters(library: dict[str, Path], fmt: str) -> None:
    info = probe(library[fmt])

    if fmt == "mpc":
        assert EXCERPT_SECONDS - MPC_PACKET_SECONDS < info.duration_seconds <= EXCERPT_SECONDS
    else:
        assert info.duration_seconds == pytest.approx(EXCERPT_SECONDS, rel=0.01)
    assert info.sample_rate == SOURCE_RATE
    assert info.channels == 2
    assert info.codec == CODECS[fmt]


@pytest.mark.parametrize("fmt", media.FORMATS)
def test_library_files_have_audio_extensions(library: dict[str, Path], fmt: str) -> None:
    assert library[fmt].suffix in AUDIO_EXTENSIONS


def _empty(library: dict[str, Path], directory: Path) -> Path:
    path = directory / "empty.flac"
    path.touch()
    return path


def _text_named_mp3(library: dict[str, Path], directory: Path) -> Path:
    path = directory / "notes.mp3"
    path.write_text("These are my notes, not a song.\n" * 20)
    return path


def _missing(library: dict[str, Path], directory: Path) -> Path:
    return directory / "missing.ogg"


def _directory(library: dict[str, Path], directory: Path) -> Path:
    path = directory / "album.flac"
    path.mkdir()
    return path


def _first_half_of(fmt: str) -> Callable[[dict[str, Path], Path], Path]:
    def truncate(library: dict[str, Path], directory: Path) -> Path:
        data = library[fmt].read_bytes()
        path = directory / f"truncated{library[fmt].suffix}"
        path.write_bytes(data[: len(data) // 2])
        return path

    return truncate


UNREADABLE_FILES = {
    "empty": _empty,
    "text named .mp3": _text_named_mp3,
    "missing": _missing,
    "directory": _directory,
}
BROKEN_AUDIO = {
    "half a flac": _first_half_of("flac"),
    "half an mp3": _first_half_of("mp3"),
    "half an m4a": _first_half_of("m4a"),
    "half a wma": _first_half_of("wma"),
    "half a wavpack": _first_half_of("wv"),
}


@pytest.mark.parametrize("make", [*UNREADABLE_FILES.values(), *BROKEN_AUDIO.values()],
                         ids=[*UNREADABLE_FILES, *BROKEN_AUDIO])  # fmt: skip
def test_bad_file_raises_decode_error_naming_it(
    library: dict[str, Path], tmp_path: Path, make: Callable[[dict[str, Path], Path], Path]
) -> None:
    path = make(library, tmp_path)

    with pytest.raises(DecodeError) as caught:
        decode(path, sample_rate=12000)

    assert caught.value.path == path
    assert str(caught.value).startswith(f"{path}: ")
    assert caught.value.reason


@pytest.mark.parametrize("make", UNREADABLE_FILES.values(), ids=UNREADABLE_FILES)
def test_probe_of_unreadable_file_raises_decode_error_naming_it(
    library: dict[str, Path], tmp_path: Path, make: Callable[[dict[str, Path], Path], Path]
) -> None:
    path = make(library, tmp_path)

    with pytest.raises(DecodeError) as caught:
        probe(path)

    assert caught.value.path == path


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_file_without_read_permission_raises_decode_error(
    library: dict[str, Path], tmp_path: Path
) -> None:
    path = Path(shutil.copyfile(library["flac"], tmp_path / "private.flac"))
    path.chmod(0)

    with pytest.raises(DecodeError, match="permission denied"):
        decode(path, sample_rate=12000)


@pytest.mark.parametrize(
    "arguments",
    [
        {"sample_rate": 0},
        {"sample_rate": 12000, "offset_seconds": -1.0},
        {"sample_rate": 12000, "duration_seconds": 0.0},
    ],
)
def test_invalid_arguments_raise_value_error(library: dict[str, Path], arguments: dict) -> None:
    with pytest.raises(ValueError):
        decode(library["flac"], **arguments)
