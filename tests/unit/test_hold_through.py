"""Held past the end of the hold taken, a few hours before the next planned hold: the hold goes
on (no restore and move back) when the backlog of holding through fits HOLD_THROUGH_MARGIN of
the next window; realtime is restored as planned when it does not. And the backlog watch reads
the demand (averaged over the lookback just past) against the forecast of that span, so a
daily shape is not taken for a rise in the load.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from placement.core.api import Action, BatchWindow
from placement.core.backlog import BacklogInputs, project_backlog
from placement.core.forecast import Forecast, HourForecast
from placement.core.planning import WorkForecast
from placement.core.policy import (
    HOLD_THROUGH_MARGIN,
    Decision,
    JobObservation,
    JobOutcome,
    Observed,
    State,
    decide,
)
from placement.core.reasons import Reason
from placement.core.window import window_on
from tests.unit.factories import make_spec

DEMAND = {
    "metrics.demand": "sum(rate(requests_total[5m]))",
    "metrics.queueDepth": "sum(queue_items)",
}
JOB = "summarizer-20261122-0100"


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def _held_to_the_window_end(utilization: float) -> tuple[Decision, datetime]:
    """The example placement (4 replicas, 8 pods x 01:00-05:00 UTC) at a flat load: the plan
    holds the hours before the window that fit HOLD_MARGIN, the Job of the 22nd succeeds, and
    the decision at 05:00, when the hold taken ends. Returns it and the plan's start."""
    spec = make_spec(**DEMAND)
    realtime = Observed(replicas=4, utilization=utilization, demand=100.0, backlog_metrics=True)
    planned = decide(spec, realtime, State(name="summarizer"), now=_at(21, 5, 30))
    assert planned.reason is Reason.HOLD_PLANNED and planned.plan is not None
    moved = decide(spec, realtime, planned.state, now=planned.plan.start)
    assert moved.reason is Reason.MOVED_TO_BATCH
    job = JobObservation(JOB, JobOutcome.SUCCEEDED, _at(22, 4))
    held = Observed(replicas=0, demand=100.0, queue_depth=0.0, backlog_metrics=True, jobs=(job,))
    succeeded = decide(spec, held, moved.state, now=_at(22, 4, 5))
    assert succeeded.reason is Reason.BATCH_SUCCEEDED
    return decide(spec, held, succeeded.state, now=_at(22, 5)), planned.plan.start


def test_the_hold_goes_on_across_the_gap_when_the_backlog_fits() -> None:
    # A day's work at 0.54 of 4 replicas: 27.1 batch pod-hours; 22h fit 0.8 of the window's
    # 32 pod-hours, the whole day fits 0.9 of them.
    at_end, plan_start = _held_to_the_window_end(0.54)
    assert plan_start == _at(21, 7)
    assert (at_end.action, at_end.reason, at_end.noteworthy) == (
        Action.WAIT,
        Reason.BATCH_SUCCEEDED,
        False,
    )
    assert at_end.state.holding and at_end.desired_replicas == 0
    # One hold from now until the next window's end: no restore now, no move at 07:00.
    assert at_end.state.planned_hold == (_at(22, 5), _at(23, 5))
    assert at_end.plan is not None and at_end.plan.start == _at(22, 5)
    assert "held on past the planned hold's end into the next window's hold" in at_end.message
    assert at_end.backlog is not None
    assert at_end.backlog.batch_pod_hours <= 32 * HOLD_THROUGH_MARGIN
    assert f"within {HOLD_THROUGH_MARGIN:g} of it" in at_end.message


def test_the_hold_ends_as_planned_when_holding_through_would_not_fit() -> None:
    # At 0.6 a day's work is 30.1 pod-hours: more than 0.9 of 32. Realtime until the plan.
    at_end, plan_start = _held_to_the_window_end(0.6)
    assert (at_end.action, at_end.reason) == (Action.RESTORE, Reason.RESTORED)
    assert not at_end.state.holding and at_end.desired_replicas == 4
    assert "the planned hold ended at 2026-11-22 05:00 UTC with its window" in at_end.message
    assert f"realtime until the planned hold 2026-11-22 {plan_start:%H:%M}" in at_end.message


BERLIN = ZoneInfo("Europe/Berlin")
EVE = datetime(2027, 3, 27, 19, tzinfo=UTC)  # 20:00 in Berlin, the night clocks spring forward


def _daily_forecast() -> WorkForecast:
    """0.36 of 6 replicas from 08:00 to 20:00 Berlin time, 0.16 otherwise, from 20:00 on."""
    hours = []
    for index in range(36):
        start = EVE + timedelta(hours=index)
        level = 0.36 if 8 <= start.astimezone(BERLIN).hour < 20 else 0.16
        hours.append(HourForecast(start=start, typical=level, high=level))
    return WorkForecast(Forecast("utilization", "test", tuple(hours), True), 6.0)


def _level(
    forecast: WorkForecast, now: datetime, demand: float, lookback: timedelta = timedelta(hours=1)
) -> float:
    """The backlog's demand level at `now`, held for 12 hours before the Berlin window of the
    next day (01:00-05:00), 2 pods."""
    berlin = BatchWindow.model_validate(
        {"start": "01:00", "end": "05:00", "timeZone": "Europe/Berlin"}
    )
    window = window_on(berlin, now.date() + timedelta(days=1))
    assert window is not None
    backlog = project_backlog(
        BacklogInputs(
            demand=demand,
            queue=0.0,
            replicas_per_demand=1 / 1000,
            configured=True,
            held_since=now - timedelta(hours=12),
            lookback=lookback,
        ),
        now=now,
        window=window,
        forecast=forecast,
        batch_efficiency=6.0,
        retry_rate=0.05,
        pods=2,
    )
    return backlog.level


def _backlog_at_eight_pm(demand: float, lookback: timedelta) -> float:
    return _level(_daily_forecast(), EVE, demand, lookback)


def test_an_evening_reading_is_not_taken_for_a_rise_at_night() -> None:
    # At 20:00 the last hour's demand is the day's 0.36 of 6 replicas; the hour ahead is a
    # night one (0.16). Read against the hour ahead alone, it was 2.25x the forecast.
    day = 0.36 * 6 * 1000
    assert _backlog_at_eight_pm(day, timedelta(0)) == pytest.approx(2.25)
    assert _backlog_at_eight_pm(day, timedelta(hours=1)) == pytest.approx(1.0)


def test_a_reading_above_the_day_and_the_night_is_a_rise() -> None:
    assert _backlog_at_eight_pm(3 * 0.36 * 6 * 1000, timedelta(hours=1)) == pytest.approx(3.0)


MIDNIGHT = datetime(2026, 11, 27, 23, tzinfo=UTC)  # Friday -> Saturday in Berlin


def _friday_to_saturday(past: bool) -> WorkForecast:
    """Weekdays 0.55 of 6 replicas, the weekend 0.07, from Saturday 00:00 Berlin time; with
    `past`, the six Friday hours just before are kept (the forecast made from history)."""
    ahead = tuple(
        HourForecast(start=MIDNIGHT + timedelta(hours=i), typical=0.07, high=0.07)
        for i in range(30)
    )
    before = tuple(
        HourForecast(start=MIDNIGHT - timedelta(hours=i), typical=0.55, high=0.55)
        for i in range(6, 0, -1)
    )
    forecast = Forecast("utilization", "test", ahead, True, past=before if past else ())
    return WorkForecast(forecast, 6.0)


def _level_at_midnight(forecast: WorkForecast, demand: float) -> float:
    return _level(forecast, MIDNIGHT, demand)


def test_a_fridays_last_hour_is_read_against_fridays_forecast_not_saturdays() -> None:
    # The weekly scenario's Friday holds were restored at midnight: the lookback's Friday
    # demand read against Saturday's forecast, "demand 7.86x the forecast".
    friday = 0.55 * 6 * 1000
    assert _level_at_midnight(_friday_to_saturday(past=False), friday) == pytest.approx(0.55 / 0.07)
    assert _level_at_midnight(_friday_to_saturday(past=True), friday) == pytest.approx(1.0)
    # A Friday that really ran hot still reads as a rise.
    assert _level_at_midnight(_friday_to_saturday(past=True), 2 * friday) == pytest.approx(2.0)
