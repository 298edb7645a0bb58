"""The end of a planned hold: at its window's end, with the window's Job done, the hold ends as
planned (Restored, a Normal Event saying the planned hold ended), or goes on into the next
window's hold when that starts right away; never a BacklogWillMissWindow fallback counting
the next day's arrivals against a window that is already over.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from placement.core.api import Action, WorkloadPlacement, WorkloadPlacementSpec
from placement.core.backlog import BacklogInputs, project_backlog
from placement.core.policy import JobObservation, JobOutcome, Observed, State, decide
from placement.core.reasons import Reason
from placement.core.window import current_or_next_window
from placement.replay.replay import ReplayOptions, replay
from placement.replay.scenarios import scenario
from tests.unit.factories import EXAMPLE_UTILIZATION, make_spec
from tests.unit.test_planned_holds import ONE_POD, _Placement

REPO = Path(__file__).resolve().parents[2]
DEMAND = {
    "metrics.demand": "sum(rate(requests_total[5m]))",
    "metrics.queueDepth": "sum(queue_items)",
}
# Reasons of a hold that goes as planned: no Warning among them.
CALM = {"MovedToBatch", "BatchJobCreated", "BatchSucceeded", "Restored", "HoldPlanned"}


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def _enrichment() -> WorkloadPlacementSpec:
    """examples/nightly-enrichment.yaml with metrics.demand, as the benchmark replays it."""
    text = (REPO / "examples" / "nightly-enrichment.yaml").read_text()
    spec = WorkloadPlacement.model_validate(yaml.safe_load(text)).spec
    metrics = spec.metrics.model_copy(update={"demand": "sum(rate(tokens_total[5m]))"})
    return spec.model_copy(update={"metrics": metrics})


def test_weekday_holds_end_at_the_window_with_the_planned_reason() -> None:
    # Three weekdays at 0.55 of 6 replicas: a day's work does not fit 2 pods x 4h, so each
    # day the hours before the window are held, and each hold ends with its window.
    spec = _enrichment()
    case = scenario("weekdays", spec.batch.window, replicas=6, days=3)
    result = replay(spec, case.samples, name="enrichment", options=ReplayOptions())
    assert (result.fallbacks, result.missed_windows) == (0, 0)
    reasons = {record.reason for record in result.decisions}
    assert reasons <= CALM, reasons - CALM
    restores = [record for record in result.decisions if record.action == "Restore"]
    # Each window ends at 04:00 UTC (05:00 in Berlin): one restore each.
    assert [record.at for record in restores] == [_at(day, 4) for day in (2, 3, 4)]
    for record in restores:
        assert record.reason == "Restored"
        assert f"the planned hold ended at {record.at:%Y-%m-%d %H:%M} UTC with its window" in (
            record.message
        )
    # Each restore is followed by one move, at the next plan's start: two mode changes a day.
    # From the second day the history's hours show steady load (planning.YOUNG_STEP_SPREAD):
    # 13 hours fit 0.95 of the window where 11 fitted 0.8 of it.
    moves = [record.at for record in result.decisions if record.action == "MoveToBatch"]
    assert moves == [_at(2, 1), _at(2, 17), _at(3, 15), _at(4, 15)]
    # The first move is the timeline's first sample: three restores and three moves after it.
    assert result.mode_changes == 6


def _held_on_a_day_that_fits() -> State:
    """The example placement (8 pods, window 01:00-05:00 UTC): a whole day's work fits."""
    spec = make_spec(**DEMAND)
    observed = Observed(
        replicas=4, utilization=EXAMPLE_UTILIZATION, demand=100.0, backlog_metrics=True
    )
    moved = decide(spec, observed, State(name="summarizer"), now=_at(21, 22))
    assert moved.reason is Reason.MOVED_TO_BATCH
    return moved.state


def test_the_hold_goes_on_into_the_next_plan_when_it_starts_at_the_window_end() -> None:
    spec = make_spec(**DEMAND)
    state = _held_on_a_day_that_fits()
    job = JobObservation("summarizer-20261122-0100", JobOutcome.SUCCEEDED, _at(22, 2))
    held = Observed(replicas=0, demand=100.0, queue_depth=0.0, backlog_metrics=True, jobs=(job,))
    succeeded = decide(spec, held, state, now=_at(22, 2, 5))
    assert succeeded.reason is Reason.BATCH_SUCCEEDED
    at_end = decide(spec, held, succeeded.state, now=_at(22, 5))
    assert (at_end.action, at_end.noteworthy, at_end.state.holding) == (Action.WAIT, False, True)
    assert at_end.desired_replicas == 0
    assert at_end.state.planned_hold == (_at(22, 5), _at(23, 5))
    assert at_end.backlog is not None and at_end.backlog.fits


def test_between_two_holds_the_backlog_counts_arrivals_from_the_next_holds_start() -> None:
    spec = make_spec()
    window = current_or_next_window(spec.batch.window, _at(22, 5))
    inputs = BacklogInputs(
        demand=100.0,
        queue=0.0,
        replicas_per_demand=0.01,  # 1 replica busy
        configured=True,
        held_since=_at(21, 22),
        hold_start=_at(22, 23),
    )
    backlog = project_backlog(
        inputs,
        now=_at(22, 5),
        window=window,
        forecast=None,
        batch_efficiency=1.0,
        retry_rate=0.0,
        pods=2,
    )
    # 23:00 until the window ends at 05:00: 6 replica-hours, not the 24 from now.
    assert backlog.arriving_replica_hours == pytest.approx(6.0)
    assert window.end - _at(22, 5) == timedelta(days=1)


def test_after_the_planned_end_a_lookback_still_covering_the_hold_moves_nothing() -> None:
    placement = _Placement(make_spec(**ONE_POD))
    placement.evaluate(_at(21, 23))  # the move, for the 23:00 - 05:00 hold
    job = JobObservation("summarizer-20261122-0100", JobOutcome.SUCCEEDED, _at(22, 3))
    placement.evaluate(_at(22, 3, 5), replicas=0, jobs=(job,))
    restored, _ = placement.evaluate(_at(22, 5), replicas=0, jobs=(job,))
    assert restored.reason is Reason.RESTORED
    # 05:05: the 1h lookback is mostly the held hour, its utilization near zero: a whole
    # day would seem to fit. The plan announced at the restore stands.
    early, _ = placement.evaluate(_at(22, 5, 5), utilization=0.02, jobs=(job,))
    assert (early.action, early.reason) == (Action.STAY, Reason.HOLD_PLANNED)
    assert "realtime until the planned hold 2026-11-22 23:00" in early.message
    assert placement.stored["batch"]["plannedHold"]["from"] == "2026-11-22T23:00:00Z"
    # From 06:00 the lookback is realtime again: planned from what it says.
    settled, _ = placement.evaluate(_at(22, 6), jobs=(job,))
    assert settled.reason is Reason.HOLD_PLANNED
    moved, _ = placement.evaluate(_at(22, 23), jobs=(job,))
    assert moved.reason is Reason.MOVED_TO_BATCH


def test_a_hold_as_long_as_acceptable_delay_ends_with_its_window_too() -> None:
    # acceptableDelay 12h: the next hold starts at 17:00; at 05:00 work would wait a day.
    changes = {**DEMAND, "latency.acceptableDelay": "12h"}
    spec = make_spec(**changes)
    observed = Observed(
        replicas=4, utilization=EXAMPLE_UTILIZATION, demand=100.0, backlog_metrics=True
    )
    moved = decide(spec, observed, State(name="summarizer"), now=_at(21, 22))
    assert moved.reason is Reason.MOVED_TO_BATCH
    job = JobObservation("summarizer-20261122-0100", JobOutcome.SUCCEEDED, _at(22, 2))
    held = Observed(replicas=0, demand=100.0, queue_depth=0.0, backlog_metrics=True, jobs=(job,))
    ended = decide(spec, held, moved.state, now=_at(22, 5))
    assert (ended.action, ended.reason, ended.desired_replicas) == (
        Action.RESTORE,
        Reason.RESTORED,
        4,
    )
    assert "DelayNotTolerated: the planned hold ended at 2026-11-22 05:00 UTC with its window" in (
        ended.message
    )


def test_after_a_hold_ends_the_plan_is_priced_with_the_demand_ratio_of_before_the_move() -> None:
    # While the 1h lookback still averages the held fleet's utilization (near zero), a unit of
    # demand would look nearly free: the plan announced at the restore would read a tenth of
    # its work five minutes later. The ratio recorded at the move prices it until 06:00.
    spec = make_spec(**ONE_POD, **{"metrics.demand": "sum(rate(requests_total[5m]))"})
    placement = _Placement(spec)
    planned, _ = placement.evaluate(_at(21, 20), demand=100.0)
    assert planned.plan is not None
    placement.evaluate(planned.plan.start, demand=100.0)  # the move
    job = JobObservation("summarizer-20261122-0100", JobOutcome.SUCCEEDED, _at(22, 3))
    held = {"replicas": 0, "utilization": None, "demand": 100.0, "queue_depth": 0.0}
    placement.evaluate(_at(22, 3, 5), jobs=(job,), **held)
    restored, _ = placement.evaluate(_at(22, 5), jobs=(job,), **held)
    assert restored.reason is Reason.RESTORED and restored.plan is not None
    early, _ = placement.evaluate(_at(22, 5, 5), utilization=0.02, demand=100.0, jobs=(job,))
    assert early.reason is Reason.HOLD_PLANNED and early.plan is not None
    assert early.plan.work_replica_hours == pytest.approx(restored.plan.work_replica_hours)
    assert f"forecast {restored.plan.work_replica_hours:.2f} replica-hours" in early.message
    # From 06:00 the lookback is realtime again: the ratio is measured from it (0.2 of the
    # fleet for the same demand: less than half the work per hour held).
    settled, _ = placement.evaluate(_at(22, 6), utilization=0.2, demand=100.0, jobs=(job,))
    assert settled.plan is not None
    per_hour = restored.plan.work_replica_hours / restored.plan.hours
    assert settled.plan.work_replica_hours / settled.plan.hours < 0.5 * per_hour
