"""Scan-and-tag: files on disk -> decoded audio -> batched inference -> the catalog.

Decoding runs in a pool of worker threads (the decoders and the resampler release the GIL)
feeding batches to the Tagger on the calling thread. Every track's result is committed to the
catalog as soon as it is known, so a cancelled or interrupted scan resumes where it stopped:
tracks whose file is unchanged and already has a prediction from the pack are skipped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from moodlib.audio.decode import AudioInfo, DecodeError, decode, probe
from moodlib.inference import Tagger, TrackPrediction
from moodlib.library.catalog import Catalog
from moodlib.library.paths import resolve_path
from moodlib.library.scanner import FoundFile, display_tags, find_audio_files
from moodlib.prefetch import read_ahead


@dataclass
class ScanProgress:
    done: int
    total: int
    path: str | None = None


@dataclass
class TrackResult:
    path: str
    track_id: int
    prediction: TrackPrediction | None = None
    error: str | None = None
    skipped: bool = False


@dataclass
class ScanResult:
    results: list[TrackResult] = field(default_factory=list)
    missing_paths: list[str] = field(default_factory=list)
    removed: int = 0
    cancelled: bool = False

    @property
    def failed(self) -> list[TrackResult]:
        return [r for r in self.results if r.error]

    @property
    def tagged(self) -> list[TrackResult]:
        return [r for r in self.results if r.prediction is not None]

    @property
    def skipped(self) -> list[TrackResult]:
        return [r for r in self.results if r.skipped]


@dataclass(frozen=True)
class TrackAudio:
    """The part of a file a pack looks at, decoded: what a scan tags and the GUI draws."""

    waveform: np.ndarray  # mono, at the tagger's sample rate
    offset_seconds: float  # where in the file the waveform starts
    info: AudioInfo  # the file's ``probe``


def read_track(path: str | Path, tagger: Tagger, *, info: AudioInfo | None = None) -> TrackAudio:
    """Decode the window of ``path`` that ``tagger`` reads (``Tagger.read_window``).

    ``info`` is the file's ``probe`` when the caller has it already. Raises ``DecodeError``
    when the file cannot be probed or decoded.
    """
    info = probe(path) if info is None else info
    offset, duration = tagger.read_window(info.duration_seconds)
    waveform = decode(
        path, sample_rate=tagger.sample_rate, offset_seconds=offset, duration_seconds=duration
    )
    return TrackAudio(waveform, offset, info)


@dataclass
class _Decoded:
    found: FoundFile
    waveform: np.ndarray | None
    info: dict
    error: str | None


ProgressCallback = Callable[[ScanProgress], None]


def scan(
    paths: Sequence[str | Path],
    catalog: Catalog,
    tagger: Tagger,
    *,
    pack_name: str | None = None,
    workers: int = 2,
    batch_tracks: int = 4,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> ScanResult:
    """Scan ``paths`` into ``catalog`` and tag every new or changed file with ``tagger``."""
    pack_name = pack_name or tagger.pack.name
    result = ScanResult()
    roots = [resolve_path(p) for p in paths]
    result.missing_paths = [p for p in roots if not Path(p).exists()]
    roots = [p for p in roots if Path(p).exists()]
    reached: set[str] = set()
    found = list(find_audio_files(roots, reached=reached))
    result.removed = catalog.remove_missing(reached, {f.path for f in found})

    todo: list[FoundFile] = []
    for item in found:
        if item.error:  # a link that dangles or loops: reported like an unreadable file
            track_id = catalog.upsert_track(
                item.path, size=item.size, mtime_ns=item.mtime_ns, error=item.error
            )
            result.results.append(TrackResult(item.path, track_id, error=item.error))
            continue
        known = catalog.track_by_path(item.path)
        unchanged = known is not None and (known.size, known.mtime_ns) == (
            item.size,
            item.mtime_ns,
        )
        if unchanged and known.error is None and catalog.has_prediction(known.id, pack_name):
            result.results.append(TrackResult(item.path, known.id, skipped=True))
        else:
            todo.append(item)

    total = len(todo)
    done = 0
    if progress:
        progress(ScanProgress(0, total))

    batch: list[tuple[int, _Decoded]] = []

    def flush() -> None:
        nonlocal done
        if not batch:
            return
        predictions = tagger.predict_waveforms([d.waveform for _, d in batch])
        for (track_id, decoded), prediction in zip(batch, predictions, strict=True):
            catalog.put_prediction(track_id, pack_name, prediction.scores, prediction.embedding)
            result.results.append(TrackResult(decoded.found.path, track_id, prediction))
            done += 1
            if progress:
                progress(ScanProgress(done, total, decoded.found.path))
        batch.clear()

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        for decoded in _decode_ahead(pool, todo, tagger, workers * 2 + batch_tracks, cancel):
            track_id = catalog.upsert_track(
                decoded.found.path,
                size=decoded.found.size,
                mtime_ns=decoded.found.mtime_ns,
                error=decoded.error,
                **decoded.info,
            )
            if decoded.error:
                result.results.append(
                    TrackResult(decoded.found.path, track_id, error=decoded.error)
                )
                done += 1
                if progress:
                    progress(ScanProgress(done, total, decoded.found.path))
                continue
            batch.append((track_id, decoded))
            if len(batch) >= batch_tracks:
                flush()
        flush()
    result.cancelled = cancel is not None and cancel.is_set() and done < total
    return result


def _decode_ahead(
    pool: ThreadPoolExecutor,
    todo: Iterable[FoundFile],
    tagger: Tagger,
    ahead: int,
    cancel: threading.Event | None,
):
    """Yield decoded files in order, keeping up to ``ahead`` decodes in flight."""
    return read_ahead(pool, lambda item: _decode_one(item, tagger), todo, ahead, cancel)


def _decode_one(item: FoundFile, tagger: Tagger) -> _Decoded:
    info: dict = display_tags(item.path)
    try:
        audio_info = probe(item.path)
        # Recorded first: a file that probes but does not decode still shows its length.
        info.update(duration=audio_info.duration_seconds, format=audio_info.codec)
        waveform = read_track(item.path, tagger, info=audio_info).waveform
    except DecodeError as error:
        return _Decoded(item, None, info, error.reason)
    except Exception as error:  # any decoder failure is this file's error, not the scan's
        return _Decoded(item, None, info, f"{type(error).__name__}: {error}")
    return _Decoded(item, waveform, info, None)
