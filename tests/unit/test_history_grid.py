"""A load history read from a range query: what a placement's forecast and backlog get, whatever
part of the 14-day grid its series covers, and what is kept until the next refresh (hour means
and the newest hours as read, not the whole grid)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from placement.adapters.prometheus import _Kept, _on_grid, _RangeAnswer
from placement.core import forecast

START = datetime(2026, 11, 16, tzinfo=UTC).timestamp()
STEP = 600.0  # ten minutes
POINTS = 14 * 24 * 6 + 1
END = START + (POINTS - 1) * STEP
RECENT = 5 * 3600.0  # the newest hours kept as read


def answer(samples: list[tuple[float, str]]) -> _RangeAnswer:
    series = {"metric": {"deployment": "model"}, "values": [[t, v] for t, v in samples]}
    kept = _Kept.of(_on_grid(series, START, STEP, POINTS), END - RECENT)
    return _RangeAnswer(START, STEP, POINTS, datetime.now(UTC), {("model",): [kept]})


def at(index: int) -> datetime:
    return datetime.fromtimestamp(START + index * STEP, UTC)


def test_a_young_series_gives_its_samples_and_keeps_only_its_own_hours() -> None:
    last = POINTS - 1
    samples = [(START + i * STEP, str(0.1 * (i % 7))) for i in range(last - 30, last + 1)]
    samples[5] = (samples[5][0], "NaN")  # a gap: no sample there
    history = answer(samples).history(("model",), "utilization")

    assert history is not None
    as_read = {at(last - 30 + i): float(v) for i, (_, v) in enumerate(samples) if i != 5}
    hours: dict[datetime, list[float]] = {}
    for moment, value in as_read.items():
        hours.setdefault(moment.replace(minute=0), []).append(value)
    # What the forecast learns from: hour means (as it would make them of the samples).
    assert history.step == timedelta(hours=1)
    assert list(history.samples) == [(hour, sum(v) / len(v)) for hour, v in hours.items()]
    # What the backlog confirms a rise with: the newest hours as read.
    assert history.as_read().step == timedelta(seconds=STEP)
    assert list(history.as_read().samples) == list(as_read.items())
    kept = answer(samples).members[("model",)][0]
    # Five hours, not the grid's 2,017 points; no gap kept.
    assert (len(kept.hourly), len(kept.recent)) == (6, 30)


def test_a_full_series_keeps_hour_means_and_its_newest_hours_as_read() -> None:
    # Idle from 00:00 to 06:00 each day: a quarter of the samples, whatever the hour means.
    full = [(START + i * STEP, "0" if i % 144 < 36 else "0.5") for i in range(POINTS)]
    history = answer(full).history(("model",), "utilization")
    assert history is not None
    assert [moment for moment, _ in history.samples] == [
        datetime.fromtimestamp(START + hour * 3600, UTC) for hour in range(14 * 24 + 1)
    ]
    assert [moment for moment, _ in history.as_read().samples] == [
        at(i) for i in range(POINTS - 31, POINTS)
    ]
    assert history.zero_share == pytest.approx((36 * 14 + 1) / POINTS)  # the last at 00:00
    assert answer([(START, "NaN"), (START + STEP, "-1")]).history(("model",), "x") is None
    assert all(not math.isnan(v) for _, v in history.samples)


def test_a_history_is_learned_once_per_refresh_not_once_per_evaluation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 14 days at 5 minutes took about 5 ms to learn: at every evaluation of every placement,
    # most of a cycle's CPU. The answer's samples are shared, so their digest is remembered.
    full = [(START + i * STEP, str(0.2 + 0.1 * (i % 6))) for i in range(POINTS)]
    read = answer(full)
    learned: list[object] = []
    real = forecast._digest_of

    def counted(*args: Any) -> Any:
        learned.append(args)
        return real(*args)

    monkeypatch.setattr(forecast, "_digest_of", counted)
    now = at(POINTS - 1) + timedelta(minutes=7)
    made = [
        forecast.forecast_load(
            read.history(("model",), "utilization"),
            now=now + timedelta(minutes=minute),
            until=now + timedelta(hours=12),
            zone=ZoneInfo("Europe/Berlin"),
            fallback=0.3,
        )
        for minute in range(0, 50, 5)  # ten evaluations within the hour
    ]
    assert len(learned) == 1
    assert all(one.from_history and one == made[0] for one in made)
    assert read.history(("model",), "utilization").samples is read.members[("model",)][0].hourly


def test_hours_learned_from_the_grid_are_those_of_the_samples_themselves() -> None:
    # The operator's histories are learned from the grid's floats (no datetime per sample);
    # a replay's from (time, value) pairs. Both must see the same hourly means: steps that do
    # not divide the hour, gaps, unusable samples, sums that overflow.
    chance = random.Random(7)
    for _ in range(100):
        step = chance.choice([60.0, 300.0, 420.0, 600.0])
        start = START - chance.randrange(0, 60) * 60
        points = chance.randrange(1, 2000)
        values = [
            [start + i * step, chance.choice(["NaN", "-1", "1e308", str(chance.random())])]
            for i in range(points)
            if chance.random() < 0.97
        ]
        grid = _on_grid({"values": values}, start, step, points)
        first = chance.randrange(0, len(grid) + 1)
        last = chance.randrange(first, len(grid) + 1)
        assert grid.hour_means(first, last) == forecast._hourly(grid[first:last])
