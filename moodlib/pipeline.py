"""Scan-and-tag: files on disk -> decoded audio -> batched inference -> the catalog.

Decoding runs in a pool of worker threads (the decoders and the resampler release the GIL)
feeding batches to the Tagger on the calling thread; a worker decodes only the parts of a file
that the pack reads (``read_excerpts``). Every track's result is committed to the catalog as
soon as it is known, so a cancelled or interrupted scan resumes where it stopped: tracks whose
file is unchanged and already has a prediction from the pack are skipped, after one catalog
query for the whole scan, and the Tagger (its models) is made only when a file needs tagging.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from moodlib.audio.decode import AudioInfo, DecodeError, decode, decode_spans, probe
from moodlib.inference import Tagger, TrackExcerpts, TrackPrediction
from moodlib.library.catalog import Catalog
from moodlib.library.paths import resolve_path
from moodlib.library.scanner import FoundFile, display_tags, find_audio_files
from moodlib.prefetch import read_ahead
from moodlib.progress import Progress, ProgressCallback


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


def read_excerpts(
    path: str | Path, tagger: Tagger, *, info: AudioInfo | None = None
) -> TrackExcerpts:
    """Decode the parts of ``path`` that ``tagger`` reads (``Tagger.spans``), planned from the
    length the container states; a file that ends sooner is decoded whole.

    ``info`` is the file's ``probe`` when the caller has it already. Raises ``DecodeError``
    when the file cannot be probed or decoded.
    """
    info = probe(path) if info is None else info
    total_samples = round(info.duration_seconds * tagger.sample_rate)
    spans = tagger.spans(total_samples)
    waveforms = decode_spans(path, sample_rate=tagger.sample_rate, spans=spans)
    if spans == [(0, None)]:
        return TrackExcerpts.whole(waveforms[0])
    excerpts = TrackExcerpts(total_samples, tuple(waveforms))
    if tagger.fits(excerpts):
        return excerpts
    return TrackExcerpts.whole(decode(path, sample_rate=tagger.sample_rate))


def thread_counts(
    cores: int | None = None, workers: int | None = None, *, sleeping_waits: bool | None = None
) -> tuple[int, int]:
    """``(decode workers, intra-op threads of inference on the CPU)`` for a scan on ``cores``
    cores (by default the cores this process may run on).

    ``workers``, by default a quarter of the cores (at least one), decode. Inference takes
    every core when PyTorch's waiting OpenMP threads sleep (``sleeping_waits``; by default
    whether ``OMP_WAIT_POLICY`` is ``PASSIVE``, as the ``moodlib`` command sets it): a decode
    worker then holds a core only while it decodes. With spinning threads, inference leaves
    the workers' cores alone, since a spinning team runs at half speed when a core is taken.
    Per track, decoding the parts a pack reads costs 80 ms of CPU for the starter pack against
    990 ms of inference, and 66 ms against 84 ms for the MTG-Jamendo baseline
    (``docs/benchmarks.md``).
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = max(1, cores or 1)
    if sleeping_waits is None:
        sleeping_waits = os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
    workers = max(1, workers or cores // 4)
    return workers, cores if sleeping_waits else max(1, cores - workers)


@dataclass
class _Decoded:
    found: FoundFile
    excerpts: TrackExcerpts | None
    info: dict
    error: str | None


def scan(
    paths: Sequence[str | Path],
    catalog: Catalog,
    tagger: Tagger | Callable[[], Tagger],
    *,
    pack_name: str | None = None,
    workers: int | None = None,
    batch_tracks: int = 4,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> ScanResult:
    """Scan ``paths`` into ``catalog`` and tag every new or changed file.

    ``tagger`` is a Tagger, or a function making one: it is called only when a file needs
    tagging, so an unchanged library is rescanned without loading a model; ``pack_name`` (the
    tagger's pack by default) must then be given. ``workers`` decoding threads; by default
    ``thread_counts`` decides them and the intra-op threads of inference on the CPU.
    """
    if pack_name is None:
        if callable(tagger):
            raise TypeError("scan needs pack_name when tagger is a function making a Tagger")
        pack_name = tagger.pack.name
    result = ScanResult()
    roots = [resolve_path(p) for p in paths]
    result.missing_paths = [p for p in roots if not Path(p).exists()]
    roots = [p for p in roots if Path(p).exists()]
    reached: set[str] = set()
    found = list(find_audio_files(roots, reached=reached))
    todo = _changed_files(catalog, sorted(reached), found, pack_name, result)

    total = len(todo)
    done = 0
    if progress:
        progress(Progress(0, total))
    if not todo:
        return result
    if callable(tagger):
        tagger = tagger()
    workers, inference_threads = thread_counts(workers=workers)

    batch: list[tuple[int, _Decoded]] = []

    def flush() -> None:
        nonlocal done
        if not batch:
            return
        predictions = tagger.predict_excerpts([d.excerpts for _, d in batch])
        for (track_id, decoded), prediction in zip(batch, predictions, strict=True):
            catalog.put_prediction(track_id, pack_name, prediction.scores, prediction.embedding)
            result.results.append(TrackResult(decoded.found.path, track_id, prediction))
            done += 1
            if progress:
                progress(Progress(done, total, decoded.found.path))
        batch.clear()

    with (
        _intra_op_threads(inference_threads if tagger.device.type == "cpu" else None),
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool,
    ):
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
                    progress(Progress(done, total, decoded.found.path))
                continue
            batch.append((track_id, decoded))
            if len(batch) >= batch_tracks:
                flush()
        flush()
    result.cancelled = cancel is not None and cancel.is_set() and done < total
    return result


def _changed_files(
    catalog: Catalog,
    roots: list[str],
    found: list[FoundFile],
    pack_name: str,
    result: ScanResult,
) -> list[FoundFile]:
    """The files of ``found`` that need tagging; the unchanged ones go to ``result`` as
    skipped, links that dangle or loop as errors, and tracks below ``roots`` whose files are
    gone leave the catalog."""
    known = catalog.file_states(roots, pack_name)
    present = {item.path for item in found}
    result.removed = catalog.remove_tracks(
        state.id for path, state in known.items() if path not in present
    )
    todo = []
    for item in found:
        if item.error:  # a link that dangles or loops: reported like an unreadable file
            track_id = catalog.upsert_track(
                item.path, size=item.size, mtime_ns=item.mtime_ns, error=item.error
            )
            result.results.append(TrackResult(item.path, track_id, error=item.error))
            continue
        state = known.get(item.path)
        if state is not None and state.unchanged(item.size, item.mtime_ns):
            result.results.append(TrackResult(item.path, state.id, skipped=True))
        else:
            todo.append(item)
    return todo


@contextlib.contextmanager
def _intra_op_threads(count: int | None) -> Iterator[None]:
    """Run inference with ``count`` intra-op threads (None: leave torch's setting)."""
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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
        excerpts = read_excerpts(item.path, tagger, info=audio_info)
    except DecodeError as error:
        return _Decoded(item, None, info, error.reason)
    except Exception as error:  # any decoder failure is this file's error, not the scan's
        return _Decoded(item, None, info, f"{type(error).__name__}: {error}")
    return _Decoded(item, excerpts, info, None)
