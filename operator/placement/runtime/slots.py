"""A few evaluations at a time, first evaluations first. No I/O.

At a bulk apply every placement already decided is still due at its own interval, and the
new ones queued behind them for the same few slots: with `evaluationInterval: 1s` the
thousandth new placement waited for every older one's re-evaluation round after round. A
placement that has never been evaluated (or whose spec changed since) has no decision for its
generation yet, so it takes the next free slot before any re-evaluation; among each kind,
first come first served.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Slots:
    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("at least one slot")
        self._free = size
        self._first: deque[asyncio.Future[None]] = deque()  # no decision for the spec yet
        self._again: deque[asyncio.Future[None]] = deque()  # re-evaluations

    @property
    def waiting(self) -> int:
        return len(self._first) + len(self._again)

    @asynccontextmanager
    async def slot(self, *, first: bool = False) -> AsyncIterator[None]:
        await self._acquire(first)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, first: bool) -> None:
        if self._free > 0 and not self.waiting:
            self._free -= 1
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
        for queue in (self._first, self._again):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the slot goes to it, never back to the pool
                    return
        self._free += 1
