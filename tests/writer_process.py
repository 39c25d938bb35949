"""A tag write or undo in a child process that SIGKILLs itself at a chosen point.

The child runs ``journal.write_tracks`` or ``journal.undo_last`` on a catalog, counting the
steps that matter to a crash: every catalog transaction, temporary file, copy, fsync and
rename, each with an event before it and one after it. It kills itself with SIGKILL at the
chosen event, so that nothing (no ``finally``, no atexit) runs, as in a ``kill -9`` or a
power cut seen from the files' side. When it gets to the end it prints how many events it
went through.

``run(...)`` starts the child and waits for it; tests import it like ``media``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KILLED = -signal.SIGKILL


@dataclass(frozen=True)
class Kill:
    """Where the child kills itself: at event number ``event`` (from 1), or, when ``call``
    is given, before or after (``when``) the ``nth`` call of ``call`` (e.g. "replace")."""

    event: int | None = None
    call: str | None = None
    nth: int = 1
    when: str = "after"


def run(
    catalog: Path,
    operation: str,
    plan: list[tuple[str, list[str]]] | None = None,
    kill: Kill | None = None,
) -> subprocess.CompletedProcess:
    """Run ``operation`` ("write", "undo" or "undo-all") in a child; ``returncode`` is
    ``KILLED`` when it killed itself, and ``stdout`` holds ``{"events": N}`` when it ended."""
    job = {
        "catalog": str(catalog),
        "operation": operation,
        "plan": plan or [],
        "kill": None if kill is None else kill.__dict__,
    }
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, __file__, json.dumps(job)],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def _watch(kill: dict | None) -> dict[str, int]:
    """Count the watched calls, and SIGKILL this process where ``kill`` says."""
    import shutil
    import tempfile

    from moodlib.library.catalog import Catalog

    counts = {"events": 0}

    def event(name: str, when: str) -> None:
        counts["events"] += 1
        if when == "before":
            counts[name] = counts.get(name, 0) + 1
        if kill is None:
            return
        named = kill["call"] == name and kill["when"] == when and counts.get(name) == kill["nth"]
        if kill["event"] == counts["events"] or named:
            os.kill(os.getpid(), signal.SIGKILL)

    def watched(owner: object, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)

        def call(*args, **kwargs):
            event(name, "before")
            result = original(*args, **kwargs)
            event(name, "after")
            return result

        setattr(owner, attribute, call)

    watched(os, "replace", "replace")
    watched(os, "fsync", "fsync")
    watched(shutil, "copyfile", "copyfile")
    watched(tempfile, "mkstemp", "mkstemp")
    watched(Catalog._Tx, "__exit__", "commit")
    return counts


def _main(job: dict) -> None:
    from moodlib.library.catalog import Catalog
    from moodlib.metadata import journal

    counts = _watch(job["kill"])
    with Catalog(job["catalog"]) as catalog:
        if job["operation"] == "write":
            plan = [(path, tags) for path, tags in job["plan"]]
            journal.write_tracks(catalog, plan, description="killed writer")
        else:
            journal.undo_last(catalog, all_batches=job["operation"] == "undo-all")
    print(json.dumps({"events": counts["events"]}))


if __name__ == "__main__":
    _main(json.loads(sys.argv[1]))
