"""Results shared by the placements of one evaluation cycle. No I/O: the caller fetches.

Every placement is evaluated by its own timer, so there is no moment when "the cycle" starts.
A shared result therefore lives as long as it is news: each placement reads it at most once,
and the first placement that comes back for a second read fetches a new one. One full pass
over N placements of one shape thus costs one query, however large N is, and no placement
decides twice on the same sample. `max_age` bounds how old a result a placement that has not
read it yet may get (a new placement, or one evaluated less often than its neighbours).
Results older than that are dropped now and then, so keys nobody asks for any more (a deleted
namespace's shared queries) do not stay in memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    value: T
    fetched_at: float
    readers: set[Hashable] = field(default_factory=set)


class SharedResults(Generic[T]):
    """Per key, one fetched value that each reader gets at most once before a refetch.

    Thread-safe: kopf runs synchronous handlers in a thread pool, and while one thread fetches
    a key the others asking for it wait for that fetch instead of repeating it."""

    def __init__(self, *, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._clock = clock
        self._entries: dict[Hashable, _Entry[T]] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()
        self._swept_at = clock()
        self.fetches = 0

    def get(
        self, key: Hashable, reader: Hashable, fetch: Callable[[], T], *, refresh: bool = False
    ) -> tuple[T, bool]:
        """The value for `key` and whether it was fetched for this call (else: shared).

        `refresh` forces a fetch, e.g. when a shared value holds nothing for the reader yet
        (its series may have appeared since)."""
        with self._lock(key):
            entry = self._entries.get(key)
            if (
                entry is not None
                and reader not in entry.readers
                and not refresh
                and self._clock() - entry.fetched_at <= self.max_age
            ):
                entry.readers.add(reader)
                return entry.value, False
            value = fetch()
            now = self._clock()
            with self._guard:
                self.fetches += 1
                self._entries[key] = _Entry(value, now, {reader})
                if now - self._swept_at > self.max_age:
                    self._sweep(now)
            return value, True

    def __len__(self) -> int:
        return len(self._entries)

    def _sweep(self, now: float) -> None:
        """Drop results too old to be given to anyone (called under the guard)."""
        self._swept_at = now
        for key, entry in list(self._entries.items()):
            if now - entry.fetched_at > self.max_age:
                del self._entries[key]
                lock = self._locks.get(key)
                if lock is not None and not lock.locked():
                    del self._locks[key]

    def _lock(self, key: Hashable) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


@dataclass
class _Refreshed(Generic[T]):
    value: T
    fetched_at: float
    failed: bool
    read_at: float
    good: T | None = None  # the last value that did not fail, kept across failed refreshes
    good_at: float = 0.0


class RefreshedResults(Generic[T]):
    """Per key, one value fetched at most once per `refresh` seconds, whoever asks: a
    placement's load history changes little in an hour, so every reader gets the same one
    until it is `refresh` old (a new key, e.g. a changed query, is fetched at once).

    A failed fetch (`failed(value)`) is retried after `retry` seconds; meanwhile the last
    value that did not fail is returned while younger than `keep`, else the failure. Keys
    nobody read for `2 * refresh` are dropped. Thread-safe as `SharedResults` is."""

    def __init__(
        self,
        *,
        refresh: float,
        retry: float,
        keep: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.refresh = refresh
        self.retry = retry
        self.keep = keep
        self._clock = clock
        self._entries: dict[Hashable, _Refreshed[T]] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()
        self._swept_at = clock()
        self.fetches = 0

    def get(self, key: Hashable, fetch: Callable[[], T], failed: Callable[[T], bool]) -> T:
        with self._lock(key):
            now = self._clock()
            entry = self._entries.get(key)
            if entry is not None:
                entry.read_at = now
                due = self.retry if entry.failed else self.refresh
                if now - entry.fetched_at < due:
                    return self._served(entry, now)
            value = fetch()
            now = self._clock()
            fresh = _Refreshed(value, now, failed(value), now)
            if not fresh.failed:
                fresh.good, fresh.good_at = value, now
            elif entry is not None and entry.good is not None:
                fresh.good, fresh.good_at = entry.good, entry.good_at
            with self._guard:
                self.fetches += 1
                self._entries[key] = fresh
                if now - self._swept_at > self.refresh:
                    self._sweep(now)
            return self._served(fresh, now)

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, key: Hashable) -> T | None:
        """What `get` would serve for `key` without fetching (None: nothing yet), for a reader
        that cannot fetch now. A fetch that raised left nothing: exceptions are not results."""
        with self._guard:
            entry = self._entries.get(key)
            return None if entry is None else self._served(entry, self._clock())

    def _served(self, entry: _Refreshed[T], now: float) -> T:
        if entry.failed and entry.good is not None and now - entry.good_at < self.keep:
            return entry.good
        return entry.value

    def _sweep(self, now: float) -> None:
        """Drop keys nobody read for two refresh intervals (called under the guard)."""
        self._swept_at = now
        for key, entry in list(self._entries.items()):
            if now - entry.read_at > 2 * self.refresh:
                del self._entries[key]
                lock = self._locks.get(key)
                if lock is not None and not lock.locked():
                    del self._locks[key]

    def _lock(self, key: Hashable) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())
