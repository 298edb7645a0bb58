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

import functools
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from placement.adapters import memoryonly

T = TypeVar("T")


@contextmanager
def _held(lock: threading.Lock) -> Iterator[None]:
    """`lock`, taken; in a memory-only attempt (on the event loop) never waited for: a worker
    thread may hold it through a fetch."""
    if not lock.acquire(blocking=not memoryonly.active()):
        raise memoryonly.NeedsFetch
    try:
        yield
    finally:
        lock.release()


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
        with _held(self._lock(key)):
            entry = self._entries.get(key)
            if (
                entry is not None
                and reader not in entry.readers
                and not refresh
                and self._clock() - entry.fetched_at <= self.max_age
            ):
                entry.readers.add(reader)
                memoryonly.on_give_up(functools.partial(entry.readers.discard, reader))
                return entry.value, False
            memoryonly.forbid_fetch()
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

    def drop(self, keys: Iterable[Hashable]) -> None:
        """Forget the results of `keys` now (nobody will ask for them again): the next read
        of one fetches it anew."""
        with self._guard:
            for key in keys:
                self._entries.pop(key, None)
                lock = self._locks.get(key)
                if lock is not None and not lock.locked():
                    del self._locks[key]

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
        with _held(self._lock(key)):
            now = self._clock()
            entry = self._entries.get(key)
            if entry is not None:
                entry.read_at = now
                due = self.retry if entry.failed else self.refresh
                if now - entry.fetched_at < due:
                    return self._served(entry, now)
            memoryonly.forbid_fetch()
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


# A batch that answers within this share of the timeout may double: doubling a batch about
# doubles its time (the benchmark's series on Prometheus, 50, 100, 200 namespaces of 50: 0.06,
# 0.12, 0.26 s), so it stays under the half of the timeout that halves it, with room for two.
QUICK_ANSWER = 1 / 8


@dataclass
class _Namespace:
    seen_at: float
    members: set[Hashable] = field(default_factory=set)
    series: int = 0  # series its share of the last answer held (a bound exceeded: more)


@dataclass
class _Shape:
    namespaces: dict[str, _Namespace] = field(default_factory=dict)  # in first-seen order
    plan: dict[str, tuple[str, ...]] = field(default_factory=dict)  # namespace -> its batch
    planned: bool = False
    count: int = 0  # batches in the plan, counted when packed (not per read: the namespaces)
    capacity: int = 0  # series per batch now: below the bound after a slow answer
    shrunk_at: float = 0.0  # when the capacity last changed (or an answer was slow)
    answers: int = 0  # answers since then, and the slowest of them (share of the timeout)
    slowest: float = 0.0


class NamespaceBatches:
    """Which namespaces share one query of a shape: the namespaces whose placements asked it,
    packed in the order they first asked into batches that stay within the bounds of one
    answer, so a pass over every placement of a shape costs one query per batch.

    A batch holds at most `max_namespaces` namespaces whose names together take at most
    `max_chars` characters (the regex of the query), and whose series, as last counted (at
    least one per placement asking), add up to at most `capacity`. A namespace over the
    capacity on its own (a tenant with many series of the shape) is alone in its batch: its
    placements ask as they would without batching across namespaces. A batch whose query
    failed is `degraded` for `hold` seconds: its namespaces ask on their own meanwhile, and
    the counts they report re-pack the batches. Namespaces nobody asked for in `forget`
    seconds leave their batch. New namespaces join the last batch, so the batches of those
    already asking stay the same (and so do the shared results' keys). Thread-safe."""

    def __init__(
        self,
        *,
        capacity: int,
        max_namespaces: int = 500,
        max_chars: int = 4000,
        hold: float = 600.0,
        forget: float = 3600.0,
        regrow_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        resized: Callable[[str], None] = lambda direction: None,
    ) -> None:
        self.capacity = capacity
        self.resized = resized  # "halved" or "doubled", for the operator's metrics
        self.regrow_after = regrow_after
        self.max_namespaces = max_namespaces
        self.max_chars = max_chars
        self.hold = hold
        self.forget = forget
        self._clock = clock
        self._shapes: dict[Hashable, _Shape] = {}
        self._degraded: dict[tuple[Hashable, tuple[str, ...]], float] = {}
        self._guard = threading.Lock()
        self._swept_at = clock()
        self.packed = 0  # how many times batches were packed: a reader's batches may be gone

    def batch(self, shape: Hashable, namespace: str, member: Hashable) -> tuple[str, ...]:
        """The namespaces whose query `member` of `namespace` reads now: `(namespace,)` alone
        when it asks on its own."""
        with self._guard:
            now = self._clock()
            if now - self._swept_at > min(self.forget, self.hold):
                self._sweep(now)
            found = self._shapes.get(shape)
            if found is None:
                found = self._shapes[shape] = _Shape(capacity=self.capacity)
            if found.capacity < self.capacity and self._may_regrow(found, now):
                found.capacity = min(self.capacity, found.capacity * 2)
                found.shrunk_at, found.planned = now, False
                found.answers, found.slowest = 0, 0.0
                self.resized("doubled")
            entry = found.namespaces.get(namespace)
            if entry is None:
                entry = found.namespaces[namespace] = _Namespace(now)
                found.planned = False
            entry.seen_at = now
            if member not in entry.members:
                entry.members.add(member)
                if len(entry.members) > entry.series:
                    found.planned = False
            if not found.planned:
                self._pack(found)
            batch = found.plan.get(namespace, (namespace,))
            if self._degraded.get((shape, batch), 0.0) > now:
                return (namespace,)
            return batch

    def counted(self, shape: Hashable, series: Mapping[str, int]) -> None:
        """How many series each namespace's share of an answer of `shape` held; more than the
        capacity for a namespace whose own query exceeded a bound."""
        with self._guard:
            found = self._shapes.get(shape)
            if found is None:
                return
            batches: set[tuple[str, ...]] = set()
            for namespace, count in series.items():
                entry = found.namespaces.get(namespace)
                if entry is None:
                    continue
                before, entry.series = entry.series, count
                batch = found.plan.get(namespace, (namespace,))
                if len(batch) == 1 and before > self.capacity >= count:
                    found.planned = False  # back under the bound: it may join a batch
                batches.add(batch)
            for batch in batches:
                if self._batch_weight(found, batch) > found.capacity:
                    found.planned = False  # over the bound now: packed again
                    return

    def degraded(self, shape: Hashable, batch: tuple[str, ...]) -> None:
        """`batch`'s query of `shape` failed (not for time): its namespaces ask on their own
        for `hold` seconds."""
        with self._guard:
            self._degraded[(shape, batch)] = self._clock() + self.hold

    def answered(self, shape: Hashable, share: float) -> None:
        """A query of `shape` answered in `share` of the timeout."""
        with self._guard:
            found = self._shapes.get(shape)
            if found is not None:
                found.answers += 1
                found.slowest = max(found.slowest, share)

    def _may_regrow(self, found: _Shape, now: float) -> bool:
        """A halved shape doubles back a hold after its last slow answer, or sooner once
        every batch answered quickly since the last change: a Prometheus slow only while the
        machine was busy (a bulk apply) is not asked 4-8 times the queries for 40 minutes."""
        if now - found.shrunk_at > self.hold:
            return True
        batches = found.count or 1
        return (
            now - found.shrunk_at > self.regrow_after
            and found.answers >= batches
            and found.slowest <= QUICK_ANSWER
        )

    def slow(self, shape: Hashable, batch: tuple[str, ...]) -> None:
        """`batch`'s query of `shape` timed out, or took more than half the timeout: the
        shape's batches are packed to half that batch's series from now on."""
        with self._guard:
            found = self._shapes.get(shape)
            if found is None:
                return
            halved = max(1, self._batch_weight(found, batch) // 2)
            if halved < found.capacity:
                found.capacity, found.planned = halved, False
                self.resized("halved")
            found.shrunk_at = self._clock()
            found.answers, found.slowest = 0, 0.0

    def planned(self, shape: Hashable, batch: tuple[str, ...]) -> bool:
        """Whether `batch` is one of `shape`'s batches as packed now."""
        with self._guard:
            found = self._shapes.get(shape)
            if found is None:
                return False
            if not found.planned:
                self._pack(found)
            return found.plan.get(batch[0]) == batch

    def batches(self, shape: Hashable) -> list[tuple[str, ...]]:
        """The batches of `shape` as packed now (for tests and documentation)."""
        with self._guard:
            found = self._shapes.get(shape)
            if found is None:
                return []
            if not found.planned:
                self._pack(found)
            return list(dict.fromkeys(found.plan.values()))

    def _weight(self, entry: _Namespace) -> int:
        return max(1, len(entry.members), entry.series)

    def _batch_weight(self, found: _Shape, batch: tuple[str, ...]) -> int:
        return sum(self._weight(found.namespaces[n]) for n in batch if n in found.namespaces)

    def _pack(self, found: _Shape) -> None:
        plan: dict[str, tuple[str, ...]] = {}
        current: list[str] = []
        weight = chars = 0
        for name, entry in found.namespaces.items():
            own = self._weight(entry)
            if own > found.capacity:
                plan[name] = (name,)
                continue
            fits = (
                weight + own <= found.capacity
                and chars + len(name) + 1 <= self.max_chars
                and len(current) < self.max_namespaces
            )
            if current and not fits:
                batch = tuple(current)
                plan.update(dict.fromkeys(batch, batch))
                current, weight, chars = [], 0, 0
            current.append(name)
            weight += own
            chars += len(name) + 1
        if current:
            batch = tuple(current)
            plan.update(dict.fromkeys(batch, batch))
        found.plan, found.planned = plan, True
        found.count = len(set(plan.values()))
        self.packed += 1

    def _sweep(self, now: float) -> None:
        """Forget namespaces nobody asked for lately, and holds that are over (under the
        guard)."""
        self._swept_at = now
        for shape, found in list(self._shapes.items()):
            gone = [n for n, e in found.namespaces.items() if now - e.seen_at > self.forget]
            for name in gone:
                del found.namespaces[name]
            if not found.namespaces:
                del self._shapes[shape]
            elif gone:
                found.planned = False
        for key, until in list(self._degraded.items()):
            if until <= now:
                del self._degraded[key]
