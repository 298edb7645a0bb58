"""A few evaluations at a time, first evaluations first, and more of them at a bulk apply.
No I/O.

At a bulk apply every placement already decided is still due at its own interval, and the
new ones queued behind them for the same few slots: with `evaluationInterval: 1s` the
thousandth new placement waited for every older one's re-evaluation round after round. A
placement that has never been evaluated (or whose spec changed since) has no decision for its
generation yet, so it takes the next free slot before any re-evaluation; among each kind,
first come first served.

A first evaluation ends in a status write, and the slot is held through its round trip (the
next evaluation must see the status it wrote): at a bulk apply of 10,000 the 4 slots were
each held about 0.2 s per write, so at most about 20 placements were decided a second while
the creates came at 80 (docs/scaling.md). So first evaluations may run `first_size` at a time
(as many as there are connections to write with), re-evaluations only `size`: what the few
slots protect, kopf's own requests and events not queued behind a whole round of
evaluations in the loop, holds in the steady cycle, where re-evaluations write nothing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Slots:
    def __init__(self, size: int, first_size: int | None = None) -> None:
        if size < 1:
            raise ValueError("at least one slot")
        self._size = size
        self._first_size = max(size, first_size or size)
        self._running = 0
        self._first: deque[asyncio.Future[None]] = deque()  # no decision for the spec yet
        self._again: deque[asyncio.Future[None]] = deque()  # re-evaluations

    @property
    def waiting(self) -> int:
        return len(self._first) + len(self._again)

    @property
    def running(self) -> int:
        return self._running

    @asynccontextmanager
    async def slot(self, *, first: bool = False) -> AsyncIterator[None]:
        await self._acquire(first)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, first: bool) -> None:
        if first and not self._first and self._running < self._first_size:
            self._running += 1
            return
        if not first and not self.waiting and self._running < self._size:
            self._running += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._first if first else self._again
        queue.append(waiter)
        try:
            await waiter  # its slot was handed over by _release, already counted
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed a slot, then cancelled: pass it on
            elif waiter in queue:  # not yet skipped by a _release
                queue.remove(waiter)
            raise

    def _release(self) -> None:
        self._running -= 1
        for queue, bound in ((self._first, self._first_size), (self._again, self._size)):
            while queue and self._running < bound:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the slot goes to it, counted here
                    self._running += 1
                    return
