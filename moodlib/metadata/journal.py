"""Journaled tag writes and their undo.

``write_plan`` says which tags each scanned track should carry (the CLI's ``write`` and the
GUI's write buttons both ask it). Every write goes through ``write_tracks``: the file's mood
values before and after are recorded in the catalog's write journal (one batch per command
or button press), so ``undo_last`` can put the previous values back. Mood values that are
not moodlib tags (a user's own "Chill", say) are kept: moodlib only replaces the values it
owns.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from moodlib import tags as vocabulary
from moodlib.library.catalog import Catalog, Track
from moodlib.metadata.errors import TagWriteError
from moodlib.metadata.tags import read_moods, write_moods

if TYPE_CHECKING:
    from moodlib.packs import Pack


@dataclass
class WriteResult:
    path: str
    before: list[str]
    after: list[str]
    changed: bool
    error: str | None = None


ProgressCallback = Callable[[int, int, str], None]


def merged_moods(existing: Sequence[str], ours: Sequence[str]) -> list[str]:
    """The file's values that moodlib does not own, then ``ours`` (no duplicates)."""
    owned = set(vocabulary.TAGS) | {t.lower() for t in ours}
    kept = [v for v in existing if v.strip().lower() not in owned]
    return kept + [t for i, t in enumerate(ours) if t not in ours[:i]]


def write_plan(
    catalog: Catalog,
    pack: Pack,
    tracks: Iterable[Track],
    max_tags: int | None = vocabulary.DEFAULT_MAX_TAGS,
) -> list[tuple[str, list[str]]]:
    """``(path, tags)`` for each of ``tracks`` that ``pack`` has scored and that read without
    error: the pack's tags under the write policy (at most ``max_tags``) with the user's
    decisions (``Catalog.tagging``), for ``write_tracks``."""
    return [
        (track.path, catalog.tagging(track, pack.name, pack.thresholds, max_tags).tags)
        for track in tracks
        if track.error is None and catalog.has_prediction(track.id, pack.name)
    ]


def write_tracks(
    catalog: Catalog,
    plan: Sequence[tuple[str, Sequence[str]]],
    *,
    description: str = "write",
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> list[WriteResult]:
    """Give each ``(path, tags)`` its tags, journaled as one batch; files already right
    are left untouched. With ``dry_run`` nothing is written and nothing journaled."""
    batch_id = None
    results = []
    for done, (path, tags) in enumerate(plan, start=1):
        if cancel is not None and cancel.is_set():
            break
        try:
            before = read_moods(path)
            after = merged_moods(before, list(tags))
            changed = after != before
            if changed and not dry_run:
                if batch_id is None:
                    batch_id = catalog.begin_write_batch(description)
                write_moods(path, after)
                catalog.journal_write(batch_id, path, before, after)
                _record_file_state(catalog, path)
            results.append(WriteResult(path, before, after, changed))
        except TagWriteError as error:
            results.append(WriteResult(path, [], list(tags), False, error.reason))
        if progress:
            progress(done, len(plan), path)
    return results


def undo_last(catalog: Catalog, *, all_batches: bool = False) -> list[WriteResult]:
    """Restore the values the newest write batch (or every batch) replaced.

    A file whose moods changed again since moodlib wrote them is not touched: its result
    carries an error saying so, and the batch stays undoable.
    """
    results = []
    batches = catalog.undoable_batches()
    for batch_id in batches if all_batches else batches[:1]:
        batch_results = []
        for entry in catalog.journal(batch_id):
            try:
                current = read_moods(entry.path)
                if current == entry.before:
                    batch_results.append(WriteResult(entry.path, current, current, False))
                    continue
                if current != entry.after:
                    batch_results.append(
                        WriteResult(
                            entry.path,
                            current,
                            entry.before,
                            False,
                            "moods changed since moodlib wrote them; left as they are",
                        )
                    )
                    continue
                write_moods(entry.path, entry.before)
                _record_file_state(catalog, entry.path)
                batch_results.append(WriteResult(entry.path, current, entry.before, True))
            except TagWriteError as error:
                batch_results.append(WriteResult(entry.path, [], entry.before, False, error.reason))
        if not any(r.error for r in batch_results):
            catalog.mark_undone(batch_id)
        results += batch_results
    return results


def _record_file_state(catalog: Catalog, path: str) -> None:
    stat = os.stat(path)
    catalog.update_file_state(path, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
