"""Bounded read-ahead: work on a thread pool, results in order, a few items in flight.

The scan decodes files ahead of inference, the trainer decodes audio ahead of its frontend:
both want the next files decoding while the current one is used, without queueing the whole
library (decoded audio is large) and with a way to stop early.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def read_ahead(
    pool: ThreadPoolExecutor,
    function: Callable[[Item], Result],
    items: Iterable[Item],
    depth: int,
    cancel: threading.Event | None = None,
) -> Iterator[Result]:
    """``function(item)`` of each item, in order, computed on ``pool`` with at most ``depth``
    calls submitted and not yet yielded. Once ``cancel`` is set, nothing more is submitted,
    what is queued is cancelled, and the iteration ends.

    >>> with ThreadPoolExecutor(2) as pool:
    ...     list(read_ahead(pool, lambda x: x * x, range(5), depth=2))
    [0, 1, 4, 9, 16]
    """
    pending: deque[Future[Result]] = deque()
    source = iter(items)
    exhausted = False
    while True:
        while not exhausted and len(pending) < max(1, depth):
            if cancel is not None and cancel.is_set():
                break
            try:
                item = next(source)
            except StopIteration:
                exhausted = True
                break
            pending.append(pool.submit(function, item))
        if not pending or (cancel is not None and cancel.is_set()):
            for future in pending:
                future.cancel()
            return
        yield pending.popleft().result()
