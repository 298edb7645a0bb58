"""Load that changes, built here: the series the decision-quality benchmark replays beside the
public traces. Pure and deterministic (a seeded random number generator per scenario).

Every scenario is `days` days (four weeks by default) at `step` (5 minutes) of a fleet of
`replicas` realtime replicas, its utilization a level per moment times a little noise
(5%, multiplicative). Levels follow the window's time zone where the wall clock matters
(weekdays, the daily shape of the DST case, the failing nights):

- rises:     0.12, then 0.6 from day 10 on (as far into a shorter series);
- falls:     0.6, then 0.1 from day 10 on;
- weekdays:  0.55 Monday to Friday, 0.07 on weekends;
- grows:     from 0.05 to 0.65, linearly over the whole series;
- bursty:    0.08 between bursts of 10 to 40 minutes at 0.7-1.0 (a gap between them of 35
             minutes on average): a mean near 0.39, and whole quiet hours;
- failing-nights: steady 0.15, and every batch Job running in the window fails on three
             nights (days 7, 14 and 21 of four weeks: the batch cluster is down those nights);
- dst:       0.36 from 08:00 to 20:00 local time, 0.16 otherwise, the series centred on
             Europe's spring-forward night 2027-03-28 (in Europe/Berlin the 01:00-05:00
             window lasts 3 hours that night).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from placement.core.api import BatchWindow
from placement.core.window import window_on
from placement.replay.series import JOB_FAILED, Sample

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday, clear of any DST change for 4 weeks
DST_DAY = datetime(2027, 3, 28, tzinfo=UTC)  # Europe's clocks spring forward: mid-series
STEP = timedelta(minutes=5)
DAYS = 28
NOISE = 0.05


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    samples: tuple[Sample, ...]
    failing_nights: int = 0  # nights on which the series fails every running Job


@dataclass(frozen=True)
class _Shape:
    description: str
    level: Callable[[datetime, BatchWindow, datetime, int], float]  # (at, window, start, days)
    around_dst: bool = False  # the series is centred on DST_DAY instead of starting at START
    failing: bool = False  # Jobs fail on the nights a quarter, half and three quarters in
    bursty: bool = False


def _change(start: datetime, days: int) -> datetime:
    """Day 10 of four weeks; as far into a shorter series."""
    return start + timedelta(days=days) * 10 / DAYS


def _rises(at: datetime, window: BatchWindow, start: datetime, days: int) -> float:
    return 0.12 if at < _change(start, days) else 0.6


def _falls(at: datetime, window: BatchWindow, start: datetime, days: int) -> float:
    return 0.6 if at < _change(start, days) else 0.1


def _weekdays(at: datetime, window: BatchWindow, start: datetime, days: int) -> float:
    return 0.55 if at.astimezone(window.zone).weekday() < 5 else 0.07


def _grows(at: datetime, window: BatchWindow, start: datetime, days: int) -> float:
    return 0.05 + 0.6 * (at - start) / timedelta(days=days)


def _steady(at: datetime, window: BatchWindow, start: datetime, days: int) -> float:
    return 0.15


def _between_bursts(at: datetime, window: BatchWindow, start: datetime, days: int) -> float:
    return 0.08


def _daily(at: datetime, window: BatchWindow, start: datetime, days: int) -> float:
    return 0.36 if 8 <= at.astimezone(window.zone).hour < 20 else 0.16


SHAPES: dict[str, _Shape] = {
    "rises": _Shape("0.12, then 0.6 after ten days", _rises),
    "falls": _Shape("0.6, then 0.1 after ten days", _falls),
    "weekdays": _Shape("weekdays 0.55, weekends 0.07", _weekdays),
    "grows": _Shape("0.05 growing to 0.65 over the series", _grows),
    "bursty": _Shape("bursts to 0.7-1.0 over 0.08", _between_bursts, bursty=True),
    "failing-nights": _Shape("steady 0.15, Jobs fail on three nights", _steady, failing=True),
    "dst": _Shape("0.36 by day, 0.16 by night, over a DST change", _daily, around_dst=True),
}


def scenario(
    name: str,
    window: BatchWindow,
    *,
    replicas: int = 6,
    days: int = DAYS,
    step: timedelta = STEP,
    seed: int = 12,
) -> Scenario:
    """One scenario (module docstring) for a placement with `replicas` and this window."""
    shape = SHAPES.get(name)
    if shape is None:
        raise ValueError(f"unknown scenario {name!r}: use one of {', '.join(SHAPES)}")
    if days < 1 or step <= timedelta(0) or replicas < 1:
        raise ValueError("days, step and replicas must be positive")
    rng = random.Random(f"{name}-{seed}")
    start = DST_DAY - timedelta(days=days // 2) if shape.around_dst else START
    nights = sorted({days * quarter // 4 for quarter in (1, 2, 3)}) if shape.failing else []
    failing = _failing_spans(window, start, nights)
    samples: list[Sample] = []
    burst_left, burst_level = 0, 0.0
    count = round(timedelta(days=days) / step)
    for index in range(count):
        at = start + index * step
        level = shape.level(at, window, start, days)
        if shape.bursty:
            if burst_left == 0 and rng.random() < 1 / 8:
                burst_left, burst_level = rng.randint(2, 8), rng.uniform(0.7, 1.0)
            if burst_left > 0:
                burst_left -= 1
                level = burst_level
        value = min(max(level * (1 + rng.gauss(0, NOISE)), 0.0), 1.0)
        fails = any(start <= at < end for start, end in failing)
        samples.append(
            Sample(
                at=at,
                replicas=replicas,
                utilization=round(value, 4),
                job_outcome=JOB_FAILED if fails else None,
            )
        )
    return Scenario(name, shape.description, tuple(samples), failing_nights=len(failing))


def _failing_spans(
    window: BatchWindow, start: datetime, nights: Sequence[int]
) -> list[tuple[datetime, datetime]]:
    """The window on each of these nights (days after the start, local dates)."""
    spans = []
    for night in nights:
        span = window_on(window, (start + timedelta(days=night)).astimezone(window.zone).date())
        if span is not None:
            spans.append((span.start, span.end))
    return spans


__all__ = ["DAYS", "SHAPES", "STEP", "Scenario", "scenario"]
