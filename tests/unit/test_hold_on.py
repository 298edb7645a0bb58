"""Held at the end of a hold taken with its window, when holding through to the next window's
end would not fit: the next window's hold starts now and ends before that window (one hold
across the window's end, restored once at its end) where it saves about as much as the plan;
where it saves less (work already waiting takes part of the next window), realtime comes back
as planned and the plan's hold starts later.
"""

from __future__ import annotations

from datetime import UTC, datetime

from placement.core.api import Action
from placement.core.policy import (
    HOLD_ON_SHARE,
    Decision,
    JobObservation,
    JobOutcome,
    Observed,
    State,
    decide,
)
from placement.core.reasons import Reason
from tests.unit.factories import make_spec

# The example placement (4 replicas, 01:00-05:00 UTC) on 2 pods, with cheap batch work: the
# hours a hold fits are what it saves.
CHANGES = {
    "metrics.demand": "sum(rate(requests_total[5m]))",
    "metrics.queueDepth": "sum(queue_items)",
    "batch.jobTemplate.spec.parallelism": 2,
    "costs.batchEfficiency": 6.0,
    "costs.batchPodHourly": 0.5,
}
JOB = "summarizer-20261122-0100"


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def _at_the_window_end(job_done: datetime) -> tuple[Decision, Decision]:
    """A flat load of 0.6: the plan holds the evening hours that fit the window, the move,
    the window's Job succeeding at `job_done`, and the decision at 05:00, when the hold taken
    ends. Returns the plan's decision and the one at 05:00."""
    spec = make_spec(**CHANGES)
    realtime = Observed(replicas=4, utilization=0.6, demand=100.0, backlog_metrics=True)
    planned = decide(spec, realtime, State(name="summarizer"), now=_at(21, 5, 30))
    assert planned.reason is Reason.HOLD_PLANNED and planned.plan is not None
    moved = decide(spec, realtime, planned.state, now=planned.plan.start)
    assert moved.reason is Reason.MOVED_TO_BATCH
    job = JobObservation(JOB, JobOutcome.SUCCEEDED, job_done)
    held = Observed(replicas=0, demand=100.0, queue_depth=0.0, backlog_metrics=True, jobs=(job,))
    succeeded = decide(spec, held, moved.state, now=job_done + (_at(22, 4, 5) - _at(22, 4)))
    assert succeeded.reason is Reason.BATCH_SUCCEEDED
    return planned, decide(spec, held, succeeded.state, now=_at(22, 5))


def test_the_hold_goes_on_across_the_window_end_into_the_next_windows_early_hold() -> None:
    planned, at_end = _at_the_window_end(_at(22, 4, 50))
    assert planned.plan is not None
    evening = planned.plan.hours
    assert 10 <= evening < 20  # a day's work does not fit: part of the day is held
    # No restore at 05:00 and no move back in the evening: one hold across the window's end,
    # restored once, when it ends before the next window.
    assert (at_end.action, at_end.state.holding, at_end.desired_replicas) == (Action.WAIT, True, 0)
    plan = at_end.plan
    assert plan is not None and plan.ends_early and plan.start == _at(22, 5)
    assert at_end.state.planned_hold == (plan.start, plan.end)
    assert plan.end <= _at(23, 1) and plan.fits
    assert plan.hours >= evening - 1  # about the hours the evening's hold had
    assert "held on past the planned hold's end into the planned hold" in at_end.message
    assert "ends before its window" in at_end.message
    # At its end (gone on, where the plan kept room for the forecast's error, while the work
    # measured fits the window) the Deployment comes back, the held work waiting for the
    # window's Job; before the next window.
    state, end = at_end.state, plan.end
    for _ in range(48):
        queue = 100.0 * 3600 * (end - plan.start).total_seconds() / 3600  # demand-seconds
        later = Observed(replicas=0, demand=100.0, queue_depth=queue, backlog_metrics=True)
        decision = decide(make_spec(**CHANGES), later, state, now=end)
        if decision.action is not Action.WAIT:
            break
        assert decision.state.holding and decision.state.planned_hold is not None
        state, end = decision.state, decision.state.planned_hold[1]
    assert (decision.action, decision.reason) == (Action.RESTORE, Reason.RESTORED)
    assert "planned restore" in decision.message
    assert plan.end <= end <= _at(23, 1)


def test_realtime_comes_back_as_planned_when_the_early_hold_saves_less() -> None:
    # The Job succeeded at 01:40: what arrived since waits for the next window and takes
    # part of it, so a hold from now fits fewer hours than the evening's plan.
    _, at_end = _at_the_window_end(_at(22, 1, 40))
    assert (at_end.action, at_end.reason) == (Action.RESTORE, Reason.RESTORED)
    assert not at_end.state.holding and at_end.desired_replicas == 4
    assert at_end.plan is not None and at_end.plan.start > _at(22, 5)
    assert "the planned hold ended at 2026-11-22 05:00 UTC with its window" in at_end.message
    assert HOLD_ON_SHARE < 1
