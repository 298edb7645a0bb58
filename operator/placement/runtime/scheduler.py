"""One scheduler for every placement, in place of a kopf daemon per placement (standalone mode).

kopf's daemon per placement kept, for each placement's life, its task, about ten coroutines,
the invocation's kwargs, context and logger (about 10 KB), and kopf keeps its copy of the live
body only for an object with a daemon: about 100 MB at 10,000 placements, and at shutdown one
"did not exit in time" warning per daemon. Here a placement is a `Tracked`: its latest body
(the one kopf's watch event brought, slimmed by watchbodies.py) and the fields its evaluation
remembers. Due times are a heap with one timer for the earliest; due placements go to a queue
that a few worker tasks take from, new specs first. The step (what a look at a placement does:
evaluate, or say how long to wait) is the caller's (handlers.py), as the daemon's loop was.

Used in the event loop only. No kopf import: the step, and whatever logs, are the caller's.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
# A placement due this close after now is due now: the loop's timer may fire a hair early.
DUE_SLACK = 0.001
# How long the shutdown lets the evaluations in flight finish before they are cancelled.
STOP_GRACE = 5.0


class Tracked:
    """What is kept of one placement between its evaluations. The memo fields
    (evaluated_generation, next_evaluation, job_ended, awaits_write, written_version, ...) are
    the ones the daemon kept in kopf's memo; the handlers read them with defaults, so the
    optional ones stay unset until written."""

    __slots__ = (
        "_again",
        "_let_go",
        "_queued",
        "_running",
        "_seq",
        "_settled",
        "awaiting_finalizer_since",
        "awaits_finalizer",
        "awaits_write",
        "body",
        "evaluated_generation",
        "finalizer_warned",
        "gone",
        "job_ended",
        "key",
        "looked",
        "next_evaluation",
        "status_write_failure",
        "written_at",
        "written_version",
    )

    key: Key
    body: Any  # kopf's Body of the latest event
    evaluated_generation: Any
    next_evaluation: float
    job_ended: bool
    awaits_write: bool
    written_version: str | None
    written_at: float
    awaiting_finalizer_since: float | None  # None: not waiting for it
    awaits_finalizer: bool  # held back for kopf's finalizer: the event bringing it wakes it
    finalizer_warned: bool
    status_write_failure: str | None
    looked: bool  # looked at once already (the next looks are wakeups)
    gone: bool  # deleted (or deleting): never looked at again

    def __init__(self, key: Key, body: Any) -> None:
        self.key = key
        self.body = body
        self.evaluated_generation = None
        self.next_evaluation = 0.0
        self.job_ended = False
        self.awaits_write = False
        self.awaits_finalizer = False
        self.looked = False
        self.gone = False
        self._seq = -1  # the heap entry that is this placement's due time; others are stale
        self._queued = False
        self._running = False
        self._again = False  # woken while its look ran: look again right after
        self._settled: asyncio.Future[None] | None = None
        # Set while a first look runs on a task of its own: resolved, its worker is let go.
        self._let_go: asyncio.Future[None] | None = None

    @property
    def generation(self) -> Any:
        return ((self.body.get("metadata") or {}) if self.body else {}).get("generation")

    @property
    def unseen(self) -> bool:
        """A generation no evaluation has decided for yet: it goes before re-evaluations."""
        return bool(self.generation != self.evaluated_generation)


# What a look at a placement does; seconds until the next look (None: no more looks).
Step = Callable[[Tracked], Awaitable[float | None]]


def key_of(body: Mapping[str, Any]) -> Key:
    metadata: Mapping[str, Any] = body.get("metadata") or {}
    return (str(metadata.get("namespace")), str(metadata.get("name")))


class Scheduler:
    """Every placement's due time, and a few workers that look at the due ones."""

    def __init__(
        self,
        workers: int = 1,
        retry_seconds: float = 15.0,
        again_workers: int | None = None,
        handoffs: int = 0,
    ) -> None:
        self.workers = max(1, workers)
        # At most this many workers on re-evaluations at a time: the others stay free for new
        # specs. With every worker waiting for one of the few re-evaluation slots (slots.py),
        # new placements queued behind them: at a bulk apply of 2,000 with every placement due
        # each second, decided p50 28.6 -> 66.1 s (bench/scale.py) until this bound.
        self.again_workers = min(self.workers, max(1, again_workers or self.workers))
        self.retry_seconds = retry_seconds  # after a step that failed unexpectedly
        # At most this many first looks may let their worker go (`let_go`) and finish on their
        # own, their last wait (the status write) left; 0: none. A worker held through the
        # write took 0.56-0.80 s of the API server's per first decision at a bulk apply of
        # 10,000, twice the evaluation (docs/scaling.md, stop 21).
        self.handoffs = max(0, handoffs)
        self._handoff_permits: asyncio.Semaphore | None = None
        self._first_looks: set[asyncio.Task[float | None]] = set()
        self.step: Step | None = None
        # Set by the caller once kopf has started: the operator's memo (the clients the step
        # uses) and a per-object logger for a body.
        self.shared: Any = None
        self.logger_for: Callable[..., Any] | None = None
        self._tracked: dict[Key, Tracked] = {}
        self._leaving: dict[Key, Tracked] = {}  # forgotten while their look runs
        self._heap: list[tuple[float, int, Key]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._first: deque[Key] = deque()  # due, with a generation not evaluated yet
        self._again: deque[Key] = deque()  # due re-evaluations
        self._again_running = 0
        self._queued_any: asyncio.Event | None = None  # None: not started
        self._tasks: list[asyncio.Task[None]] = []
        self._busy = 0
        self._stopping = False

    def __len__(self) -> int:
        return len(self._tracked)

    def get(self, key: Key) -> Tracked | None:
        return self._tracked.get(key)

    def track(self, body: Any) -> Tracked:
        """The placement of this body, with this body as its latest; a new one is due now."""
        key = key_of(body)
        tracked = self._tracked.get(key)
        if tracked is not None:
            tracked.body = body
            return tracked
        tracked = self._tracked[key] = Tracked(key, body)
        self.wake(tracked)
        return tracked

    def wake(self, tracked: Tracked) -> None:
        """Look at the placement now (it decides whether it is due); after its look if one
        runs (a spec change during an evaluation is not left for the next interval)."""
        if tracked.gone or self._stopping:
            return
        if tracked._running:
            tracked._again = True
        elif not tracked._queued:
            self._enqueue(tracked)

    def job_ended(self, namespace: str, placement: str) -> None:
        """A Job of the placement ended: it is due at once, even if it is evaluated now."""
        tracked = self._tracked.get((namespace, placement))
        if tracked is not None:
            tracked.job_ended = True
            self.wake(tracked)

    def forget(self, key: Key) -> None:
        """The placement is deleted (or being deleted): never looked at again."""
        tracked = self._tracked.pop(key, None)
        if tracked is None:
            return
        tracked.gone = True
        if tracked._running:
            self._leaving[key] = tracked

    async def settled(self, key: Key) -> None:
        """Return once no look at this placement runs (its deletion restores after it)."""
        tracked = self._leaving.get(key) or self._tracked.get(key)
        if tracked is None or not tracked._running:
            return
        if tracked._settled is None:
            tracked._settled = asyncio.get_running_loop().create_future()
        await asyncio.shield(tracked._settled)

    def start(self) -> None:
        """Start the workers (idempotent). Started from kopf's processing of a watch event, so
        they run in its context: kopf.event and the per-object loggers post from there."""
        if self._tasks or self._stopping:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop (a test calling kopf's filter): at the next event
            return
        self._queued_any = asyncio.Event()
        self._handoff_permits = asyncio.Semaphore(self.handoffs) if self.handoffs else None
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]
        for tracked in self._tracked.values():  # tracked before the start: due now
            if not tracked._queued and not tracked._running:
                self._enqueue(tracked)

    async def stop(self, grace: float | None = None) -> None:
        """Stop looking: no new look starts, the running ones get `grace` seconds (STOP_GRACE),
        then the workers are cancelled. Nothing is logged per placement."""
        grace = STOP_GRACE if grace is None else grace
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
        started = time.monotonic()
        while self._busy and time.monotonic() - started < grace:
            await asyncio.sleep(0.05)
        looks = list(self._first_looks)  # let go by their workers: cancelled as the workers
        for task in [*self._tasks, *looks]:
            task.cancel()
        await asyncio.gather(*self._tasks, *looks, return_exceptions=True)
        self._tasks = []

    # -- due times ---------------------------------------------------------------------------

    def _schedule(self, tracked: Tracked, at: float) -> None:
        tracked._seq = seq = next(self._seq)
        heapq.heappush(self._heap, (at, seq, tracked.key))
        if len(self._heap) > 2 * len(self._tracked) + 1024:
            self._compact()
        self._arm()

    def _compact(self) -> None:
        """Drop the stale due times (each wake leaves its placement's older one behind)."""
        self._heap = [
            item
            for item in self._heap
            if (tracked := self._tracked.get(item[2])) is not None and tracked._seq == item[1]
        ]
        heapq.heapify(self._heap)

    def _arm(self) -> None:
        if self._stopping or not self._heap:
            return
        at = self._heap[0][0]
        if self._timer is not None:
            if self._timer.when() <= at and not self._timer.cancelled():
                return
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        # The heap is in time.monotonic(), the loop's clock may not be.
        self._timer = loop.call_later(max(0.0, at - time.monotonic()), self._release)

    def _release(self) -> None:
        """The timer: queue every placement that is due."""
        self._timer = None
        now = time.monotonic() + DUE_SLACK
        while self._heap and self._heap[0][0] <= now:
            _, seq, key = heapq.heappop(self._heap)
            tracked = self._tracked.get(key)
            if tracked is None or tracked._seq != seq or tracked._queued or tracked._running:
                continue  # stale: woken since, or forgotten
            self._enqueue(tracked)
        self._arm()

    def _enqueue(self, tracked: Tracked) -> None:
        tracked._seq = -1  # its due time, if any, is now
        if self._queued_any is None:
            return  # not started: start() queues it
        tracked._queued = True
        (self._first if tracked.unseen else self._again).append(tracked.key)
        self._queued_any.set()

    # -- workers -----------------------------------------------------------------------------

    async def _next(self) -> tuple[Key, bool]:
        """The next due placement, a new spec first; and whether it is a re-evaluation."""
        assert self._queued_any is not None
        while True:
            if self._first:
                return self._first.popleft(), False
            if self._again and self._again_running < self.again_workers:
                return self._again.popleft(), True
            self._queued_any.clear()
            await self._queued_any.wait()

    async def _work(self) -> None:
        assert self._queued_any is not None
        while True:
            key, again = await self._next()
            if self._stopping:
                # No look starts once the shutdown has begun: one started in the grace acted
                # on the cluster (scaled, created Jobs) and was then cancelled half done.
                return
            tracked = self._tracked.get(key)
            if tracked is None or not tracked._queued:
                continue  # forgotten while queued
            tracked._queued = False
            if not again and self._handoff_permits is not None:
                await self._look_first(tracked)
                continue
            self._again_running += again
            try:
                delay = await self._look(tracked)
            finally:
                self._again_running -= again
                if again:
                    self._queued_any.set()  # a re-evaluation may start now
            self._looked(tracked, delay)

    def _looked(self, tracked: Tracked, delay: float | None) -> None:
        """After a look: due again in `delay` seconds, or at once if woken while it ran."""
        if delay is None or tracked.gone or self._stopping:
            return
        if tracked._again:
            tracked._again = False
            self._enqueue(tracked)
        else:
            self._schedule(tracked, time.monotonic() + delay)

    async def _look(self, tracked: Tracked) -> float | None:
        self._begin(tracked)
        try:
            return await self._step(tracked)
        finally:
            self._end(tracked)

    async def _look_first(self, tracked: Tracked) -> None:
        """A first look on a task of its own, which its worker waits for until the look ends
        or lets it go (`let_go`). The placement stays running until the look ends (no other
        look at it starts, its deletion waits for it), so its writes stay one at a time and
        in order."""
        loop = asyncio.get_running_loop()
        let_go = tracked._let_go = loop.create_future()
        self._begin(tracked)  # before the task starts: a wake now marks it to look again
        look = loop.create_task(self._step(tracked))
        self._first_looks.add(look)
        # Added before asyncio.wait's own callback: the look is done with before the worker
        # takes the next placement, as `_work` does with an inline look.
        look.add_done_callback(functools.partial(self._first_looked, tracked))
        await asyncio.wait((look, let_go), return_when=asyncio.FIRST_COMPLETED)

    def _first_looked(self, tracked: Tracked, look: asyncio.Task[float | None]) -> None:
        self._first_looks.discard(look)
        let_go, tracked._let_go = tracked._let_go, None
        if let_go is not None and let_go.done() and self._handoff_permits is not None:
            self._handoff_permits.release()
        self._end(tracked)
        if not look.cancelled():
            self._looked(tracked, look.result())

    async def let_go(self, tracked: Tracked) -> bool:
        """Called by a first look whose only wait left is its status write: its worker takes
        the next placement, and the look finishes on its own. At most `handoffs` at a time
        (this waits for one, the worker still held: no more writes in flight than that).
        False: the look keeps its worker (not a first look, or no handoffs)."""
        let_go = tracked._let_go
        if let_go is None or let_go.done() or self._handoff_permits is None:
            return False
        await self._handoff_permits.acquire()
        let_go.set_result(None)
        return True

    def _begin(self, tracked: Tracked) -> None:
        tracked._running = True
        self._busy += 1

    async def _step(self, tracked: Tracked) -> float | None:
        assert self.step is not None
        try:
            return await self.step(tracked)
        except Exception:  # the step handles its failures; this is a bug: not the worker's end
            log.exception("looking at %s/%s failed", *tracked.key)
            return self.retry_seconds

    def _end(self, tracked: Tracked) -> None:
        self._busy -= 1
        tracked._running = False
        if self._leaving.get(tracked.key) is tracked:
            del self._leaving[tracked.key]
        if tracked._settled is not None and not tracked._settled.done():
            tracked._settled.set_result(None)
        tracked._settled = None
