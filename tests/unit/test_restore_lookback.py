"""After a restore in mid-day the lookback still averages the held fleet (scaled down, near
zero) for one lookback: demand per replica measured over it makes the load look nearly free.
The conversion recorded at the move is kept for that lookback, whatever restored the fleet, so
the placement does not move straight back on a forecast of the held fleet's hours.

A young history (seven hours, so the forecast is the lookback average), the example placement
(tests/unit/factories.py: 4 replicas, window 01:00-05:00 UTC, 4 parallel pods), demand only
(no queue depth), a load of 0.1 of the fleet until 13:00 rising to 0.9 by 17:00. The state is
kept only in status, as the operator keeps it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from placement.core.api import Action, Phase, WorkloadPlacementStatus
from placement.core.observation import LoadHistory
from placement.core.policy import Decision, JobObservation, JobOutcome, Observed, decide
from placement.core.reasons import Reason
from placement.core.status import build_status, state_from_status
from tests.unit.factories import make_spec, ramped_load

PER_REPLICA = 1000.0  # demand one busy replica serves
LOOKBACK = timedelta(hours=1)
STEP = timedelta(minutes=5)
QUIET = 0.1 * 4  # replica-hours an hour before the ramp: no hour brings less
JOB_RUNS = timedelta(minutes=30)  # a Job the operator creates succeeds this long after


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def _day() -> list[Decision]:
    """Every 5 minutes from 2026-11-21 00:00 to the next morning; utilization averaged over
    the lookback as the metric reads it (the held fleet's minutes read zero)."""
    spec = make_spec(
        **{
            "batch.jobTemplate.spec.parallelism": 4,
            "metrics.demand": "sum(rate(requests_total[5m]))",
            "metrics.lookback": "1h",
            "evaluationInterval": "5m",
        }
    )
    start = now = _at(21, 0)
    stored: dict[str, Any] = {}
    held: list[tuple[datetime, bool]] = []
    created: dict[str, datetime] = {}
    decisions = []
    while now < _at(22, 6):
        previous = WorkloadPlacementStatus.model_validate(stored) if stored else None
        state = state_from_status("summarizer", previous)
        held.append((now, state.holding))
        recent = [0.0 if was else ramped_load(at) for at, was in held if at > now - LOOKBACK]
        samples = tuple(
            (start + STEP * i, ramped_load(start + STEP * i) * 4 * PER_REPLICA)
            for i in range(int((now - start) / STEP))
        )
        observed = Observed(
            replicas=0 if state.holding else 4,
            utilization=None if state.holding else sum(recent) / len(recent),
            demand=ramped_load(now) * 4 * PER_REPLICA,
            history=LoadHistory("demand", STEP, samples, fetched_at=now),
            jobs=tuple(_job(name, at, now) for name, at in created.items()),
        )
        decision = decide(spec, observed, state, now=now)
        if decision.job_name is not None:
            created.setdefault(decision.job_name, now)
        stored = build_status(decision, previous, generation=1).model_dump(
            by_alias=True, mode="json", exclude_none=True
        )
        decisions.append(decision)
        now += STEP
    return decisions


def _job(name: str, created: datetime, now: datetime) -> JobObservation:
    done = created + JOB_RUNS
    if now < done:
        return JobObservation(name, JobOutcome.RUNNING)
    return JobObservation(name, JobOutcome.SUCCEEDED, finished_at=done, pod_hours=2.0)


def test_no_move_back_on_a_lookback_that_averages_the_held_fleet() -> None:
    decisions = _day()
    restores = [d for d in decisions if d.action is Action.RESTORE]
    # The morning's hold is restored by a gate once the ramp makes the hold's work too much.
    assert restores and restores[0].evaluated_at < _at(21, 17)
    first = restores[0].evaluated_at
    for decision in decisions:
        if first <= decision.evaluated_at < first + LOOKBACK and decision.plan is not None:
            # Forecast with the conversion recorded at the move: never less work an hour than
            # the quietest hour brought (the held fleet's lookback made it 0.16).
            plan = decision.plan
            assert plan.work_replica_hours / plan.hours >= QUIET, decision.message
    # So no hold is taken that the window cannot do: nothing missed, nothing falls back.
    reasons = {d.reason for d in decisions}
    assert Reason.BATCH_WINDOW_MISSED not in reasons
    assert not any(d.action is Action.FALLBACK for d in decisions)


def test_the_work_held_before_a_gate_restore_waits_for_the_windows_job() -> None:
    decisions = _day()
    restore = next(d for d in decisions if d.action is Action.RESTORE)
    assert restore.reason is Reason.RESTORED and "WindowTooShort" in restore.message
    # The work held since the move (05:00) is left to the next window's Job, as after a
    # planned restore, not to the restored fleet: no Job would have done it.
    moved = _at(21, 5)
    assert restore.state.waiting_hold == (moved, restore.evaluated_at)
    assert "waits for the job of window 2026-11-22 01:00-05:00 UTC" in restore.message
    after = [d for d in decisions if d.evaluated_at > restore.evaluated_at]
    # Realtime until that Job has done it: not moved back onto the held fleet's lookback.
    until_job = [d for d in after if d.evaluated_at < _at(22, 1)]
    assert all(d.phase is Phase.REALTIME and d.desired_replicas is None for d in until_job)
    assert not any(d.noteworthy for d in until_job[1:])  # one Event: the restore's
    jobs = [d for d in after if d.job_name is not None]
    assert [d.job_name for d in jobs] == ["summarizer-20261122-0100"]
    assert jobs[0].evaluated_at == _at(22, 1) and jobs[0].phase is Phase.REALTIME
    assert jobs[0].reason is Reason.BATCH_JOB_CREATED
    done = next(d for d in after if d.reason is Reason.BATCH_SUCCEEDED)
    assert done.evaluated_at < _at(22, 5) and "is done" in done.message
