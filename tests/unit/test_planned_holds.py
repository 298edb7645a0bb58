"""Planned holds: the hours before the window the fleet is held are chosen each day, from
the forecast, so that their work fits the window; part of the day is normal.

The example placement (tests/unit/factories.py), window 01:00-05:00 UTC, acceptableDelay 24h,
with one pod at batchEfficiency 4 and no staging or operations: each hour brings
4 x 0.44896 / 4 x 1.0464 = 0.47 batch pod-hours, the window holds 0.8 x 4h = 3.2, so the plan
holds the 6 hours 23:00-05:00 (2.82 pod-hours), never the whole day (11.27).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from placement.core.api import Action, Phase, WorkloadPlacementSpec, WorkloadPlacementStatus
from placement.core.forecast import Forecast, HourForecast, forecast_load
from placement.core.observation import LoadHistory
from placement.core.planning import (
    HOLD_MARGIN,
    STEADY_MARGIN,
    YOUNG_STEP_SPREAD,
    Planner,
    WorkForecast,
)
from placement.core.policy import Decision, JobObservation, JobOutcome, Observed, decide
from placement.core.reasons import EventType, Reason
from placement.core.status import build_status, state_from_status, status_patch
from placement.core.window import current_or_next_window
from tests.unit.factories import EXAMPLE_UTILIZATION, make_spec

NAME = "summarizer"
ONE_POD = {
    "batch.jobTemplate.spec.parallelism": 1,
    "costs.batchEfficiency": 4,
    "costs.dataStagingPerRun": 0,
    "costs.operationsPerDay": 0,
}
PLAN_TEXT = "planned hold 2026-11-21 23:00 - 2026-11-22 05:00 UTC (6h)"
# At STEADY_MARGIN the plan may start on the half hour: 6.5 hours fit 0.95 of the window.
STEADY_PLAN_TEXT = "planned hold 2026-11-21 22:30 - 2026-11-22 05:00 UTC (6h30m)"


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@dataclass
class _Placement:
    """One placement evaluated again and again, its state kept only in status (as stored)."""

    spec: WorkloadPlacementSpec
    stored: dict[str, Any] = field(default_factory=dict)

    def evaluate(self, now: datetime, **observed: Any) -> tuple[Decision, dict[str, Any] | None]:
        previous = WorkloadPlacementStatus.model_validate(self.stored) if self.stored else None
        state = state_from_status(NAME, previous)
        values: dict[str, Any] = {"replicas": 4, "utilization": EXAMPLE_UTILIZATION}
        values.update(observed)
        decision = decide(self.spec, Observed(**values), state, now=now)
        status = build_status(decision, previous, generation=1)
        patch = status_patch(self.stored, status)
        self.stored = status.model_dump(by_alias=True, mode="json", exclude_none=True)
        return decision, patch


def test_a_day_of_planned_holds() -> None:
    placement = _Placement(make_spec(**ONE_POD))
    # 20:00: batch pays, but only the 6 hours before the window's end fit it.
    first, _ = placement.evaluate(_at(21, 20))
    assert (first.action, first.phase, first.reason) == (
        Action.STAY,
        Phase.REALTIME,
        Reason.HOLD_PLANNED,
    )
    assert first.event_type is EventType.NORMAL and first.noteworthy
    assert first.message.startswith(f"realtime until the {PLAN_TEXT}: forecast 10.78")
    hold = placement.stored["batch"]["plannedHold"]
    assert hold == {
        "from": "2026-11-21T23:00:00Z",
        "until": "2026-11-22T05:00:00Z",
        "hours": 6.0,
        "forecastWorkReplicaHours": 10.78,
        "forecastBatchPodHours": 2.82,
        "windowCapacityPodHours": 3.2,
        "forecast": "lookback average: no history",
    }
    # The same plan five minutes later is no news: no Event, no status write.
    again, patch = placement.evaluate(_at(21, 20, 5))
    assert again.reason is Reason.HOLD_PLANNED and not again.noteworthy
    assert patch is None
    # 23:00: the hold starts.
    moved, _ = placement.evaluate(_at(21, 23))
    assert (moved.action, moved.reason, moved.desired_replicas) == (
        Action.MOVE_TO_BATCH,
        Reason.MOVED_TO_BATCH,
        0,
    )
    assert PLAN_TEXT in moved.message and moved.message.startswith("saves 18.96 USD/day")
    waiting, _ = placement.evaluate(_at(21, 23, 5), replicas=0, utilization=None)
    assert (waiting.action, waiting.noteworthy) == (Action.WAIT, False)
    _, patch = placement.evaluate(_at(21, 23, 10), replicas=0, utilization=None)
    assert patch is None  # held and waiting: nothing new to write
    # The window's Job gets the work of the hold: 6h x 4 x 0.44896.
    created, _ = placement.evaluate(_at(22, 1), replicas=0)
    assert created.reason is Reason.BATCH_JOB_CREATED
    assert created.job_work_replica_hours == pytest.approx(10.7750, abs=1e-4)
    job = JobObservation(
        "summarizer-20261122-0100", JobOutcome.SUCCEEDED, _at(22, 3), pod_hours=2.7
    )
    succeeded, _ = placement.evaluate(_at(22, 3, 5), replicas=0, jobs=(job,))
    assert succeeded.reason is Reason.BATCH_SUCCEEDED
    # 05:00: the hold is over; the next one starts at 23:00: realtime meanwhile.
    restored, _ = placement.evaluate(_at(22, 5), replicas=0, jobs=(job,))
    assert (restored.action, restored.reason, restored.desired_replicas) == (
        Action.RESTORE,
        Reason.RESTORED,
        4,
    )
    assert restored.event_type is EventType.NORMAL
    assert (
        "HoldPlanned: the planned hold ended at 2026-11-22 05:00 UTC with its window; "
        "realtime until the planned hold 2026-11-22 23:00"
    ) in restored.message
    assert "originalReplicas" not in placement.stored
    after, _ = placement.evaluate(_at(22, 5, 5), jobs=(job,))
    assert after.reason is Reason.HOLD_PLANNED
    assert placement.stored["batch"]["plannedHold"]["from"] == "2026-11-22T23:00:00Z"
    assert placement.stored["batch"]["missedWindows"] == 0
    again_moved, _ = placement.evaluate(_at(22, 23), jobs=(job,))
    assert again_moved.reason is Reason.MOVED_TO_BATCH


def test_a_whole_day_that_fits_is_held_as_before() -> None:
    # 8 pods: 22.55 pod-hours fit 25.6; the plan is the whole day and no hour is
    # HoldPlanned (the delay gate alone decides when).
    placement = _Placement(make_spec())
    decision, _ = placement.evaluate(_at(21, 12))
    assert decision.reason is Reason.MOVED_TO_BATCH
    assert decision.inputs.held_hours_per_day == 24.0


def test_recommend_mode_describes_the_plan_and_is_not_flipped_by_the_hour() -> None:
    placement = _Placement(make_spec(**ONE_POD, mode="Recommend"))
    for hour in (12, 20, 23):
        decision, patch = placement.evaluate(_at(21, hour))
        assert decision.reason is Reason.BATCH_RECOMMENDED, hour
        assert PLAN_TEXT in decision.message
        assert decision.message.endswith(
            "would scale deployment/summarizer 4 -> 0 (mode Recommend: nothing changed)"
        )
        assert decision.noteworthy is (hour == 12)
        assert (patch is None) is (hour != 12)  # the same plan all day: written once


def test_a_plan_taken_is_kept_until_it_ends() -> None:
    # Demand drives the forecast while held. Once moved at 23:00, lower demand (which would
    # plan a longer hold) does not move the hold's start, nor does it restore anything.
    spec = make_spec(**ONE_POD, **{"metrics.demand": "sum(rate(requests_total[5m]))"})
    placement = _Placement(spec)
    moved, _ = placement.evaluate(_at(21, 23), demand=100.0)
    assert moved.reason is Reason.MOVED_TO_BATCH
    assert placement.stored["batch"]["replicasPerDemand"] == pytest.approx(0.0179584)
    quiet, _ = placement.evaluate(_at(21, 23, 30), replicas=0, utilization=None, demand=50.0)
    assert quiet.action is Action.WAIT
    assert quiet.plan is not None and quiet.plan.start == _at(21, 23)
    assert quiet.plan.work_replica_hours == pytest.approx(5.39, abs=0.01)  # half the demand


# -- the planner itself, on a forecast with a daily shape ---------------------------------


def _shaped(busy: float, quiet: float, high_factor: float = 1.0) -> WorkForecast:
    """Utilization `busy` 05:00-21:00, `quiet` 21:00-05:00, from 21 Nov 05:00 on."""
    hours = []
    for offset in range(24):
        start = _at(21, 5) + timedelta(hours=offset)
        load = busy if 5 <= start.hour < 21 else quiet
        hours.append(HourForecast(start, load, load * high_factor))
    forecast = Forecast("utilization", "test shape", tuple(hours), from_history=True)
    return WorkForecast(forecast, 4.0)


def _planner(spec: WorkloadPlacementSpec, forecast: WorkForecast, pods: int) -> Planner:
    window = current_or_next_window(spec.batch.window, _at(21, 12))
    return Planner(spec.costs, 4, 0, pods, window, forecast)


def test_busy_hours_that_lose_money_are_not_held() -> None:
    # At 3 USD a pod-hour a busy hour costs 5.40 of batch for 4.10 of capacity: the plan is
    # the quiet night, although the whole day would fit.
    spec = make_spec(**{"costs.batchPodHourly": 3})
    planning = _planner(spec, _shaped(0.9, 0.1), pods=8).choose(24)
    assert planning.plan is not None
    assert (planning.plan.start, planning.plan.hours) == (_at(21, 21), 8.0)
    assert planning.longer_fits and planning.shortened


def test_the_high_quantile_decides_what_fits() -> None:
    # 2 pods: 6.4 pod-hours of window capacity. Typical busy hours (1.88 pod-hours each) would
    # allow two of them before the quiet night; their high quantile (x1.5) allows one.
    spec = make_spec()
    typical = _planner(spec, _shaped(0.9, 0.1), pods=2).choose(24)
    assert typical.plan is not None and typical.plan.start == _at(21, 19)
    bursty = _planner(spec, _shaped(0.9, 0.1, high_factor=1.5), pods=2).choose(24)
    assert bursty.plan is not None and bursty.plan.start == _at(21, 20)
    assert bursty.plan.batch_pod_hours <= bursty.plan.capacity_pod_hours
    assert bursty.plan.capacity_pod_hours == pytest.approx(2 * 4 * HOLD_MARGIN)
    assert not bursty.longer_fits


def test_no_hold_fits_a_load_above_the_window_capacity() -> None:
    planning = _planner(make_spec(), _shaped(1.0, 1.0, high_factor=1.0), pods=1).choose(24)
    assert planning.plan is None
    assert planning.longest is not None and planning.longest.hours == 24.0


def test_hours_already_past_are_priced_as_the_same_hours_a_day_later() -> None:
    # The forecast starts at the hour holding now (20:00) and reaches a day past the window;
    # a hold that began at 05:00 is priced with the 05:00 of the next day: the daily shape.
    hours = tuple(
        HourForecast(_at(21, 20) + timedelta(hours=i), float(i), 2.0 * i) for i in range(33)
    )
    forecast = WorkForecast(Forecast("utilization", "test", hours, from_history=True), 2.0)
    # 22 Nov 05:00 is hour 9 of the forecast: load 9 (typical), 18 (high), x 2 replicas.
    assert forecast.rate(_at(21, 5)) == 18.0
    assert forecast.rate(_at(21, 5), high=True) == 36.0
    # [19:00, 21:00): 19:00 is past (-> 22 Nov 19:00, hour 23), 20:00 is hour 0.
    assert forecast.work(_at(21, 19), _at(21, 21)) == (23.0 + 0.0) * 2


# -- before a day of history is learned -------------------------------------------------


def _short_history(now: datetime) -> LoadHistory:
    """The hour a new placement's history holds: the lookback, nothing of the day."""
    samples = tuple((now - i * timedelta(minutes=5), EXAMPLE_UTILIZATION) for i in range(12, 0, -1))
    return LoadHistory("utilization", timedelta(minutes=5), samples, now)


@pytest.mark.parametrize(("operations", "moves"), [(0, True), (40, False)])
def test_an_hour_of_history_moves_only_when_the_savings_cover_the_fixed_costs(
    operations: float, moves: bool
) -> None:
    # Savings 49.20 (no operations) or 9.20 USD/day (40 of operations) at the last hour's
    # load: the second would be lost by a day busier than that hour, and it does not move.
    spec = make_spec(**{"mode": "Enforce", "costs.operationsPerDay": operations})
    now = _at(21, 23)
    decision, _ = _Placement(spec).evaluate(now, history=_short_history(now))
    if moves:
        assert decision.reason is Reason.MOVED_TO_BATCH
    else:
        assert decision.reason is Reason.SAVINGS_NEGATIVE
        assert decision.message.startswith(
            "needs more than 44.10 USD/day while the forecast is the lookback average "
            "(no day of history learned yet)"
        )
        assert decision.desired_replicas is None


def test_without_any_history_read_the_lookback_decides_as_before() -> None:
    spec = make_spec(**{"mode": "Enforce", "costs.operationsPerDay": 40})
    decision, _ = _Placement(spec).evaluate(_at(21, 23))
    assert decision.reason is Reason.MOVED_TO_BATCH


# -- the share of the window a hold may fill, by how much the earlier days varied -------------


def _learned(load: Callable[[datetime], float], days: float = 14) -> WorkForecast:
    """A demand forecast learned from 14 days of `load` (one replica per unit of demand)."""
    now = _at(21, 12)
    samples, moment = [], now - timedelta(days=days)
    while moment < now:
        samples.append((moment, load(moment)))
        moment += timedelta(minutes=5)
    history = LoadHistory("demand", timedelta(minutes=5), tuple(samples), fetched_at=now)
    made = forecast_load(
        history,
        now=now,
        until=_at(22, 5) + timedelta(days=1),
        zone=ZoneInfo("UTC"),
        fallback=None,
        source="demand",
    )
    return WorkForecast(made, 1.0)


def test_a_steady_load_may_fill_more_of_the_window_than_a_bursty_one() -> None:
    # Steady load: the earlier days brought the same work over the hold's hours within 2%,
    # so the hold may fill STEADY_MARGIN of the window, and is longer than HOLD_MARGIN allows.
    rng = random.Random(3)
    steady = _learned(lambda _: 1.05 * (1 + rng.gauss(0, 0.05)))
    planning = _planner(make_spec(), steady, pods=1).choose(24)
    plan = planning.plan
    assert plan is not None and plan.margin == STEADY_MARGIN
    assert plan.capacity_pod_hours == pytest.approx(4 * STEADY_MARGIN)
    assert f"(1 pods x 4h x {STEADY_MARGIN:g})" in plan.describe()
    # The same forecast without the earlier days' totals, or how its hours move (a young
    # history too short for either), measures nothing.
    young = WorkForecast(replace(steady.forecast, analogs=None, step_spread=None), 1.0)
    shorter = _planner(make_spec(), young, pods=1).choose(24).plan
    assert shorter is not None and shorter.margin == HOLD_MARGIN
    assert shorter.hours < plan.hours
    assert shorter.batch_pod_hours <= 4 * HOLD_MARGIN < plan.batch_pod_hours <= 4 * STEADY_MARGIN


@pytest.mark.parametrize("days_ago", [1.5, 2])
def test_a_load_that_rose_days_ago_is_held_as_steady_at_its_new_level(days_ago: float) -> None:
    # The days before the rise are read against the level on their side of it, not against
    # a median of the days around that spans both levels: their deviations stay small, and the
    # hold is as long as a steady load's (without: no hold at 1.5 days, 4h at 2 days).
    rng = random.Random(3)
    rise = _at(21, 12) - timedelta(days=days_ago)
    rose = _learned(lambda moment: (1.05 if moment >= rise else 0.2) * (1 + rng.gauss(0, 0.05)))
    plan = _planner(make_spec(), rose, pods=1).choose(24).plan
    assert plan is not None and plan.margin == STEADY_MARGIN
    assert (plan.start, plan.end) == (_at(21, 22, 30), _at(22, 5))
    assert plan.describe().startswith(STEADY_PLAN_TEXT)


def test_growth_over_weeks_is_not_read_as_busy_days() -> None:
    # The earlier days are read against the days around them moved along the growth the
    # forecast projects: the newest days do not look busy against older, lower ones, the
    # hold's high quantile stays within 2% of its work, and the hold starts an hour earlier
    # (without: 4% above, from 09:00).
    rng = random.Random(3)
    start = _at(7, 12)

    def grows(moment: datetime) -> float:
        return (0.05 + 0.02 * (moment - start) / timedelta(days=1)) * (1 + rng.uniform(-0.05, 0.05))

    spec = make_spec()
    plan = _planner(spec, _learned(grows), pods=1).choose(24).plan
    assert plan is not None and plan.margin == STEADY_MARGIN
    assert (plan.start, plan.end) == (_at(21, 8), _at(22, 5))
    costs = spec.costs
    typical = plan.work_replica_hours / costs.batch_efficiency * (1 + costs.retry_rate)
    assert plan.batch_pod_hours <= 1.02 * typical


def test_three_earlier_days_of_steady_load_measure_it_steady() -> None:
    # Three earlier days that brought the same work hour by hour are enough to hold at the
    # steady margin.
    def steady(days: float) -> WorkForecast:
        rng = random.Random(3)
        return _learned(lambda _: 1.05 * (1 + rng.gauss(0, 0.05)), days=days)

    plan = _planner(make_spec(), steady(3), pods=1).choose(24).plan
    assert plan is not None and plan.margin == STEADY_MARGIN
    assert (plan.start, plan.end) == (_at(21, 22, 30), _at(22, 5))


@pytest.mark.parametrize("days", [1.5, 2])
def test_a_day_or_two_of_steady_hours_hold_at_the_steady_margin(days: float) -> None:
    # Too few earlier days for the hold's total, but every hour within a few percent of the
    # one before: steady load, held as long as three days would hold it (at HOLD_MARGIN:
    # from 00:00).
    rng = random.Random(3)
    young = _learned(lambda _: 1.05 * (1 + rng.gauss(0, 0.05)), days=days)
    assert young.forecast.analogs is None
    step = young.forecast.step_spread
    assert step is not None and step < YOUNG_STEP_SPREAD / 3
    plan = _planner(make_spec(), young, pods=1).choose(24).plan
    assert plan is not None and plan.margin == STEADY_MARGIN
    assert (plan.start, plan.end) == (_at(21, 22, 30), _at(22, 5))


def test_a_day_or_two_of_bursty_hours_keep_the_wider_margin() -> None:
    # Bursts of minutes move an hour's mean by tens of percent from the hour before.
    rng = random.Random(4)
    young = _learned(lambda _: rng.uniform(0.7, 1.0) if rng.random() < 0.12 else 0.08, days=2)
    step = young.forecast.step_spread
    assert young.forecast.analogs is None and step is not None and step > 2 * YOUNG_STEP_SPREAD
    plan = _planner(make_spec(), young, pods=1).choose(24).plan
    assert plan is not None and plan.margin == HOLD_MARGIN


def test_a_hold_may_start_on_the_half_hour() -> None:
    # Steady load: the plan is the longest hold, in half hours, that fits STEADY_MARGIN of
    # the window; half an hour more does not.
    rng = random.Random(3)
    steady = _learned(lambda _: 1.0 * (1 + rng.gauss(0, 0.05)))
    plan = _planner(make_spec(), steady, pods=1).choose(24).plan
    assert plan is not None and plan.margin == STEADY_MARGIN
    assert (plan.end - plan.start) % timedelta(minutes=30) == timedelta(0)
    longer = _planner(make_spec(), steady, pods=1).hold(plan.start - timedelta(minutes=30))
    assert plan.fits and not longer.fits


def test_three_earlier_days_of_bursty_load_keep_the_wider_margin_and_the_summed_high() -> None:
    rng = random.Random(4)
    bursty = _learned(lambda _: rng.uniform(0.7, 1.0) if rng.random() < 0.12 else 0.08, days=3)
    planner = _planner(make_spec(), bursty, pods=1)
    plan = planner.choose(24).plan
    assert plan is not None and plan.margin == HOLD_MARGIN
    # Never below each hour's high quantile summed, what a young history was held to before.
    summed = WorkForecast(replace(bursty.forecast, analogs=None), 1.0)
    before = replace(planner, forecast=summed).hold(plan.start)
    assert plan.batch_pod_hours >= before.batch_pod_hours


def test_a_bursty_load_keeps_the_wider_margin() -> None:
    rng = random.Random(4)
    bursty = _learned(lambda _: rng.uniform(0.7, 1.0) if rng.random() < 0.12 else 0.08)
    plan = _planner(make_spec(), bursty, pods=1).choose(24).plan
    assert plan is not None and plan.margin == HOLD_MARGIN
    assert plan.capacity_pod_hours == pytest.approx(4 * HOLD_MARGIN)
