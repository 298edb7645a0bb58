"""The backlog while held: demand and queue depth, which do not shrink with the fleet, are
projected to the window; when its work will no longer fit, realtime comes back before the
window is missed (BacklogWillMissWindow, a Warning with the numbers).

The example placement (8 pods, window 01:00-05:00 UTC, acceptableDelay 24h) with
metrics.demand: moved at 22:00 with 100 requests/s at utilization 0.44896 x 4 replicas, so
one request/s keeps 0.0179584 replicas busy (status.batch.replicasPerDemand).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from placement.core.api import Action, Phase
from placement.core.backlog import NOT_CONFIGURED
from placement.core.observation import DeploymentState, Observation, Outcome, Reading
from placement.core.policy import Decision, Observed, State, decide
from placement.core.reasons import EventType, Reason
from placement.core.reconcile import Placement, Restore, reconcile
from placement.core.status import build_status
from tests.unit.factories import EXAMPLE_UTILIZATION, make_spec

NAME = "summarizer"
DEMAND = {
    "metrics.demand": "sum(rate(requests_total[5m]))",
    "metrics.queueDepth": "sum(queue_items)",
}
WINDOW = "window 2026-11-22 01:00-05:00 UTC"


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def _observed(**changes: Any) -> Observed:
    values: dict[str, Any] = {"replicas": 4, "utilization": EXAMPLE_UTILIZATION}
    values.update(changes)
    return Observed(**values)


def _held(spec_changes: dict[str, Any] | None = None, demand: float | None = 100.0) -> State:
    spec = make_spec(**(spec_changes if spec_changes is not None else DEMAND))
    observed = _observed(demand=demand, backlog_metrics=spec.metrics.demand is not None)
    moved = decide(spec, observed, State(name=NAME), now=_at(21, 22))
    assert moved.reason is Reason.MOVED_TO_BATCH
    return moved.state


def _while_held(state: State, now: datetime, **changes: Any) -> Decision:
    values: dict[str, Any] = {"replicas": 0, "utilization": None, "backlog_metrics": True}
    values.update(changes)
    return decide(make_spec(**DEMAND), Observed(**values), state, now=now)


def test_the_conversion_is_recorded_at_the_move() -> None:
    state = _held()
    assert state.replicas_per_demand == pytest.approx(0.0179584)


def test_steady_demand_fits_and_status_shows_the_projection() -> None:
    decision = _while_held(_held(), _at(21, 23), demand=100.0, queue_depth=0.0)
    assert decision.action is Action.WAIT
    backlog = build_status(decision, None).batch.backlog
    assert backlog is not None
    # 100/s x 0.0179584 = 1.80 replicas busy x 6h until the window ends = 10.78 replica-hours
    # / efficiency 2 x (1 + 0.0464) = 5.64 batch pod-hours <= 8 pods x 4h.
    assert (backlog.watched, backlog.waiting_replica_hours) == (True, 0.0)
    assert backlog.arriving_replica_hours == 10.78
    assert backlog.projected_batch_pod_hours == 5.64
    assert backlog.window_capacity_pod_hours == 32.0


def test_rising_demand_restores_realtime_before_the_window_is_missed() -> None:
    # 600/s: 10.78 replicas busy x 6h = 64.65 replica-hours = 33.83 pod-hours > 32.
    decision = _while_held(_held(), _at(21, 23), demand=600.0, queue_depth=0.0)
    assert (decision.action, decision.phase, decision.reason, decision.event_type) == (
        Action.FALLBACK,
        Phase.FALLBACK,
        Reason.BACKLOG_WILL_MISS_WINDOW,
        EventType.WARNING,
    )
    assert decision.noteworthy and decision.actuate and decision.desired_replicas == 4
    assert decision.message == (
        "deployment/summarizer 0 -> 4; backlog projected at 33.83 batch pod-hours (waiting "
        "0.00 + arriving 64.65 replica-hours) > window capacity 32.00 pod-hours (8 pods x 4h) "
        f"of {WINDOW}; realtime restored before the window is missed; batch resumes with the "
        "next planned hold after 2026-11-22 05:00 UTC"
    )
    state = decision.state
    assert not state.holding and state.missed_windows == 0
    # Until the window ends the placement waits in Fallback, without a second Event.
    later = decide(make_spec(**DEMAND), _observed(demand=600.0), state, now=_at(21, 23, 30))
    assert (later.action, later.phase, later.reason) == (
        Action.WAIT,
        Phase.FALLBACK,
        Reason.BACKLOG_WILL_MISS_WINDOW,
    )
    assert not later.noteworthy and later.desired_replicas is None
    assert later.message == (
        "in fallback until 2026-11-22 05:00 UTC, when the window whose backlog would not fit ends"
    )
    # The next day is planned again from what is measured then.
    back = decide(make_spec(**DEMAND), _observed(demand=100.0), later.state, now=_at(22, 5))
    assert back.reason is Reason.MOVED_TO_BATCH


def test_a_queue_that_grew_restores_realtime() -> None:
    # 12M requests waiting = 59.86 replica-hours, + 10.78 arriving = 36.96 pod-hours > 32.
    decision = _while_held(_held(), _at(21, 23), demand=100.0, queue_depth=12_000_000.0)
    assert decision.reason is Reason.BACKLOG_WILL_MISS_WINDOW
    assert "(waiting 59.86 + arriving 10.78 replica-hours) > window capacity 32.00" in (
        decision.message
    )
    fits = _while_held(_held(), _at(21, 23), demand=100.0, queue_depth=6_000_000.0)
    assert fits.action is Action.WAIT


def test_inside_the_window_only_the_time_left_counts() -> None:
    # 03:00: the queue depth averaged over the 1h lookback is the queue of 02:30, 2h30m before
    # the window ends, on 8 pods = 20 pod-hours; 30.5M requests waiting = 152 replica-hours.
    decision = _while_held(_held(), _at(22, 3), demand=100.0, queue_depth=30_500_000.0)
    assert decision.reason is Reason.BACKLOG_WILL_MISS_WINDOW
    assert "window capacity 20.00 pod-hours (8 pods x 2h30m)" in decision.message


def test_a_job_half_an_hour_in_is_not_restored_for_work_it_has_done() -> None:
    """01:30, the window's Job running on 8 pods since 01:00 (15.3 replica-hours an hour):
    the queue is about 44 replica-hours now, 50 on average over the 1h lookback. That average
    is the queue of 01:00, so the window's whole 32 pod-hours are set against it: 49.88 +
    7.18 arriving until 05:00 = 29.86 pod-hours fit. Read as the queue of 01:30 against the
    3h30m left (28 pod-hours), the hold was restored, though the Job was on time."""
    decision = _while_held(_held(), _at(22, 1, 30), demand=100.0, queue_depth=10_000_000.0)
    assert decision.phase is Phase.BATCH
    assert decision.reason is not Reason.BACKLOG_WILL_MISS_WINDOW
    backlog = build_status(decision, None).batch.backlog
    assert backlog is not None
    assert (backlog.waiting_replica_hours, backlog.arriving_replica_hours) == (49.88, 7.18)
    assert backlog.projected_batch_pod_hours == 29.86
    assert backlog.window_capacity_pod_hours == 32.0


def test_with_fallback_alert_only_a_warning() -> None:
    changes = {**DEMAND, "fallback.action": "Alert"}
    state = _held(changes)
    spec = make_spec(**changes)
    observed = Observed(replicas=0, demand=600.0, queue_depth=0.0, backlog_metrics=True)
    decision = decide(spec, observed, state, now=_at(21, 23))
    assert (decision.reason, decision.event_type, decision.phase) == (
        Reason.BACKLOG_WILL_MISS_WINDOW,
        EventType.WARNING,
        Phase.BATCH,
    )
    assert decision.desired_replicas == 0 and decision.state.holding
    assert decision.message.endswith("; fallback Alert: deployment/summarizer left at 0 replicas")
    again = decide(spec, observed, decision.state, now=_at(21, 23, 5))
    assert again.reason is Reason.BACKLOG_WILL_MISS_WINDOW and not again.noteworthy
    # In the window its Job is still created.
    queued = Observed(replicas=0, demand=600.0, queue_depth=12_000_000.0, backlog_metrics=True)
    in_window = decide(spec, queued, again.state, now=_at(22, 1))
    assert in_window.reason is Reason.BACKLOG_WILL_MISS_WINDOW
    assert in_window.job_name == "summarizer-20261122-0100"


def test_without_demand_or_queue_metrics_the_backlog_is_not_watched_and_said_so() -> None:
    state = _held({}, demand=None)
    assert state.replicas_per_demand is None
    decision = decide(make_spec(), Observed(replicas=0), state, now=_at(21, 23))
    assert decision.action is Action.WAIT
    backlog = build_status(decision, None).batch.backlog
    assert backlog is not None
    assert (backlog.watched, backlog.note) == (False, NOT_CONFIGURED)
    moved = decide(make_spec(), _observed(), State(name=NAME), now=_at(21, 22))
    assert "backlog not watched (no metrics.demand or metrics.queueDepth)" in moved.message


def test_no_demand_before_the_move_means_no_conversion() -> None:
    state = _held(demand=0.0)
    decision = _while_held(state, _at(21, 23), demand=600.0, queue_depth=1e9)
    assert decision.action is Action.WAIT  # cannot judge: today's behaviour
    backlog = build_status(decision, None).batch.backlog
    assert backlog is not None and not backlog.watched
    assert "no demand was measured before the move" in backlog.note


def test_without_a_queue_the_waiting_work_is_estimated_from_the_hold() -> None:
    # Held since 22:00; at 23:00 with 600/s: 1h x 10.78 waiting, 6h x 10.78 arriving.
    decision = _while_held(_held(), _at(21, 23), demand=600.0)
    assert decision.reason is Reason.BACKLOG_WILL_MISS_WINDOW
    assert "(waiting 10.78 + arriving 64.65 replica-hours)" in decision.message
    assert "no queue depth: the work waiting is estimated from the hold's start" in (
        decision.message
    )


def test_through_reconcile_the_demand_reading_restores_with_its_event() -> None:
    manifest_spec = make_spec(**DEMAND).model_dump(by_alias=True, mode="json", exclude_none=True)
    placement = Placement(NAME, "ml", 1, manifest_spec, {})
    demand = Reading("demand", "q", Outcome.OK, 100.0, sampled_at=_at(21, 22))
    utilization = Reading("utilization", "u", Outcome.OK, EXAMPLE_UTILIZATION)
    realtime = DeploymentState(NAME, 4, None, None, resource_version="1")
    moved = reconcile(
        placement,
        make_spec(**DEMAND),
        Observation(realtime, utilization=utilization, demand=demand),
        _at(21, 22),
    )
    assert moved.report.event is not None and moved.report.event.reason == "MovedToBatch"
    status = moved.report.status
    assert status is not None and status["batch"]["replicasPerDemand"] == pytest.approx(0.0179584)
    held = Placement(NAME, "ml", 1, manifest_spec, status)
    risen = Reading("demand", "q", Outcome.OK, 600.0, sampled_at=_at(21, 23))
    deployment = DeploymentState(NAME, 0, 4, NAME, held_since=_at(21, 22), resource_version="2")
    plan = reconcile(
        held,
        make_spec(**DEMAND),
        Observation(deployment, claimed=(deployment,), demand=risen),
        _at(21, 23),
    )
    assert any(isinstance(step, Restore) and step.replicas == 4 for step in plan.steps)
    event = plan.report.event
    assert event is not None
    assert (event.type, event.reason) == (EventType.WARNING, "BacklogWillMissWindow")
    assert "backlog projected at" in event.message and "> window capacity 32.00" in event.message
    assert plan.report.status is not None
    assert plan.report.status["batch"].get("backlog") is None  # restored: nothing to watch
