"""A hold that went on until its window's start goes on inside the window, five minutes at a
time, while the window's Job, running on the work held, shows by its measured progress (the
queue depth) that it will finish with margin; then realtime is restored and the Job keeps the
work. Never on a forecast of the window's hours, never while the Job waits for admission,
failed or has succeeded.

The example placement (tests/unit/factories.py: 4 replicas, window 01:00-05:00 UTC), 4
parallel pods at batchEfficiency 2 and retryRate 0.0464: the Job does 7.65 replica-hours an
hour, 30.6 in the window (16 pod-hours). The load: 0.1 of the fleet 05:00-13:00, 0.9
otherwise, 1.2x and 0.8x on alternate days, so plans fit 0.8 of the window and may go on.
The held hold is the one planned at 05:00, gone on (as status says) until 01:00.
"""

from __future__ import annotations

import pytest

from placement.core.api import Action, Phase
from placement.core.policy import JobObservation, JobOutcome
from placement.core.reasons import EventType, Reason
from placement.replay.replay import ReplayOptions, replay
from placement.replay.scenarios import scenario
from tests.unit.factories import make_spec
from tests.unit.shaped_load import (
    JOB,
    SPEC,
    ShapedPlacement,
    at,
    varying_history,
)


def _held_until_the_window(queued: float) -> ShapedPlacement:
    """Moved at 05:00; the hold gone on until the window's start (status as _go_on_early
    leaves it); `queued` replica-hours waiting at 01:00."""
    placement = ShapedPlacement(make_spec(**SPEC), history=varying_history)
    moved = placement.evaluate(at(21, 5), held=False)
    assert moved.action is Action.MOVE_TO_BATCH and moved.plan is not None
    assert moved.plan.ends_early and moved.plan.margin == 0.8
    placement.stored["batch"]["plannedHold"]["until"] = at(22, 1).isoformat()
    placement.held_work = queued
    return placement


RUNNING = (JobObservation(JOB, JobOutcome.RUNNING),)


def test_a_hold_goes_on_inside_its_window_while_the_jobs_progress_shows_it_finishes() -> None:
    # 20 replica-hours waiting at 01:00, the last hour's 3.6 arrivals on top (the average
    # lags), and the fleet busy for ten minutes: 12.70 batch pod-hours of the window's 16.
    placement = _held_until_the_window(20.0)
    start = placement.evaluate(at(22, 1), held=True)
    assert (start.action, start.reason, start.job_name) == (
        Action.CREATE_JOB,
        Reason.BATCH_JOB_CREATED,
        JOB,
    )
    assert start.desired_replicas == 0 and start.state.holding  # held, the Job created
    assert start.state.planned_hold == (at(21, 5), at(22, 1, 5))
    assert "held on inside the window until 2026-11-22 01:05 UTC" in start.message
    assert "backlog projected at 12.70 batch pod-hours" in start.message
    assert "<= 0.95 of window capacity 16.00 pod-hours" in start.message
    # Five minutes on, the Job running: what it did counts, the hold goes on again.
    placement.held_work = 19.0
    on = placement.evaluate(at(22, 1, 5), held=True, jobs=RUNNING)
    assert on.state.holding and on.state.planned_hold == (at(21, 5), at(22, 1, 10))
    assert on.noteworthy is False
    # At 02:00 the Job has more left than three hours can do with margin: realtime again,
    # the work left to the running Job (a waiting hold), no fallback and no Warning.
    placement.held_work = 24.0
    restored = placement.evaluate(at(22, 2), held=True, jobs=RUNNING)
    assert (restored.action, restored.reason, restored.event_type) == (
        Action.RESTORE,
        Reason.RESTORED,
        EventType.NORMAL,
    )
    assert restored.desired_replicas == 4 and restored.state.fallback_until is None
    assert restored.state.waiting_hold == (at(21, 5), at(22, 1, 10))
    assert "ends inside its window: realtime from 2026-11-22 01:10" in restored.message
    running = placement.evaluate(at(22, 2, 5), held=False, jobs=RUNNING)
    assert (running.phase, running.job_name, running.desired_replicas) == (
        Phase.REALTIME,
        None,
        None,
    )
    assert f"job {JOB} running in window 2026-11-22 01:00-05:00 UTC" in running.message
    assert placement.evaluate(at(22, 3), held=False, jobs=RUNNING).noteworthy is False
    done = (JobObservation(JOB, JobOutcome.SUCCEEDED, at(22, 4, 30), pod_hours=14.0),)
    succeeded = placement.evaluate(at(22, 4, 30), held=False, jobs=done)
    assert (succeeded.reason, succeeded.state.missed_windows) == (Reason.BATCH_SUCCEEDED, 0)


def test_no_hold_goes_on_inside_the_window_when_the_job_would_not_finish_with_margin() -> None:
    # 26 replica-hours waiting, 3.6 arrived in the last hour: 15.88 batch pod-hours with the
    # fleet busy for ten minutes, over 0.95 of 16. The planned restore at the window's start.
    placement = _held_until_the_window(26.0)
    restored = placement.evaluate(at(22, 1), held=True)
    assert (restored.action, restored.reason) == (Action.RESTORE, Reason.RESTORED)
    assert "planned restore" in restored.message
    assert restored.state.waiting_hold == (at(21, 5), at(22, 1))


@pytest.mark.parametrize(
    "job",
    [
        JobObservation(JOB, JobOutcome.WAITING),  # suspended: Kueue has not admitted it
        JobObservation(JOB, JobOutcome.SUCCEEDED, at(22, 1, 4), pod_hours=0.5),
        JobObservation(JOB, JobOutcome.FAILED, at(22, 1, 4)),
    ],
    ids=["waiting", "succeeded", "failed"],
)
def test_a_hold_inside_the_window_ends_unless_the_job_is_running(job: JobObservation) -> None:
    placement = _held_until_the_window(12.0)
    start = placement.evaluate(at(22, 1), held=True)
    assert start.state.planned_hold == (at(21, 5), at(22, 1, 5))
    placement.held_work = 11.0
    ended = placement.evaluate(at(22, 1, 5), held=True, jobs=(job,))
    assert not ended.state.holding and ended.desired_replicas == 4


def test_a_job_created_late_in_the_window_gets_no_hold_inside_it() -> None:
    # The operator was down at 01:00: its Job's progress cannot be counted from the window's
    # start, so the hold ends at the first evaluation, the Job created for the held work.
    placement = _held_until_the_window(12.0)
    late = placement.evaluate(at(22, 1, 20), held=True)
    assert (late.action, late.reason) == (Action.RESTORE, Reason.RESTORED)
    assert not late.state.holding


# -- replay: bursty load, the holds that reached their window go on in it --------------------


def test_replay_of_bursty_load_holds_into_windows_and_misses_none() -> None:
    spec = make_spec(
        **{
            **SPEC,
            "batch.jobTemplate.spec.parallelism": 2,
            "costs.batchEfficiency": 6,
            "costs.retryRate": 0.05,
            "costs.batchPodHourly": 1.6,
            "costs.realtimeReplicaHourly": 4.1,
            "costs.dataStagingPerRun": 4.0,
            "costs.operationsPerDay": 12.0,
            "metrics.lookback": "1h",
            "evaluationInterval": "5m",
        }
    )
    case = scenario("bursty", spec.batch.window, replicas=6, days=5)
    result = replay(spec, case.samples, name="s", options=ReplayOptions(capacity_per_replica=1e3))
    inside = [d for d in result.decisions if "ends inside its window" in d.message]
    assert inside and result.missed_windows == 0
    for restore in inside:
        # Held into the window, restored before its end; its Job did the held work in time.
        job = next(j for j in result.jobs if j.window.contains(restore.at))
        assert job.window.start < restore.at < job.window.end
        assert job.outcome is JobOutcome.SUCCEEDED and job.finished_at is not None
        assert job.finished_at <= job.window.end
