"""The GUI's long operations as plain functions, run in workers (``jobs.Job``).

Each opens its own catalog connection (SQLite in WAL mode lets the UI read meanwhile) and
calls the same core functions as the CLI: ``pipeline.scan`` and ``read_track``,
``journal.write_plan``, ``write_tracks`` and ``undo_last``, ``write_playlists``, ``PackStore``,
and the fine-tuner ``trainer.finetune``. None of them touches Qt.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from moodlib import config
from moodlib.audio.frontend import mel_frequencies
from moodlib.inference import Tagger
from moodlib.library.catalog import Catalog
from moodlib.library.paths import resolve_path
from moodlib.metadata import journal
from moodlib.metadata.journal import WriteResult, undo_last, write_tracks
from moodlib.packs import Pack, PackError, verify_pack
from moodlib.packstore import PackStore
from moodlib.pipeline import ScanResult, read_track, scan
from moodlib.playlists import Playlist, write_playlists
from moodlib.progress import Cancelled, Progress, ProgressCallback
from moodlib.vocabulary import tags_to_write

if TYPE_CHECKING:
    from trainer.finetune import FinetuneResult


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

    @property
    def loaded(self) -> list[str]:
        """The names of the packs whose Tagger is made (one at most)."""
        with self._lock:
            return [name for name, _root, _files in self._taggers]

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
    folders: Sequence[str], pack: Pack, taggers: TaggerCache, *, progress: ProgressCallback, cancel
) -> ScanResult:
    """Scan ``folders`` incrementally and tag new or changed files with ``pack``.

    The pack's model is loaded (once, in ``taggers``) only when a file needs tagging: a rescan
    of an unchanged library loads none.
    """
    with open_catalog() as catalog:
        return scan(
            folders,
            catalog,
            lambda: taggers.get(pack),
            pack_name=pack.name,
            progress=progress,
            cancel=cancel,
        )


def remove_folder(folder: str, *, progress: ProgressCallback, cancel) -> int:
    """Forget the tracks below ``folder`` (the files are not touched); returns how many."""
    with open_catalog() as catalog:
        return catalog.remove_missing([resolve_path(folder)], set())


# -- the spectrogram -----------------------------------------------------------------------


@dataclass
class Preview:
    """The mel spectrogram a pack computes for one track, and how to place it on axes."""

    path: str
    pack_name: str
    mel: np.ndarray  # (n_mels, frames), as Tagger.mel gives it
    start_seconds: float  # the time in the file of frame 0's centre
    audio_seconds: float  # decoded audio in the mel; beyond it, the track repeated, as a
    # short track is repeated to one segment
    seconds_per_frame: float
    band_hz: np.ndarray  # centre frequency of each mel band
    duration_seconds: float
    level_label: str  # what the values are: "dB", or the log compression
    segments: list[tuple[float, float]] = field(default_factory=list)  # (start, length) in
    # seconds of the file of each segment the model reads, as ``Tagger.segments`` cuts them


def load_preview(
    path: str, pack: Pack, taggers: TaggerCache, *, progress: ProgressCallback, cancel
) -> Preview:
    """The mel of the part of ``path`` that a scan with ``pack`` reads (``read_track``)."""
    tagger = taggers.get(pack)
    audio = read_track(path, tagger)
    with torch.inference_mode():
        mel = tagger.mel(audio.waveform).float().cpu().numpy()
    frontend = tagger.frontend.config()
    seconds_per_frame = tagger.hop_length / tagger.sample_rate
    segment_seconds = tagger.pack.segmenting.frames * seconds_per_frame
    segments = [
        (audio.offset_seconds + start * seconds_per_frame, segment_seconds)
        for start in tagger.pack.segmenting.starts(mel.shape[1])
    ]
    return Preview(
        path=path,
        pack_name=pack.name,
        mel=mel,
        start_seconds=audio.offset_seconds,
        audio_seconds=len(audio.waveform) / tagger.sample_rate,
        seconds_per_frame=seconds_per_frame,
        band_hz=mel_band_frequencies(frontend),
        duration_seconds=audio.info.duration_seconds,
        level_label="dB" if frontend["scale"] == "essentia_db" else "log(1 + C·mel)",
        segments=segments,
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


def accept_predicted(
    track_ids: Sequence[int], pack: Pack, *, progress: ProgressCallback, cancel
) -> int:
    """Accept the tags the write policy picks (``tags_to_write``, at most the setting's
    number) on each track, where the user did not decide on them yet (a reject stays a
    reject); returns how many decisions were made. Cancelling
    keeps the decisions on the tracks read so far."""
    to_accept: dict[str, list[int]] = {}
    max_tags = config.max_tags()
    with open_catalog() as catalog:
        for done, track_id in enumerate(track_ids, start=1):
            if cancel.is_set():
                break
            scores = catalog.prediction(track_id, pack.name)
            if scores is not None:
                decided = catalog.decisions(track_id)
                for tag in tags_to_write(scores, pack.thresholds, max_tags):
                    if tag not in decided:
                        to_accept.setdefault(tag, []).append(track_id)
            if done % 50 == 0 or done == len(track_ids):
                progress(Progress(done, len(track_ids), ""))
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


def plan_write(
    track_ids: Sequence[int] | None, pack: Pack, *, progress: ProgressCallback, cancel
) -> WritePlan:
    """The tags each track (``None``: every track) should carry, checked by a dry run
    against what the files hold now."""
    with open_catalog() as catalog:
        tracks = (
            catalog.tracks()
            if track_ids is None
            else [catalog.track(track_id) for track_id in track_ids]
        )
        plan = journal.write_plan(catalog, pack, tracks, config.max_tags())
        dry_run = write_tracks(catalog, plan, dry_run=True, progress=progress, cancel=cancel)
    return WritePlan(pack.name, plan, dry_run)


def write_plan(plan: WritePlan, *, progress: ProgressCallback, cancel) -> list[WriteResult]:
    changed = [
        (r.path, tags) for r, (_, tags) in zip(plan.dry_run, plan.plan, strict=True) if r.changed
    ]
    with open_catalog() as catalog:
        return write_tracks(
            catalog,
            changed,
            description=f"moodlib gui write ({plan.pack_name})",
            progress=progress,
            cancel=cancel,
        )


def undo_last_write(*, progress: ProgressCallback, cancel) -> list[WriteResult]:
    progress(Progress(0, None, "restoring the moods the last write replaced"))
    with open_catalog() as catalog:
        return undo_last(catalog)


def last_write_size() -> int | None:
    """How many files the newest undoable write batch changed (None: nothing to undo)."""
    with open_catalog() as catalog:
        batches = catalog.undoable_batches()
        return sum(e.state == "written" for e in catalog.journal(batches[0])) if batches else None


def make_playlists(
    folder: str | Path, pack: Pack, *, progress: ProgressCallback, cancel
) -> list[Playlist]:
    """One M3U8 playlist per tag in ``folder`` (``playlists.write_playlists``)."""
    progress(Progress(0, None, f"writing playlists into {folder}"))
    with open_catalog() as catalog:
        return write_playlists(catalog, pack, folder)


# -- model packs ---------------------------------------------------------------------------


def import_pack_folder(folder: str, *, progress: ProgressCallback, cancel) -> Pack:
    progress(Progress(0, None, f"verifying {Path(folder).name}"))
    return PackStore().install_folder(folder)


def import_checkpoint(
    checkpoint: str, name: str, architecture: str, *, progress: ProgressCallback, cancel
) -> Pack:
    progress(Progress(0, None, f"importing {Path(checkpoint).name}"))
    return PackStore().import_checkpoint(checkpoint, name=name, architecture=architecture)


# -- retraining on the user's corrections --------------------------------------------------


def retrain_base(pack: Pack | None, store: PackStore | None = None) -> tuple[Pack | None, str]:
    """The pack a retraining fine-tunes when ``pack`` is active (``trainer.finetune_prepare.
    choose_base``: a personal pack is retrained from its own base, on all the decisions), and
    a sentence saying so, or why there is none. Reads manifests only: the UI thread asks it."""
    from trainer.finetune_prepare import FinetuneError, choose_base

    if pack is None:
        return None, "Choose a model pack first (Models ▸ Model packs…)"
    try:
        base = choose_base(store or PackStore(), pack.name, verify=False)
    except (FinetuneError, PackError) as error:
        return None, str(error)
    return base, (
        f"Learn a personal pack from your accepted and rejected tags, on top of {base.name}"
    )


@dataclass
class Retrained:
    """How a retraining ended: a result, a problem to tell the user about, or cancelled."""

    base: str
    result: FinetuneResult | None = None
    problem: str | None = None  # a FinetuneError's message: not enough corrections...
    scored: list[str] = field(default_factory=list)  # reviewed tracks first scored by base

    @property
    def cancelled(self) -> bool:
        return self.result is None and self.problem is None


def retrain(
    base_name: str, taggers: TaggerCache, *, progress: ProgressCallback, cancel
) -> Retrained:
    """Fine-tune ``base_name`` on the catalog's decisions into a new personal pack (installed,
    not made active), as ``moodlib-train finetune --from-catalog`` does: ``trainer.
    finetune_prepare.prepare`` (reviewed tracks the base has not scored are scanned with it
    first, with the cached Tagger), then ``trainer.finetune.finetune``."""
    from trainer.finetune import finetune
    from trainer.finetune_prepare import FinetuneError, prepare

    store = PackStore()
    outcome = Retrained(base_name)
    try:
        with open_catalog() as catalog:
            prepared = prepare(
                catalog, store, base_name, taggers.get, progress=progress, cancel=cancel
            )
            outcome.base, outcome.scored = prepared.base.name, prepared.scored
            outcome.result = finetune(
                catalog, prepared.base, store, name=prepared.name, cancel=cancel,
                progress=progress,
            )  # fmt: skip
    except Cancelled:
        pass
    except FinetuneError as error:
        outcome.problem = str(error)
    return outcome
