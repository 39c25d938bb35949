"""The GUI's long operations as plain functions, run in workers (``jobs.Job``).

Each opens its own catalog connection (SQLite in WAL mode lets the UI read meanwhile) and
calls the same core functions as the CLI: ``pipeline.scan`` and ``read_track``,
``journal.write_plan``, ``write_tracks`` and ``undo_last``, ``PackStore``. None of them
touches Qt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from moodlib import config
from moodlib.audio.frontend import mel_frequencies
from moodlib.gui.jobs import Progress, Report
from moodlib.inference import Tagger
from moodlib.library.catalog import Catalog
from moodlib.metadata import journal
from moodlib.metadata.journal import WriteResult, undo_last, write_tracks
from moodlib.packs import Pack, verify_pack
from moodlib.packstore import PackStore
from moodlib.pipeline import ScanProgress, ScanResult, read_track, scan
from moodlib.tags import predicted_tags


class TaggerCache:
    """The loaded ``Tagger`` of the pack in use, shared by scans and spectrogram previews.

    The pack's files are verified against their hashes when its Tagger is made (the window
    reads manifests only). A pack reinstalled under the same name has other file hashes,
    hence another Tagger.
    """

    def __init__(self, device: str = "auto") -> None:
        self.device = device
        self._lock = threading.Lock()
        self._taggers: dict[tuple, Tagger] = {}

    def get(self, pack: Pack) -> Tagger:
        key = (pack.name, str(pack.root), tuple(sorted(pack.files.items())))
        with self._lock:
            if key not in self._taggers:
                verify_pack(pack)
                self._taggers = {key: Tagger(pack, device=self.device)}
            return self._taggers[key]


def open_catalog() -> Catalog:
    return Catalog(config.catalog_path())


# -- scanning ------------------------------------------------------------------------------


def scan_folders(
    folders: Sequence[str], pack: Pack, taggers: TaggerCache, *, report: Report, cancel
) -> ScanResult:
    """Scan ``folders`` incrementally and tag new or changed files with ``pack``."""
    report(Progress(0, None, f"loading {pack.name}"))
    tagger = taggers.get(pack)

    def on_progress(progress: ScanProgress) -> None:
        report(Progress(progress.done, progress.total, progress.path or ""))

    with open_catalog() as catalog:
        return scan(
            folders, catalog, tagger, pack_name=pack.name, progress=on_progress, cancel=cancel
        )


def remove_folder(folder: str, *, report: Report, cancel) -> int:
    """Forget the tracks below ``folder`` (the files are not touched); returns how many."""
    with open_catalog() as catalog:
        return catalog.remove_missing([folder], set())


# -- the spectrogram -----------------------------------------------------------------------


@dataclass
class Preview:
    """The mel spectrogram a pack computes for one track, and how to place it on axes."""

    path: str
    pack_name: str
    mel: np.ndarray  # (n_mels, frames), as Tagger.mel gives it
    start_seconds: float  # the time in the file of frame 0's centre
    audio_seconds: float  # decoded audio in the mel; beyond it, the silence a short track is
    # padded with up to one segment
    seconds_per_frame: float
    band_hz: np.ndarray  # centre frequency of each mel band
    duration_seconds: float
    level_label: str  # what the values are: "dB", or the log compression


def load_preview(path: str, pack: Pack, taggers: TaggerCache, *, report: Report, cancel) -> Preview:
    """The mel of the part of ``path`` that a scan with ``pack`` reads (``read_track``)."""
    tagger = taggers.get(pack)
    audio = read_track(path, tagger)
    with torch.inference_mode():
        mel = tagger.mel(audio.waveform).float().cpu().numpy()
    frontend = tagger.frontend.config()
    return Preview(
        path=path,
        pack_name=pack.name,
        mel=mel,
        start_seconds=audio.offset_seconds,
        audio_seconds=len(audio.waveform) / tagger.sample_rate,
        seconds_per_frame=tagger.hop_length / tagger.sample_rate,
        band_hz=mel_band_frequencies(frontend),
        duration_seconds=audio.info.duration_seconds,
        level_label="dB" if frontend["scale"] == "essentia_db" else "log(1 + C·mel)",
    )


def mel_band_frequencies(frontend: dict) -> np.ndarray:
    """Centre frequency in Hz of each band of a ``MelFrontend`` configuration (the peaks of
    its filterbank: the band edges are ``n_mels + 2`` mel frequencies)."""
    f_max = frontend["sample_rate"] / 2 if frontend["f_max"] is None else frontend["f_max"]
    edges = mel_frequencies(
        n_mels=frontend["n_mels"] + 2, f_min=frontend["f_min"], f_max=f_max, htk=frontend["htk"]
    )
    return edges[1:-1]


# -- review in bulk ------------------------------------------------------------------------


def accept_predicted(track_ids: Sequence[int], pack: Pack, *, report: Report, cancel) -> int:
    """Accept every tag reaching its threshold on each track that the user did not decide
    on yet (a reject stays a reject); returns how many decisions were made. Cancelling
    keeps the decisions on the tracks read so far."""
    to_accept: dict[str, list[int]] = {}
    with open_catalog() as catalog:
        for done, track_id in enumerate(track_ids, start=1):
            if cancel.is_set():
                break
            scores = catalog.prediction(track_id, pack.name)
            if scores is not None:
                decided = catalog.decisions(track_id)
                for tag in predicted_tags(scores, pack.thresholds):
                    if tag not in decided:
                        to_accept.setdefault(tag, []).append(track_id)
            if done % 50 == 0 or done == len(track_ids):
                report(Progress(done, len(track_ids), ""))
        for tag, tracks in to_accept.items():  # one transaction per tag, not per decision
            catalog.set_decisions(tracks, tag, "accept")
    return sum(len(tracks) for tracks in to_accept.values())


# -- writing and undoing -------------------------------------------------------------------


@dataclass
class WritePlan:
    """What a write would do: per file, the tags, and a dry run's verdict."""

    pack_name: str
    plan: list[tuple[str, list[str]]]
    dry_run: list[WriteResult]

    @property
    def changes(self) -> int:
        return sum(r.changed for r in self.dry_run)

    @property
    def errors(self) -> int:
        return sum(bool(r.error) for r in self.dry_run)


def plan_write(track_ids: Sequence[int] | None, pack: Pack, *, report: Report, cancel) -> WritePlan:
    """The tags each track (``None``: every track) should carry, checked by a dry run
    against what the files hold now."""
    with open_catalog() as catalog:
        tracks = (
            catalog.tracks()
            if track_ids is None
            else [catalog.track(track_id) for track_id in track_ids]
        )
        plan = journal.write_plan(catalog, pack, tracks)
        dry_run = write_tracks(
            catalog, plan, dry_run=True, progress=_write_progress(report), cancel=cancel
        )
    return WritePlan(pack.name, plan, dry_run)


def write_plan(plan: WritePlan, *, report: Report, cancel) -> list[WriteResult]:
    changed = [
        (r.path, tags) for r, (_, tags) in zip(plan.dry_run, plan.plan, strict=True) if r.changed
    ]
    with open_catalog() as catalog:
        return write_tracks(
            catalog,
            changed,
            description=f"moodlib gui write ({plan.pack_name})",
            progress=_write_progress(report),
            cancel=cancel,
        )


def undo_last_write(*, report: Report, cancel) -> list[WriteResult]:
    report(Progress(0, None, "restoring the moods the last write replaced"))
    with open_catalog() as catalog:
        return undo_last(catalog)


def last_write_size() -> int | None:
    """How many files the newest undoable write batch changed (None: nothing to undo)."""
    with open_catalog() as catalog:
        batches = catalog.undoable_batches()
        return len(catalog.journal(batches[0])) if batches else None


def _write_progress(report: Report) -> Callable[[int, int, str], None]:
    return lambda done, total, path: report(Progress(done, total, path))


# -- model packs ---------------------------------------------------------------------------


def install_baseline(url: str, *, report: Report, cancel) -> Pack:
    def on_progress(done: int, total: int | None) -> None:
        report(Progress(done, total, "downloading mtg-baseline"))

    return PackStore().install_mtg_baseline(url=url, progress=on_progress)


def import_pack_folder(folder: str, *, report: Report, cancel) -> Pack:
    report(Progress(0, None, f"verifying {Path(folder).name}"))
    return PackStore().install_folder(folder)


def import_checkpoint(
    checkpoint: str, name: str, architecture: str, *, report: Report, cancel
) -> Pack:
    report(Progress(0, None, f"importing {Path(checkpoint).name}"))
    return PackStore().import_checkpoint(checkpoint, name=name, architecture=architecture)
