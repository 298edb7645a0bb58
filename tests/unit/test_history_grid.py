"""A load history read from a range query: the samples a placement's forecast gets, whatever
part of the 14-day grid its series covers, and what is kept of a young series (its hours, not
the whole grid)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from placement.adapters.prometheus import _on_grid, _RangeAnswer
from placement.core import forecast

START = datetime(2026, 11, 16, tzinfo=UTC).timestamp()
STEP = 600.0  # ten minutes
POINTS = 14 * 24 * 6 + 1


def answer(samples: list[tuple[float, str]]) -> _RangeAnswer:
    series = {"metric": {"deployment": "model"}, "values": [[t, v] for t, v in samples]}
    grid = _on_grid(series, START, STEP, POINTS)
    return _RangeAnswer(START, STEP, POINTS, datetime.now(UTC), {("model",): [grid]})


def at(index: int) -> datetime:
    return datetime.fromtimestamp(START + index * STEP, UTC)


def test_a_young_series_gives_its_samples_and_keeps_only_its_own_hours() -> None:
    last = POINTS - 1
    samples = [(START + i * STEP, str(0.1 * (i % 7))) for i in range(last - 30, last + 1)]
    samples[5] = (samples[5][0], "NaN")  # a gap: no sample there
    history = answer(samples).history(("model",), "utilization")

    assert history is not None
    assert history.step == timedelta(seconds=STEP)
    expected = [(at(last - 30 + i), float(v)) for i, (_, v) in enumerate(samples) if i != 5]
    assert list(history.samples) == expected
    kept = answer(samples).members[("model",)][0]
    assert len(kept.values) == 30  # five hours, not the grid's 2,017 points; no gap kept


def test_a_full_series_is_read_whole_and_an_empty_one_is_no_history() -> None:
    full = [(START + i * STEP, "0.5") for i in range(POINTS)]
    history = answer(full).history(("model",), "utilization")
    assert history is not None
    assert [moment for moment, _ in history.samples] == [at(i) for i in range(POINTS)]
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
    assert read.history(("model",), "utilization").samples is read.members[("model",)][0]
