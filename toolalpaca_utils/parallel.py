"""One way to run a stage's work items in parallel and keep every finished result at once.

:func:`run_parallel` runs ``work(item)`` for every item, at most ``workers`` at a time (one
per server replica), and hands each result ``work`` yields to ``keep`` under one lock — the
stage appends it to its JSONL file there, so a killed run resumes from what is on disk — with
a tqdm bar advanced per result. ``keep`` returning True stops the run early: no further item
starts, and the ones running are waited for. At most ``workers`` items are ever submitted, so
an early stop or an error wastes little.

With an ``endpoint`` policy (:mod:`toolalpaca_utils.endpoint`) an item whose LLM endpoint failed
is tried again after a back-off, then given up without a result (no reject: a rerun retries it);
after a few items in a row given up, no further item starts, the running ones finish and keep
their results, and :class:`~toolalpaca_utils.endpoint.EndpointUnreachableError` is raised. Items
given up here and there are tried once more at the end; if any is still without a result, the
same error names them (``label``), so no stage hands back a partial run as a whole one.
"""
from __future__ import annotations

import functools
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Iterable, Sequence, TypeVar

from .endpoint import EndpointPolicy, EndpointTracker

T = TypeVar("T")
R = TypeVar("R")


class _Keeper:
    """Hands results to ``keep`` one at a time and advances the bar; remembers an early stop
    (``keep`` said so) and counts what it kept. ``halt`` (an endpoint stop) starts no new item
    but keeps the results of the running ones."""

    def __init__(self, keep: Callable[[Any], bool | None], bar: Any, postfix: Callable[[], dict] | None,
                 halt: threading.Event | None = None):
        self.keep, self.bar, self.postfix, self.halt = keep, bar, postfix, halt
        self.lock = threading.Lock()
        self.stopped = False
        self.kept = 0

    @property
    def halted(self) -> bool:
        """Whether no further item may start."""
        return self.stopped or (self.halt is not None and self.halt.is_set())

    def hand(self, result: Any) -> bool:
        """Keep one result (unless the run has stopped); True once the run should stop."""
        with self.lock:
            if self.stopped:
                return True
            self.stopped = bool(self.keep(result))
            self.kept += 1
            if self.postfix is not None:
                self.bar.set_postfix(self.postfix(), refresh=False)
            self.bar.update(1)
            return self.stopped


def worker_count(client: Any, workers: int | None = None) -> int:
    """``workers``, or by default ``client.parallelism`` (one per server replica), at least 1."""
    return max(1, workers or getattr(client, "parallelism", 1))


def run_parallel(items: Iterable[T], work: Callable[[T], Iterable[R]], keep: Callable[[R], bool | None], *,
                 workers: int = 1, ordered: bool = False, total: int | None = None, initial: int = 0,
                 desc: str | None = None, unit: str = "it", progress: bool = True,
                 postfix: Callable[[], dict] | None = None, endpoint: EndpointPolicy | None = None,
                 label: Callable[[T], str] = str) -> bool:
    """Run ``work`` on every item and hand each result it yields to ``keep``; True if stopped early.

    ``work(item)`` returns an iterable of results (a generator streams them as they finish).
    With ``workers`` > 1 items run in a thread pool; ``keep`` is still called by one thread at a
    time. ``ordered`` hands results over in item order whichever worker finishes first (a later
    item's results wait), otherwise as they come. The bar counts from ``initial`` to ``total``
    (default: one result per item); ``postfix()`` is shown on it. A worker's exception is raised
    here once the items running have finished. ``endpoint`` and ``label``: see the module docstring."""
    from tqdm.auto import tqdm

    items = list(items)
    tracker = EndpointTracker(endpoint) if endpoint is not None else None
    if tracker is not None:
        work = functools.partial(tracker.run, work)
    bar = tqdm(total=len(items) if total is None else total, initial=initial, desc=desc, unit=unit,
               disable=not progress)
    keeper = _Keeper(keep, bar, postfix, tracker.halted if tracker is not None else None)
    try:
        _run_all(items, work, keeper, workers, ordered)
        if tracker is not None and not tracker.halted.is_set() and not keeper.stopped and tracker.given_up:
            # failures here and there (a busy machine's timeouts): one last round, after a back-off
            time.sleep(tracker.policy.delay(0))
            _run_all(tracker.last_round(), work, keeper, workers, ordered)
    finally:
        bar.close()
    if tracker is not None and (tracker.halted.is_set() or (tracker.given_up and not keeper.stopped)):
        raise tracker.error(kept=keeper.kept, items=len(items), label=label)
    return keeper.stopped


def _run_all(items: Sequence, work: Callable, keeper: _Keeper, workers: int, ordered: bool) -> None:
    """One pass over ``items``: in this thread, or ``workers`` threads handing results over in
    item order (``ordered``) or as they come."""
    if workers <= 1:
        _in_turn(items, work, keeper)
    elif ordered:
        _in_order(items, work, keeper, workers)
    else:
        _as_they_come(items, work, keeper, workers)


def _feed(item: Any, work: Callable, keeper: _Keeper) -> bool:
    """Hand the results of one item over as ``work`` yields them; True once the run should stop."""
    return any(keeper.hand(result) for result in work(item))


def _in_turn(items: Sequence, work: Callable, keeper: _Keeper) -> None:
    """One item after the other, in this thread."""
    for item in items:
        if keeper.halted or _feed(item, work, keeper):
            return


def _in_order(items: Sequence, work: Callable, keeper: _Keeper, workers: int) -> None:
    """A pool with at most ``workers`` items submitted; results handed over in item order."""
    pending, futures = deque(items), deque()
    pool = ThreadPoolExecutor(workers)
    try:
        while futures or (pending and not keeper.halted):
            while pending and len(futures) < workers and not keeper.halted:
                futures.append(pool.submit(lambda item: list(work(item)), pending.popleft()))
            for result in futures.popleft().result():
                if keeper.hand(result):
                    return
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _as_they_come(items: Sequence, work: Callable, keeper: _Keeper, workers: int) -> None:
    """A pool with at most ``workers`` items running; each result handed over as it is yielded."""
    pending = deque(items)
    running: set[Future] = set()
    pool = ThreadPoolExecutor(workers)
    try:
        while running or (pending and not keeper.halted):
            while pending and len(running) < workers and not keeper.halted:
                running.add(pool.submit(_feed, pending.popleft(), work, keeper))
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                future.result()  # a worker's exception, raised here
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
