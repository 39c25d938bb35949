"""Progress and cancellation: one shape for every long job in the app, the trainer and the GUI.

A long function takes two keyword arguments:

- ``progress: ProgressCallback | None``, called with a :class:`Progress` as the work advances
  (``done`` of ``total`` in ``unit``: files, bytes or percent; ``text``: what is being worked on);
- ``cancel: threading.Event | None``, the cancel token, which the caller sets and the function
  polls between units of work.

What a cancelled function does depends on whether a part of the work is worth keeping: one that
has a partial result (a scan, a batch of writes) stops and returns it marked as cancelled; one
that has none (fine-tuning, a download) raises :class:`Cancelled` through
:func:`raise_if_cancelled`, before it saves anything.

The CLI shows progress with tqdm, the GUI with its status bar; both take this same shape.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Unit = Literal["files", "bytes", "percent"]


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` (None: not known yet) in ``unit``, and what is being worked on."""

    done: int
    total: int | None
    text: str = ""
    unit: Unit = "files"

    @classmethod
    def fraction(cls, fraction: float, text: str = "") -> Progress:
        """A share of the work, as a percentage (for work that is not counted in files)."""
        return cls(round(100 * min(max(fraction, 0.0), 1.0)), 100, text, "percent")


ProgressCallback = Callable[[Progress], None]


class Cancelled(Exception):
    """The user cancelled the work before it finished; nothing was saved."""


def report(progress: ProgressCallback | None, update: Progress) -> None:
    """Call ``progress`` with ``update``, when there is a callback."""
    if progress is not None:
        progress(update)


def raise_if_cancelled(cancel: threading.Event | None) -> None:
    """Raise :class:`Cancelled` when the cancel token is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled()


def tqdm_callback(bar: Any, *, show_text: bool = True) -> ProgressCallback:
    """A callback that moves the tqdm progress bar ``bar`` (how the CLIs show progress)."""

    def on_progress(update: Progress) -> None:
        bar.total = update.total
        bar.n = update.done
        if show_text and update.text:
            bar.set_postfix_str(Path(update.text).name[-40:], refresh=False)
        bar.refresh()

    return on_progress
