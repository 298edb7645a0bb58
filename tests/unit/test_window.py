"""Batch-window arithmetic with a fixed clock: midnight, DST gaps and overlaps, Job names."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from placement.core.api import BatchWindow
from placement.core.window import (
    JOB_NAME_MAX,
    current_or_next_window,
    current_window,
    job_name,
    last_ended_window,
    next_window_after,
    resolve_local,
    wait_until_window_end,
    window_on,
)


def _window(start: str, end: str, zone: str = "UTC") -> BatchWindow:
    return BatchWindow.model_validate({"start": start, "end": end, "timeZone": zone})


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


NIGHT = _window("22:00", "06:00")


@pytest.mark.parametrize(
    ("now", "inside", "label"),
    [
        (_utc(2026, 11, 22, 21, 59), False, None),
        (_utc(2026, 11, 22, 22, 0), True, "20261122-2200"),
        (_utc(2026, 11, 22, 23, 30), True, "20261122-2200"),
        (_utc(2026, 11, 23, 0, 0), True, "20261122-2200"),  # labelled by the day it starts
        (_utc(2026, 11, 23, 5, 59), True, "20261122-2200"),
        (_utc(2026, 11, 23, 6, 0), False, None),  # end is exclusive
        (_utc(2026, 11, 23, 12, 0), False, None),
    ],
)
def test_window_across_midnight(now: datetime, inside: bool, label: str | None) -> None:
    span = current_window(NIGHT, now)
    assert (span is not None) is inside
    if span is not None:
        assert span.label == label
        assert span.length == timedelta(hours=8)


@pytest.mark.parametrize(
    ("now", "wait"),
    [
        (_utc(2026, 11, 22, 20, 0), timedelta(hours=10)),  # next window ends 06:00
        (_utc(2026, 11, 23, 3, 0), timedelta(hours=3)),  # inside: until its end
        (_utc(2026, 11, 23, 6, 0), timedelta(hours=24)),  # just ended: a whole day
    ],
)
def test_wait_until_window_end(now: datetime, wait: timedelta) -> None:
    assert wait_until_window_end(NIGHT, now) == wait


def test_next_and_last_windows() -> None:
    now = _utc(2026, 11, 23, 7, 0)
    assert current_or_next_window(NIGHT, now).label == "20261123-2200"
    assert next_window_after(NIGHT, now).start == _utc(2026, 11, 23, 22, 0)
    last = last_ended_window(NIGHT, now)
    assert (last.label, last.end) == ("20261122-2200", _utc(2026, 11, 23, 6, 0))
    # Inside a window, the "next" one starts tomorrow and the current one is not "ended".
    inside = _utc(2026, 11, 23, 23, 0)
    assert next_window_after(NIGHT, inside).label == "20261124-2200"
    assert last_ended_window(NIGHT, inside).label == "20261122-2200"


def test_daytime_window_in_a_zone() -> None:
    window = _window("01:00", "05:00", "Asia/Tokyo")  # UTC+9, no DST
    span = window_on(window, date(2026, 11, 22))
    assert span is not None
    assert (span.start, span.end) == (_utc(2026, 11, 21, 16, 0), _utc(2026, 11, 21, 20, 0))
    assert span.describe() == "2026-11-22 01:00-05:00 Asia/Tokyo"


# 2026 transitions: America/New_York springs forward 8 March 02:00 -> 03:00 and falls back
# 1 November 02:00 -> 01:00; Europe/Berlin 29 March 02:00 -> 03:00 and 25 October 03:00 -> 02:00.
@pytest.mark.parametrize(
    ("start", "end", "zone", "day", "utc_start", "utc_end"),
    [
        # spring forward: the night is an hour shorter
        ("01:00", "05:00", "America/New_York", date(2026, 3, 8), (6, 0), (9, 0)),
        ("22:00", "06:00", "Europe/Berlin", date(2026, 3, 28), (21, 0), (4, 0)),
        # a start inside the gap moves forward by the gap (02:30 -> 03:30 local)
        ("02:30", "04:00", "America/New_York", date(2026, 3, 8), (7, 30), (8, 0)),
        ("02:30", "05:00", "Europe/Berlin", date(2026, 3, 29), (1, 30), (3, 0)),
        # both ends in the gap: shifted together, the length is kept
        ("02:00", "02:30", "America/New_York", date(2026, 3, 8), (7, 0), (7, 30)),
        # fall back: the night is an hour longer
        ("01:00", "05:00", "America/New_York", date(2026, 11, 1), (5, 0), (10, 0)),
        ("22:00", "06:00", "Europe/Berlin", date(2026, 10, 24), (20, 0), (5, 0)),
        # a repeated wall time means its first occurrence
        ("01:30", "01:45", "America/New_York", date(2026, 11, 1), (5, 30), (5, 45)),
        ("02:30", "04:00", "Europe/Berlin", date(2026, 10, 25), (0, 30), (3, 0)),
    ],
)
def test_dst_days(
    start: str,
    end: str,
    zone: str,
    day: date,
    utc_start: tuple[int, int],
    utc_end: tuple[int, int],
) -> None:
    span = window_on(_window(start, end, zone), day)
    assert span is not None
    assert (span.start.hour, span.start.minute) == utc_start
    assert (span.end.hour, span.end.minute) == utc_end
    assert span.start.tzinfo is UTC and span.end.tzinfo is UTC
    # the label keeps the configured wall time, so Job names do not depend on DST
    assert span.label == f"{day:%Y%m%d}-{start.replace(':', '')}"


def test_real_elapsed_time_across_dst() -> None:
    spring = window_on(_window("00:00", "06:00", "Europe/Berlin"), date(2026, 3, 29))
    fall = window_on(_window("00:00", "06:00", "Europe/Berlin"), date(2026, 10, 25))
    assert spring is not None and fall is not None
    assert spring.length == timedelta(hours=5)
    assert fall.length == timedelta(hours=7)


def test_end_in_the_gap_right_after_start_leaves_no_window_that_day() -> None:
    window = _window("02:30", "03:00", "America/New_York")
    assert window_on(window, date(2026, 3, 8)) is None
    # the day is skipped, not an error: the next window is the following night
    now = _utc(2026, 3, 8, 6, 0)
    assert current_or_next_window(window, now).label == "20260309-0230"


def test_now_during_the_repeated_hour() -> None:
    window = _window("01:00", "05:00", "America/New_York")
    # 01:30 EST (second 01:30, 06:30 UTC) is inside the window that started at 01:00 EDT
    span = current_window(window, _utc(2026, 11, 1, 6, 30))
    assert span is not None and span.label == "20261101-0100"
    assert wait_until_window_end(window, _utc(2026, 11, 1, 6, 30)) == timedelta(hours=3, minutes=30)


def test_resolve_local_is_aware_utc() -> None:
    window = _window("01:00", "05:00", "Europe/Berlin")
    moment = resolve_local(date(2026, 7, 1), window.start_time, window.zone)
    assert moment == _utc(2026, 6, 30, 23, 0)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        current_window(NIGHT, datetime(2026, 11, 22, 23, 0))


def test_job_names_are_deterministic_and_short() -> None:
    span = window_on(_window("01:00", "05:00"), date(2026, 11, 22))
    assert span is not None
    assert job_name("summarizer", span) == "summarizer-20261122-0100"
    long_a = job_name("a" * 60 + "-one", span)
    long_b = job_name("a" * 60 + "-two", span)
    assert len(long_a) == len(long_b) == JOB_NAME_MAX
    assert long_a != long_b
    assert long_a.endswith("-20261122-0100")
    assert long_a == job_name("a" * 60 + "-one", span)


ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata"]
clock = st.integers(0, 23 * 60 + 59).map(lambda m: f"{m // 60:02d}:{m % 60:02d}")


@given(
    start=clock,
    end=clock,
    zone=st.sampled_from(ZONES),
    now=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
    ),
)
def test_window_invariants(start: str, end: str, zone: str, now: datetime) -> None:
    if start == end:
        return
    window = _window(start, end, zone)
    span = current_or_next_window(window, now)
    assert span.start < span.end
    assert span.length <= timedelta(hours=25)
    assert span.contains(now) or span.start > now
    assert timedelta(0) < wait_until_window_end(window, now) <= timedelta(hours=49)
    assert next_window_after(window, now).start > now
    assert last_ended_window(window, now).end <= now
    current = current_window(window, now)
    if current is not None:
        assert current == span


@pytest.mark.parametrize(
    "window",
    [NIGHT, _window("01:00", "05:00"), _window("02:30", "03:30", "Europe/Berlin")],
    ids=["across-midnight", "night", "dst-gap"],
)
def test_the_last_ended_window_is_the_same_when_asked_again_as_the_clock_moves(
    window: BatchWindow,
) -> None:
    # Remembered per configuration: at every moment (each 17 minutes over the spring-forward
    # week, forwards, then back in time) the answer of the arithmetic itself.
    def recomputed(now: datetime) -> str:
        today = now.date()
        spans = [window_on(window, today + timedelta(days=d)) for d in range(-3, 2)]
        return max((s for s in spans if s and s.end <= now), key=lambda s: s.end).label

    moments = [_utc(2026, 3, 26) + timedelta(minutes=17 * i) for i in range(600)]
    for now in [*moments, *reversed(moments)]:
        assert last_ended_window(window, now).label == recomputed(now), now
