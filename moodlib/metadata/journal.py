"""Journaled tag writes, their undo, and the recovery after a crash.

``write_plan`` says which tags each scanned track should carry (the CLI's ``write`` and the
GUI's write buttons both ask it). Every write goes through ``write_tracks``, one batch per
command or button press, holding the catalog's write lock (``lock.WriteLock``):

1. each file's moods and tag are read and the new moods merged in (``merged_moods``);
2. the intent (path, moods before and after, the tag before) is journaled durably, as a
   ``pending`` entry, before the file is touched;
3. the file is replaced by an edited copy (``write_moods``), then its entry is ``written``.

``undo_last`` journals its intent the same way (``undoing``), puts the previous values back
(and takes away a tag the write added to a file that had none), then marks entries ``undone``.

A crash (kill -9, a power cut) can stop either between any two steps. ``recover`` settles
what it left, without touching a music file: a ``pending`` entry whose file holds the new
moods is ``written`` (and undoable), one whose file holds the old moods is dropped; an
``undoing`` entry is ``undone`` or ``written`` again by the same test; the temporary copies
beside those files are removed. The CLI and the app run it at start-up; every write and undo
runs it first.

Only values moodlib wrote are moodlib's: a later write replaces them, but a mood value it
did not write (a user's "Chill", or a "Happy" set by hand, one of the 56 tags or not) stays,
unless the user rejected that tag in review or asked for it (``replace_existing``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from moodlib import vocabulary
from moodlib.library.catalog import Catalog, JournalEntry, Track, WriteIntent
from moodlib.metadata.atomic import temp_prefix
from moodlib.metadata.errors import TagWriteError
from moodlib.metadata.lock import WriteLock
from moodlib.metadata.tags import read_mood_state, read_moods, write_moods
from moodlib.progress import Progress, ProgressCallback

if TYPE_CHECKING:
    from moodlib.packs import Pack

# Files whose intents (to write, or to undo) are journaled in one durable transaction before
# they are touched: at most this many are left to settle after a crash.
INTENT_CHUNK = 64


@dataclass
class WriteResult:
    path: str
    before: list[str]
    after: list[str]
    changed: bool
    error: str | None = None


def merged_moods(
    existing: Sequence[str],
    ours: Sequence[str],
    *,
    written: Iterable[str] = (),
    rejected: Iterable[str] = (),
) -> list[str]:
    """The file's values that moodlib did not write, then ``ours`` (no duplicates).

    ``written``: the values moodlib wrote into the file before (``Catalog.moods_written``),
    replaced by ``ours``. ``rejected``: tags the user rejected, removed whoever wrote them.
    A value of ``ours`` that the file holds already in another spelling ("Happy" for "happy")
    is not added again. Values compare without case and surrounding spaces.
    """
    dropped = {_fold(value) for value in rejected}
    written = set(written)
    kept = [v for v in existing if v not in written and _fold(v) not in dropped]
    present = {_fold(v) for v in kept}
    added = []
    for tag in ours:
        if _fold(tag) not in present:
            present.add(_fold(tag))
            added.append(tag)
    return kept + added


def _fold(value: str) -> str:
    return value.strip().lower()


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


@dataclass
class _Planned:
    result: WriteResult
    before_tag: str = ""
    entry_id: int | None = None


def write_tracks(
    catalog: Catalog,
    plan: Sequence[tuple[str, Sequence[str]]],
    *,
    description: str = "write",
    dry_run: bool = False,
    replace_existing: bool = False,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> list[WriteResult]:
    """Give each ``(path, tags)`` its tags, journaled as one batch; files already right
    are left untouched. With ``dry_run`` nothing is written and nothing journaled.

    ``replace_existing``: also replace the file's values that are among the 56 tags though
    moodlib did not write them (they are kept otherwise).
    """
    results: list[WriteResult] = []

    def stopped() -> bool:
        return cancel is not None and cancel.is_set()

    def report(result: WriteResult) -> None:
        results.append(result)
        if progress:
            progress(Progress(len(results), len(plan), result.path))

    if dry_run:
        for path, tags in plan:
            if stopped():
                break
            report(_plan(catalog, path, tags, replace_existing).result)
        return results
    batch_id = None
    with WriteLock(catalog.path):
        _settle(catalog)
        for start in range(0, len(plan), INTENT_CHUNK):
            if stopped():
                break
            chunk = plan[start : start + INTENT_CHUNK]
            planned = [_plan(catalog, path, tags, replace_existing) for path, tags in chunk]
            changes = [p for p in planned if p.result.changed]
            if changes:
                batch_id = batch_id or catalog.begin_write_batch(description)
                entry_ids = catalog.record_intents(batch_id, [_intent(p) for p in changes])
                for p, entry_id in zip(changes, entry_ids, strict=True):
                    p.entry_id = entry_id
            for done, p in enumerate(planned):
                if stopped():
                    catalog.forget_journal_entries(
                        q.entry_id for q in planned[done:] if q.entry_id is not None
                    )
                    return results
                report(_write(catalog, p))
    return results


def _plan(catalog: Catalog, path: str, tags: Sequence[str], replace_existing: bool) -> _Planned:
    """What writing ``tags`` to ``path`` changes (read from the file, not written yet)."""
    try:
        state = read_mood_state(path)
    except TagWriteError as error:
        return _Planned(WriteResult(path, [], list(tags), False, error.reason))
    written = catalog.moods_written(path)
    if replace_existing:
        written |= {value for value in state.moods if vocabulary.is_tag(value)}
    track = catalog.track_by_path(path)
    decisions = catalog.decisions(track.id) if track is not None else {}
    rejected = [tag for tag, decision in decisions.items() if decision == "reject"]
    after = merged_moods(state.moods, list(tags), written=written, rejected=rejected)
    return _Planned(WriteResult(path, state.moods, after, after != state.moods), state.tag)


def _intent(planned: _Planned) -> WriteIntent:
    result = planned.result
    return WriteIntent(result.path, result.before, result.after, planned.before_tag)


def _write(catalog: Catalog, planned: _Planned) -> WriteResult:
    """Carry out a planned write whose intent is journaled; settle its entry."""
    result = planned.result
    if planned.entry_id is None:
        return result
    try:
        write_moods(result.path, result.after, expect=result.before)
    except TagWriteError as error:  # the file is as it was
        catalog.forget_journal_entries([planned.entry_id])
        return WriteResult(result.path, result.before, result.after, False, error.reason)
    catalog.set_journal_state([planned.entry_id], "written")
    _record_file_state(catalog, result.path)
    return result


def undo_last(catalog: Catalog, *, all_batches: bool = False) -> list[WriteResult]:
    """Restore the values the newest write batch (or every batch) replaced, and take away the
    tag a write added to a file that had none.

    A file whose moods changed again since moodlib wrote them is not touched: its result
    carries an error saying so, and the batch stays undoable.
    """
    results = []
    with WriteLock(catalog.path):
        _settle(catalog)
        batches = catalog.undoable_batches()
        for batch_id in batches if all_batches else batches[:1]:
            entries = [e for e in catalog.journal(batch_id) if e.state == "written"]
            batch_results = []
            for start in range(0, len(entries), INTENT_CHUNK):
                chunk = entries[start : start + INTENT_CHUNK]
                catalog.set_journal_state([e.id for e in chunk], "undoing", durable=True)
                batch_results += [_undo(catalog, entry) for entry in chunk]
            if not any(r.error for r in batch_results):
                catalog.mark_undone(batch_id)
            results += batch_results
    return results


def _undo(catalog: Catalog, entry: JournalEntry) -> WriteResult:
    """Put back what ``entry`` replaced; settle it as ``undone``, or ``written`` when the file
    is left as it is."""
    try:
        current = read_moods(entry.path)
        if current == entry.before:
            catalog.set_journal_state([entry.id], "undone")
            return WriteResult(entry.path, current, current, False)
        if current != entry.after:
            catalog.set_journal_state([entry.id], "written")
            reason = "moods changed since moodlib wrote them; left as they are"
            return WriteResult(entry.path, current, entry.before, False, reason)
        write_moods(
            entry.path, entry.before, expect=entry.after, drop_empty_tag=entry.before_tag == ""
        )
    except TagWriteError as error:
        catalog.set_journal_state([entry.id], "written")
        return WriteResult(entry.path, [], entry.before, False, error.reason)
    catalog.set_journal_state([entry.id], "undone")
    _record_file_state(catalog, entry.path)
    return WriteResult(entry.path, current, entry.before, True)


@dataclass
class Recovery:
    """What ``recover`` found of writes and undos that a crash interrupted, by file."""

    written: list[str] = field(default_factory=list)  # replaced: the write stands, undoable
    not_written: list[str] = field(default_factory=list)  # never replaced: entry dropped
    undone: list[str] = field(default_factory=list)  # the undo had restored them
    not_undone: list[str] = field(default_factory=list)  # not restored: undoable again
    removed: list[str] = field(default_factory=list)  # temporary copies deleted
    unchecked: list[tuple[str, str]] = field(default_factory=list)  # (path, why): next time

    def summary(self) -> str:
        """One line for people, "" when there was nothing to recover."""
        counts = [
            (len(self.written), "written"),
            (len(self.not_written), "not written"),
            (len(self.undone), "undone"),
            (len(self.not_undone), "not undone (undo again)"),
            (len(self.removed), "temporary copies removed"),
            (len(self.unchecked), "could not be checked"),
        ]
        found = ", ".join(f"{n} {what}" for n, what in counts if n)
        return f"recovered from an interrupted write or undo: {found}" if found else ""


def recover(catalog: Catalog) -> Recovery:
    """Settle the journal entries a crashed write or undo left, and remove its temporary
    copies. Nothing is done while another process is writing (it settles them itself)."""
    lock = WriteLock(catalog.path)
    if not lock.acquire(wait=False):
        return Recovery()
    try:
        return _settle(catalog)
    finally:
        lock.release()


def _settle(catalog: Catalog) -> Recovery:
    """``recover``, for a caller holding the write lock."""
    recovery = Recovery()
    for entry in catalog.unsettled_journal():
        recovery.removed += _remove_temporary_copies(entry.path)
        try:
            current = read_moods(entry.path)
        except TagWriteError as error:
            if os.path.lexists(entry.path) or not os.path.isdir(os.path.dirname(entry.path)):
                # Unreadable now, or on a drive that is not there: tried again next time.
                recovery.unchecked.append((entry.path, error.reason))
                continue
            current = None  # deleted since: there is nothing left to write or undo
        if entry.state == "pending":
            if current in (entry.before, None):
                catalog.forget_journal_entries([entry.id])
                recovery.not_written.append(entry.path)
            else:  # the new moods, or changed by someone since: ``undo`` will tell
                catalog.set_journal_state([entry.id], "written")
                recovery.written.append(entry.path)
        elif current in (entry.before, None):
            catalog.set_journal_state([entry.id], "undone")
            recovery.undone.append(entry.path)
        else:
            catalog.set_journal_state([entry.id], "written")
            recovery.not_undone.append(entry.path)
    return recovery


def _remove_temporary_copies(path: str) -> list[str]:
    """Delete the copies ``atomic.replace_with_edited_copy`` was making of ``path``."""
    target = Path(os.path.realpath(path))
    prefix = temp_prefix(target)
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    removed = []
    for name in names:
        if name.startswith(prefix):
            copy = target.parent / name
            try:
                copy.unlink()
            except OSError:
                continue
            removed.append(str(copy))
    return removed


def _record_file_state(catalog: Catalog, path: str) -> None:
    stat = os.stat(path)
    catalog.update_file_state(path, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
