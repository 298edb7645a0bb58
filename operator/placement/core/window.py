"""Batch-window arithmetic: pure, the clock is always a parameter.

A window is a daily wall-clock interval [start, end) in an IANA time zone; when end <= start
it ends on the next day. Windows are identified by the local date they START on, plus the
configured start time ("20261122-0100"), which makes Job names deterministic: a retried
evaluation finds the Job it already created instead of creating a second one.

Daylight-saving time (zoneinfo, PEP 495):
- A wall time that does not exist (spring-forward gap) moves forward by the length of the gap:
  02:30 on a day when clocks jump 02:00 -> 03:00 becomes 03:30. This is PEP 495's fold=0
  reading, so the window keeps its nominal length when both ends fall in the gap.
- A wall time that happens twice (fall-back overlap) means its first occurrence.
- Lengths and waits are real elapsed time, so a 00:00-06:00 window lasts 5h on a
  spring-forward night and 7h on a fall-back night.
- If both ends resolve to the same instant or out of order (only possible when the end lies in
  a gap right after the start), that day has no window.

All datetimes returned are aware and in UTC: Python compares and subtracts datetimes that
share a tzinfo by wall clock, which is wrong across a DST change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from placement.core.api import BatchWindow

JOB_NAME_MAX = 63  # Job names end up in the pods' job-name label: 63 characters at most
_LABEL_LENGTH = len("-20261122-0100")


@dataclass(frozen=True)
class WindowSpan:
    """One occurrence of the batch window."""

    start: datetime  # aware, UTC
    end: datetime  # aware, UTC
    label: str  # local start date and configured start time: "20261122-0100"
    zone: ZoneInfo

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def contains(self, now: datetime) -> bool:
        return self.start <= now < self.end

    def local_start(self) -> datetime:
        return self.start.astimezone(self.zone)

    def local_end(self) -> datetime:
        return self.end.astimezone(self.zone)

    def describe(self) -> str:
        """'2026-11-22 01:00-05:00 Europe/Berlin' (local times, as configured)."""
        return f"{self.local_start():%Y-%m-%d %H:%M}-{self.local_end():%H:%M} {self.zone.key}"


def resolve_local(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall time `at` on `day` in `zone` (gap: forward; overlap: first)."""
    # fold=0 takes the offset in force before a transition: inside a gap that lands after
    # the gap by its length, inside an overlap it is the first occurrence.
    return datetime.combine(day, at, tzinfo=zone).replace(fold=0).astimezone(UTC)


def window_on(window: BatchWindow, day: date) -> WindowSpan | None:
    """The window that starts on local date `day`, or None if DST leaves it empty."""
    zone = window.zone
    start = resolve_local(day, window.start_time, zone)
    end_day = day if window.end_time > window.start_time else day + timedelta(days=1)
    end = resolve_local(end_day, window.end_time, zone)
    if end <= start:
        return None
    label = f"{day:%Y%m%d}-{window.start_time:%H%M}"
    return WindowSpan(start=start, end=end, label=label, zone=zone)


def _spans(
    window: BatchWindow, now: datetime, days_before: int, days_after: int
) -> Iterator[WindowSpan]:
    today = now.astimezone(window.zone).date()
    for offset in range(-days_before, days_after + 1):
        span = window_on(window, today + timedelta(days=offset))
        if span is not None:
            yield span


def current_window(window: BatchWindow, now: datetime) -> WindowSpan | None:
    """The window `now` is inside, if any (it may have started the local day before)."""
    _require_aware(now)
    return next((s for s in _spans(window, now, 1, 0) if s.contains(now)), None)


def next_window_after(window: BatchWindow, moment: datetime) -> WindowSpan:
    """The first window that starts strictly after `moment`."""
    _require_aware(moment)
    # Two days ahead always holds a start: at most one local day can lack a window.
    return next(s for s in _spans(window, moment, 1, 3) if s.start > moment)


def current_or_next_window(window: BatchWindow, now: datetime) -> WindowSpan:
    """The window `now` is inside, else the next one: where work arriving now gets done.

    Remembered per window configuration: the answer found at `t` is the answer at every
    moment in [t, its end) (no other window starts in between: it would be the next one),
    and an evaluation asks two or three times, every placement of a configuration alike."""
    _require_aware(now)
    key = (window.start_time, window.end_time, window.zone.key)
    known = _CURRENT_OR_NEXT.get(key)
    if known is not None and known[0] <= now < known[1].end:
        return known[1]
    span = current_window(window, now) or next_window_after(window, now)
    if len(_CURRENT_OR_NEXT) >= _WINDOWS_REMEMBERED:
        _CURRENT_OR_NEXT.clear()
    _CURRENT_OR_NEXT[key] = (now, span)  # one assignment: safe across threads
    return span


# Window configurations (start, end, zone) remembered at most: each a few hundred bytes.
_WINDOWS_REMEMBERED = 4096
_CURRENT_OR_NEXT: dict[tuple[time, time, str], tuple[datetime, WindowSpan]] = {}


def last_ended_window(window: BatchWindow, now: datetime) -> WindowSpan:
    """The most recent window that has ended at or before `now`.

    Remembered per window configuration, as current_or_next_window: the answer found at `t`
    is the answer at every moment from its end until the next window's end (no window ends
    in between: it would be the last one), and every placement asks at every evaluation."""
    _require_aware(now)
    key = (window.start_time, window.end_time, window.zone.key)
    known = _LAST_ENDED.get(key)
    if known is not None and known[0].end <= now < known[1]:
        return known[0]
    spans = list(_spans(window, now, 3, 1))
    ended = max((s for s in spans if s.end <= now), key=lambda span: span.end)
    next_end = min((s.end for s in spans if s.end > now), default=None)
    if next_end is not None:
        if len(_LAST_ENDED) >= _WINDOWS_REMEMBERED:
            _LAST_ENDED.clear()
        _LAST_ENDED[key] = (ended, next_end)  # one assignment: safe across threads
    return ended


_LAST_ENDED: dict[tuple[time, time, str], tuple[WindowSpan, datetime]] = {}


def wait_until_window_end(window: BatchWindow, now: datetime) -> timedelta:
    """How long work arriving now waits for its results: until the batch window ends."""
    return current_or_next_window(window, now).end - now


def job_name(placement_name: str, span: WindowSpan) -> str:
    """Deterministic Job name for a window: '<placement>-20261122-0100', at most 63 chars.

    A long placement name is cut and given a short hash of the full name, so two long names
    that share a prefix still get different Jobs.
    """
    room = JOB_NAME_MAX - _LABEL_LENGTH
    prefix = placement_name
    if len(prefix) > room:
        digest = hashlib.sha256(placement_name.encode()).hexdigest()[:8]
        prefix = f"{placement_name[: room - 9].rstrip('-.')}-{digest}"
    return f"{prefix}-{span.label}"


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("window arithmetic needs an aware datetime (e.g. datetime.now(UTC))")
