"""Remembered results of pure computations whose inputs repeat from one evaluation to the
next. Pure (a lock, no I/O).

A placement is evaluated every evaluationInterval with, most of the time, the inputs of the
last evaluation: the same spec, the same window, the same forecast hours. The planner's
pricing of every hold length was half of an evaluation's CPU (bench/evaluate.py); a memo
keyed by everything it reads answers it again at a dictionary lookup. Keys hold every input,
so a hit is the result a computation would return; `now` is an input only through the
values derived from it (the forecast's hours, the window), and the memo is emptied when its
epoch (e.g. the hour) moves on, so it holds at most one epoch's results.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from array import array
from collections.abc import Callable, Hashable
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Generic, TypeVar

from placement.core.forecast import Forecast, HourForecast
from placement.core.planning import Planner, Planning, WorkForecast
from placement.core.window import WindowSpan

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedMemo(Generic[K, V]):
    """At most `size` results; the oldest goes first. Thread-safe (kopf runs sync handlers
    on a pool of threads)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: dict[K, V] = {}
        self._epoch: Hashable = None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: K, compute: Callable[[], V], *, epoch: Hashable = None) -> V:
        """The remembered result for `key`, else `compute()` (remembered). A new `epoch`
        forgets every earlier result first: they cannot be asked for again."""
        with self._lock:
            if epoch != self._epoch:
                self._entries.clear()
                self._epoch = epoch
            found = self._entries.get(key, _MISSING)
            if found is not _MISSING:
                self.hits += 1
                return found  # type: ignore[return-value]
            self.misses += 1
        value = compute()  # outside the lock: another thread may compute the same, harmless
        with self._lock:
            if epoch == self._epoch:
                while len(self._entries) >= self.size:
                    del self._entries[next(iter(self._entries))]
                self._entries[key] = value
        return value

    def forget(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_MISSING = object()


# -- the planner's holds --------------------------------------------------------------------

# Results of one hour at most (the memo empties when the hour moves on, as the forecast's
# first hour does): about one per placement, a few hundred bytes each.
PLANS_REMEMBERED = 50_000
_PLANS: BoundedMemo[bytes, Planning] = BoundedMemo(PLANS_REMEMBERED)


def remembered_plan(
    planner: Planner,
    taken: tuple[datetime, datetime] | None,
    longest_hours: float,
    now: datetime,
) -> Planning:
    """`planner.plan(taken, longest_hours)`, remembered for the hour of `now`."""
    epoch = int(now.timestamp() // 3600)
    key = _plan_key(planner, taken, longest_hours)
    return _PLANS.get(key, lambda: planner.plan(taken, longest_hours), epoch=epoch)


def _plan_key(
    planner: Planner, taken: tuple[datetime, datetime] | None, longest_hours: float
) -> bytes:
    """A digest of everything the plan is computed from: every field of the planner (the
    costs, the window, every forecast hour), `taken` and `longest_hours`. Equal bytes are
    equal inputs (pickle writes floats and datetimes exactly, UTC ones are whole
    microseconds)."""
    digest = hashlib.blake2b(digest_size=20)
    rest: tuple[object, ...]
    if _KNOWN_SHAPE:
        # The forecast's hours, most of the inputs, as one array of numbers: a third of
        # the time of pickling them as objects.
        forecast = planner.forecast.forecast
        hours = (*forecast.past, *forecast.hours)
        numbers = array("d", [x for h in hours for x in (h.typical, h.high)])
        window = planner.window
        starts = [h.start for h in hours]
        rest = (
            _starts_key(starts),
            tuple(planner.costs.__dict__.values()),
            planner.replicas,
            planner.warm_replicas,
            planner.pods,
            planner.early_end,
            planner.queued,
            planner.goes_on,
            (_instant(window.start), _instant(window.end), window.label, window.zone.key),
            planner.forecast.replicas_per_unit,
            forecast.source,
            forecast.basis,
            forecast.from_history,
            forecast.analogs,  # earlier days' deviations, every field (pickled whole)
            forecast.spread,
            forecast.step_spread,
        )
        digest.update(numbers.tobytes())
    else:
        rest = (planner,)  # a planner of another shape: every field, pickled whole
    moments = None if taken is None else (_instant(taken[0]), _instant(taken[1]))
    digest.update(pickle.dumps((rest, moments, longest_hours), protocol=5))
    return digest.digest()


def _starts_key(starts: list[datetime]) -> object:
    """The forecast hours' starts as the key holds them: consecutive UTC hours (every
    forecast's) as the first one and the count; any others one by one."""
    first = starts[0] if starts else None
    if first is not None and all(
        a.tzinfo is UTC and b.tzinfo is UTC and b - a == _HOUR for a, b in pairwise(starts)
    ):
        return ("hourly", _instant(first), len(starts))
    return tuple(_instant(start) for start in starts)


def _instant(moment: datetime) -> object:
    """A UTC datetime as its microseconds since the epoch (exact: pickling the datetime
    itself, its time zone by reference, took ten times as long); any other as it is."""
    if moment.tzinfo is UTC:
        return (moment - _EPOCH) // _MICROSECOND
    return moment


_HOUR = timedelta(hours=1)
_MICROSECOND = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


# The fields the fast key reads: a field added to any of these classes makes the key the
# generic one (the whole planner pickled) rather than one that misses the new field.
_KNOWN_SHAPE = (
    _names(Planner)
    == (
        "costs",
        "replicas",
        "warm_replicas",
        "pods",
        "window",
        "forecast",
        "early_end",
        "queued",
        "goes_on",
    )
    and _names(WorkForecast) == ("forecast", "replicas_per_unit")
    and _names(Forecast)
    == (
        "source",
        "basis",
        "hours",
        "from_history",
        "analogs",
        "past",
        "spread",
        "step_spread",
        "expect",  # the same model as the hours; plans read the hours only
    )
    and _names(HourForecast) == ("start", "typical", "high")
    and _names(WindowSpan) == ("start", "end", "label", "zone")
)
