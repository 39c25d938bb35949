"""What every retraining on a user's corrections does first, whoever starts it.

The app's "Retrain on my corrections" button (``moodlib.gui.operations.retrain``) and
``moodlib-train finetune --from-catalog [--full]`` both call :func:`prepare`, then fine-tune
(:func:`trainer.finetune.finetune` or :func:`trainer.finetune_full.finetune_full`):

1. The base pack, by one rule (:func:`choose_base`): the pack named, or the active pack when
   none is; a personal pack (a head on its base's embeddings) stands for the pack it was
   learned on, so a retraining learns anew from that base on every decision rather than a
   head on a head; the base must store embeddings (the fast path learns from them, and both
   paths read their labels next to them).
2. The reviewed tracks the base has no embedding of (scanned with another pack only, or
   changed since) are scored by the base through the normal scan (:func:`moodlib.pipeline.
   scan` of their files), with the Tagger the caller provides: the app's cached one, or a new
   one made only when a file needs it.
3. The new pack's name, by one rule (:func:`new_pack_name`) unless the user gave one.

This module imports no learning library, so that the app can ask :func:`choose_base` on its
UI thread without loading them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from moodlib import config
from moodlib.inference import Tagger
from moodlib.library.catalog import Catalog
from moodlib.packs import Pack, PackError
from moodlib.packstore import PackStore
from moodlib.pipeline import ScanResult, scan
from moodlib.progress import Cancelled, Progress, ProgressCallback, report


class FinetuneError(Exception):
    """Nothing to learn, or no pack to learn it on: the message says which and why."""


def check_base(base: Pack) -> None:
    """Raise :class:`FinetuneError` unless ``base`` can be fine-tuned on (see the module)."""
    if base.head is not None:
        origin = base.personal_base or "its base pack"
        raise FinetuneError(
            f"{base.name} is a personal pack (a head on the embeddings of {origin}): "
            f"retrain {origin} instead"
        )
    if base.embedding_member is None:
        raise FinetuneError(f"{base.name} stores no embeddings, so it cannot be personalised")


def choose_base(store: PackStore, name: str | None = None, *, verify: bool = True) -> Pack:
    """The pack a retraining fine-tunes when the user names ``name`` (None: the active pack):
    that pack, or the pack it was learned on when it is a personal pack.

    ``verify``: check the base pack's files against their hashes (the new pack copies them).
    Raises ``PackError`` when ``name`` is not installed and :class:`FinetuneError` when its
    base is not, or stores no embeddings.
    """
    pack = store.get(name or config.active_pack_name(), verify=verify)
    if pack.personal_base is not None:
        try:
            pack = store.get(pack.personal_base, verify=verify)
        except PackError as error:
            raise FinetuneError(
                f"{pack.name} was learned on {pack.personal_base}, which is not installed"
            ) from error
    check_base(pack)
    return pack


def new_pack_name(store: PackStore, now: float | None = None) -> str:
    """``personal-YYYYmmdd-HHMM`` in local time (``now``, by default the present), with
    ``-2``, ``-3``... when that name is taken in ``store``."""
    stem = time.strftime("personal-%Y%m%d-%H%M", time.localtime(now))
    names, name, n = set(store.names()), stem, 1
    while name in names:
        n += 1
        name = f"{stem}-{n}"
    return name


def score_reviewed(
    catalog: Catalog,
    base: Pack,
    tagger: Callable[[Pack], Tagger],
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> ScanResult:
    """Scan with ``base`` the files of the reviewed tracks it has no embedding of.

    The scan of a list of files touches only those tracks: the catalog's other tracks stay, a
    file gone is reported in ``missing_paths``, and a file unchanged on disk is scored because
    ``base`` has not scored it. ``tagger(base)`` is called only when a file needs scoring.
    """
    paths = [
        catalog.track(track_id).path
        for track_id in catalog.reviewed_track_ids()
        if catalog.embedding(track_id, base.name) is None
    ]
    if not paths:
        return ScanResult()
    return scan(
        paths,
        catalog,
        lambda: tagger(base),
        pack_name=base.name,
        progress=progress,
        cancel=cancel,
    )


@dataclass
class Prepared:
    """A retraining ready to start: its base pack, the new pack's name, and the scan that
    scored reviewed tracks with the base (``scan.tagged``: those scored; ``scan.failed``:
    files that could not be decoded, left out of the training)."""

    base: Pack
    name: str
    scan: ScanResult

    @property
    def scored(self) -> list[str]:
        return [result.path for result in self.scan.tagged]


def prepare(
    catalog: Catalog,
    store: PackStore,
    base_name: str | None,
    tagger: Callable[[Pack], Tagger],
    *,
    name: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Prepared:
    """Choose the base (:func:`choose_base` of ``base_name``), score the reviewed tracks it has
    not scored (:func:`score_reviewed`, with ``tagger``), and name the new pack (``name``, or
    :func:`new_pack_name`).

    Raises ``PackError`` when ``base_name`` is not installed, :class:`FinetuneError` when it
    cannot be fine-tuned on or ``name`` is taken, and ``moodlib.progress.Cancelled`` when
    ``cancel`` is set during the scan (the tracks scored so far keep their scores).
    """
    report(progress, Progress(0, None, f"checking {base_name or config.active_pack_name()}"))
    base = choose_base(store, base_name)
    if name is not None and name in store.names():
        raise FinetuneError(f"a pack named {name} is already installed: choose another name")
    scanned = score_reviewed(catalog, base, tagger, progress=progress, cancel=cancel)
    if scanned.cancelled:
        raise Cancelled()
    return Prepared(base, name or new_pack_name(store), scanned)
