"""The work a window's Job is given (its annotation, and the figure its BatchJobCreated
message is checked with) is the work held for it: the hours already past at their own
day's load. The plan prices a past hour as the same hour a day later (a daily figure), which
over a weekend gave Monday's Job Sunday's held hours as Monday's."""

from __future__ import annotations

from datetime import datetime

import pytest

from placement.core.api import Action
from placement.core.observation import LoadHistory
from placement.core.reasons import Reason
from tests.unit.factories import make_spec
from tests.unit.shaped_load import PER_REPLICA, SPEC, ShapedPlacement, at, day_load, history


def weekly_load(moment: datetime) -> float:
    """The shaped day on weekdays (0.1 of the fleet 05:00-13:00, 0.9 otherwise), 0.05 at
    weekends (2026-11-21 is a Saturday)."""
    return 0.05 if moment.weekday() >= 5 else day_load(moment)


def weekly_history(now: datetime) -> LoadHistory:
    """Three weeks of it as demand, 5-minute samples: the forecast learns the weekly shape."""
    return history(now, load=weekly_load, days=21)


def test_the_monday_job_after_a_weekend_hold_is_given_sundays_work_not_mondays() -> None:
    placement = ShapedPlacement(make_spec(**SPEC), history=weekly_history, load=weekly_load)
    moved = placement.evaluate(at(21, 5), held=False)  # Saturday, after its window
    assert moved.action is Action.MOVE_TO_BATCH
    assert moved.plan is not None and "weekly shape" in moved.plan.basis
    # Held through Sunday's window (its Job succeeded) on to Monday's: the hold of Monday's
    # window is Sunday 05:00 - Monday 05:00, 19 hours of it Sunday's.
    batch = placement.stored["batch"]
    batch["plannedHold"]["from"], batch["plannedHold"]["until"] = (
        at(22, 5).isoformat(),
        at(23, 5).isoformat(),
    )
    batch["lastSucceeded"] = at(22, 2).isoformat()
    batch["currentJob"] = "summarizer-20261122-0100"
    placement.held_work = 7.6  # Sunday's 3.8 replica-hours and Monday's first hour, 3.6
    created = placement.evaluate(at(23, 1), held=True)
    assert (created.action, created.reason) == (Action.CREATE_JOB, Reason.BATCH_JOB_CREATED)
    # Sunday 05:00-24:00 at 0.2 replicas' worth an hour, Monday 00:00-05:00 at 3.6: 21.8
    # (priced as Monday 05:00 - Tuesday 01:00 those hours made it 60.8).
    assert created.job_work_replica_hours == pytest.approx(21.8, rel=0.05)
    # 21.8 / batchEfficiency 2 = 10.9 pod-hours: 2h44m of 4 parallel pods, within the 4h
    # left (the plan's figure said "best effort: only 4h left, batch needs 7h36m").
    assert "best effort" not in created.message


def test_a_job_created_while_realtime_quotes_the_work_held_at_its_own_days_load() -> None:
    """A hold that ended before Monday's window (Sunday 05:00-23:00): the Job created in the
    window while realtime says the work held is Sunday's, as the work it is given."""
    placement = ShapedPlacement(make_spec(**SPEC), history=weekly_history, load=weekly_load)
    placement.evaluate(at(21, 5), held=False)
    placement.stored["phase"] = "Realtime"
    placement.stored.pop("originalReplicas")
    placement.stored["batch"] = {
        "missedWindows": 0,
        "waitingHold": {
            "from": at(22, 5).isoformat(),
            "until": at(22, 23).isoformat(),
            "windowStart": at(23, 1).isoformat(),
            "windowEnd": at(23, 5).isoformat(),
        },
        "lastSucceeded": at(22, 2).isoformat(),
        "replicasPerDemand": 1 / PER_REPLICA,
    }
    placement.held_work = 3.6
    created = placement.evaluate(at(23, 1), held=False)
    assert (created.action, created.reason) == (Action.CREATE_JOB, Reason.BATCH_JOB_CREATED)
    assert created.desired_replicas is None  # realtime
    # 18 Sunday hours at 0.2 replicas' worth (as Monday's hours they said 39.20).
    assert "2026-11-22 23:00 UTC (3.60 replica-hours forecast)" in created.message
    assert created.job_work_replica_hours == pytest.approx(3.6, rel=0.05)
