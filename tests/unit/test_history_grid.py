"""A load history read from a range query: the samples a placement's forecast gets, whatever
part of the 14-day grid its series covers, and what is kept of a young series (its hours, not
the whole grid)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from placement.adapters.prometheus import _on_grid, _RangeAnswer

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
    assert len(kept.values) == 31  # five hours, not the grid's 2,017 points


def test_a_full_series_is_read_whole_and_an_empty_one_is_no_history() -> None:
    full = [(START + i * STEP, "0.5") for i in range(POINTS)]
    history = answer(full).history(("model",), "utilization")
    assert history is not None
    assert [moment for moment, _ in history.samples] == [at(i) for i in range(POINTS)]
    assert answer([(START, "NaN"), (START + STEP, "-1")]).history(("model",), "x") is None
    assert all(not math.isnan(v) for _, v in history.samples)
