"""Holds that end before their window: where the day's work does not fit the window, the quiet
hours right after the last window are held, realtime is restored at the hold's end (a planned
restore), and the window's Job does the held work while the Deployment is realtime. A Job that
fails then has nothing to restore: a Warning with the numbers, and the window's end says the
work was missed.

The example placement (tests/unit/factories.py: 4 replicas, window 01:00-05:00 UTC), 4
parallel pods, a load of 0.9 of the fleet except 05:00-13:00 (0.1): the window's own hours
bring 7.5 batch pod-hours of the 12.8 the window allows (0.8 of 4 pods x 4h), so a hold that
ends with the window holds 6 busy hours, which lose money (batch at 2.0 a pod-hour with
batchEfficiency 2 costs more than the replicas it saves); the quiet morning and a few busy
hours after it fit, and pay.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from placement.core.api import Action, Phase, WorkloadPlacementSpec
from placement.core.forecast import Forecast, HourForecast
from placement.core.planning import Planner, WorkForecast
from placement.core.policy import Decision, JobObservation, JobOutcome
from placement.core.reasons import EventType, Reason
from placement.core.window import current_or_next_window
from placement.replay.replay import ReplayOptions, replay
from placement.replay.series import Sample
from tests.unit.factories import make_spec, ramped_load
from tests.unit.shaped_load import (
    JOB,
    SPEC,
    ShapedPlacement,
    at,
    day_load,
    varying_history,
)


def _shaped() -> WorkForecast:
    starts = [at(21, 5) + timedelta(hours=i) for i in range(48)]
    hours = [HourForecast(start, day_load(start), day_load(start)) for start in starts]
    return WorkForecast(Forecast("utilization", "test shape", tuple(hours), True), 4.0)


def _planner(spec: WorkloadPlacementSpec, *, early_end: bool) -> Planner:
    window = current_or_next_window(spec.batch.window, at(21, 12))
    return Planner(spec.costs, 4, 0, 4, window, _shaped(), early_end=early_end)


def test_the_quiet_hours_after_the_last_window_are_held_when_the_evening_does_not_pay() -> None:
    spec = make_spec(**SPEC)
    plan = _planner(spec, early_end=True).choose(24).plan
    assert plan is not None and plan.ends_early
    # The morning (0.4 replica-hours an hour) and five busy hours (3.6 each) fit 12.8.
    assert (plan.start, plan.end) == (at(21, 5), at(21, 18))
    assert plan.batch_pod_hours <= plan.capacity_pod_hours == pytest.approx(4 * 4 * 0.8)
    assert plan.breakdown.savings > 0
    assert "ends before its window: realtime from 2026-11-21 18:00" in plan.describe()
    assert "the held work waits for the job of window 2026-11-22 01:00-05:00 UTC" in (
        plan.describe()
    )
    # Holds that end with the window only hold busy hours, which lose money.
    with_window = _planner(spec, early_end=False).choose(24).plan
    assert with_window is not None and not with_window.ends_early
    assert with_window.breakdown.savings < 0 < plan.breakdown.savings


def test_a_hold_that_fits_until_its_window_never_ends_early() -> None:
    # A flat quiet load: the whole day fits the window, held until its end as before.
    spec = make_spec(**SPEC)
    hours = tuple(HourForecast(at(21, 5) + timedelta(hours=i), 0.1, 0.1) for i in range(48))
    forecast = WorkForecast(Forecast("utilization", "flat", hours, True), 4.0)
    window = current_or_next_window(spec.batch.window, at(21, 12))
    plan = Planner(spec.costs, 4, 0, 4, window, forecast).choose(24).plan
    assert plan is not None and not plan.ends_early and plan.hours == 24


# -- a day through decide(), the state kept only in status ------------------------------------


def _held_until_the_planned_restore() -> tuple[ShapedPlacement, Decision]:
    placement = ShapedPlacement(make_spec(**SPEC))
    moved = placement.evaluate(at(21, 5), held=False)
    assert (moved.action, moved.reason) == (Action.MOVE_TO_BATCH, Reason.MOVED_TO_BATCH)
    assert moved.plan is not None and moved.plan.ends_early and moved.plan.start == at(21, 5)
    assert "ends before its window" in moved.message
    end = moved.plan.end if moved.plan is not None else None
    assert end is not None and end < at(22, 1)
    placement.held_work = 8 * 0.4
    during = placement.evaluate(at(21, 12), held=True)
    assert during.action is Action.WAIT and during.state.holding
    # The backlog counts what arrives until the hold's end, not until the window's.
    assert during.backlog is not None and during.backlog.watched and during.backlog.fits
    assert during.backlog.arriving_replica_hours == pytest.approx(
        (end - at(21, 13)).total_seconds() / 3600 * 3.6 + 0.4, rel=0.05
    )
    placement.held_work += (end - at(21, 13)).total_seconds() / 3600 * 3.6
    restored = placement.evaluate(end, held=True)
    return placement, restored


def test_the_planned_restore_leaves_the_held_work_to_the_windows_job() -> None:
    placement, restored = _held_until_the_planned_restore()
    assert (restored.action, restored.reason, restored.event_type) == (
        Action.RESTORE,
        Reason.RESTORED,
        EventType.NORMAL,
    )
    assert restored.desired_replicas == 4 and not restored.state.holding
    assert restored.message.startswith("deployment/summarizer 0 -> 4; planned restore: the planned")
    assert "the held work waits for the job of window 2026-11-22 01:00-05:00 UTC" in (
        restored.message
    )
    waiting = placement.stored["batch"]["waitingHold"]
    assert waiting["from"].startswith("2026-11-21T05:00") and waiting["windowStart"].startswith(
        "2026-11-22T01:00"
    )
    # Realtime until the window: no new hold for it, nothing to say again.
    evening = placement.evaluate(at(21, 22), held=False)
    assert (evening.action, evening.phase, evening.noteworthy) == (
        Action.WAIT,
        Phase.REALTIME,
        False,
    )
    assert evening.desired_replicas is None and evening.job_name is None
    assert "waits for the job of window 2026-11-22 01:00-05:00 UTC" in evening.message
    # In the window the Job is created while the Deployment stays realtime.
    created = placement.evaluate(at(22, 1), held=False)
    assert (created.action, created.phase, created.reason) == (
        Action.CREATE_JOB,
        Phase.REALTIME,
        Reason.BATCH_JOB_CREATED,
    )
    assert created.job_name == JOB and created.desired_replicas is None
    assert created.job_work_replica_hours == pytest.approx(placement.held_work, rel=0.05)
    running = JobObservation(JOB, JobOutcome.RUNNING)
    assert placement.evaluate(at(22, 2), held=False, jobs=(running,)).noteworthy is False
    done = JobObservation(JOB, JobOutcome.SUCCEEDED, at(22, 3), pod_hours=8.0)
    succeeded = placement.evaluate(at(22, 3), held=False, jobs=(done,))
    assert (succeeded.reason, succeeded.event_type) == (Reason.BATCH_SUCCEEDED, EventType.NORMAL)
    assert succeeded.state.missed_windows == 0
    # The window over, the next hold is planned as usual.
    after = placement.evaluate(at(22, 5), held=False, jobs=(done,))
    assert after.state.waiting_hold is None and "waitingHold" not in placement.stored["batch"]


def test_a_job_that_fails_while_realtime_is_reported_and_the_work_missed() -> None:
    placement, _ = _held_until_the_planned_restore()
    placement.evaluate(at(22, 1), held=False)
    failed = JobObservation(JOB, JobOutcome.FAILED, at(22, 2))
    warning = placement.evaluate(at(22, 2), held=False, jobs=(failed,))
    assert (warning.reason, warning.event_type, warning.noteworthy) == (
        Reason.BATCH_JOB_FAILED,
        EventType.WARNING,
        True,
    )
    assert warning.desired_replicas is None  # nothing to restore
    assert f"job {JOB} failed; the work held 2026-11-21 05:00 UTC" in warning.message
    assert "replica-hours forecast) is missed unless it is retried" in warning.message
    assert placement.evaluate(at(22, 3), held=False, jobs=(failed,)).noteworthy is False
    missed = placement.evaluate(at(22, 5), held=False, jobs=(failed,))
    assert (missed.reason, missed.event_type) == (Reason.BATCH_WINDOW_MISSED, EventType.WARNING)
    assert missed.state.missed_windows == 1 and missed.state.waiting_hold is None
    assert "is missed (deployment/summarizer was realtime, nothing to restore)" in missed.message


# -- replay: the held work is the Job's, not the restored fleet's ----------------------------


def test_replay_keeps_the_held_work_for_the_job_after_a_planned_restore() -> None:
    start = datetime(2026, 11, 14, tzinfo=UTC)
    samples = [
        Sample(moment, 4, ramped_load(moment))
        for moment in (start + timedelta(minutes=5 * i) for i in range(288 * 6))
    ]
    spec = make_spec(**SPEC, **{"metrics.lookback": "1h", "evaluationInterval": "5m"})
    result = replay(spec, samples, name="s", options=ReplayOptions(capacity_per_replica=1000.0))
    restores = [d for d in result.decisions if "planned restore" in d.message]
    assert len(restores) >= 3 and result.missed_windows == 0
    for restore in restores:
        # The hold from 05:00 until the restore; its window's Job, created while realtime,
        # did all of that work: the restored fleet drained none of it for free.
        held_from = restore.at.replace(hour=5, minute=0)
        held = sum(
            step.replicas * step.utilization * step.hours
            for step in result.steps
            if step.held and held_from <= step.at < restore.at
        )
        window = current_or_next_window(spec.batch.window, restore.at)
        job = next((job for job in result.jobs if job.window.label == window.label), None)
        if job is None:  # the series ended before the window: still waiting, not drained
            assert window.start > samples[-1].at
            assert result.pending_work == pytest.approx(held)
            continue
        assert job.created >= window.start and job.outcome is JobOutcome.SUCCEEDED
        assert not any(step.held for step in result.steps if window.start <= step.at < window.end)
        assert job.work_done == pytest.approx(held)


def test_a_hold_whose_backlog_outgrows_the_window_ends_early_instead_of_falling_back() -> None:
    # More work waiting by 16:00 than forecast (27 replica-hours, 14.13 batch pod-hours):
    # a quarter hour more would not fit 0.95 of the window (the half hour the averaged
    # queue lags by counted), but what waits now fits 0.9 of it. The hold ends now, that
    # work left to the window's Job: no fallback.
    placement = ShapedPlacement(make_spec(**SPEC))
    moved = placement.evaluate(at(21, 5), held=False)
    assert moved.plan is not None and moved.plan.ends_early and moved.plan.end > at(21, 17)
    placement.held_work = 27.0
    ended = placement.evaluate(at(21, 16), held=True)
    assert (ended.action, ended.reason, ended.event_type) == (
        Action.RESTORE,
        Reason.RESTORED,
        EventType.NORMAL,
    )
    assert ended.desired_replicas == 4 and ended.state.fallback_until is None
    assert ended.state.waiting_hold == (at(21, 5), at(21, 16))
    assert "the hold ends before its plan's end" in ended.message
    assert "waits for the job of window 2026-11-22 01:00-05:00 UTC" in ended.message
    created = placement.evaluate(at(22, 1), held=False)
    assert (created.action, created.job_name) == (Action.CREATE_JOB, JOB)


def test_a_hold_whose_backlog_outgrows_the_window_ends_sooner_where_a_later_end_fits() -> None:
    # 20 replica-hours waiting by 16:00 where the plan (until 20:00) expected 14: its end
    # would not fit the window, 18:00 does (0.95 of it). Held on until then, not restored
    # at 16:00 with two hours' work still to hold; restored at 18:00 as planned, no fallback.
    placement = ShapedPlacement(make_spec(**SPEC))
    moved = placement.evaluate(at(21, 5), held=False)
    assert moved.plan is not None and moved.plan.end == at(21, 20)
    placement.held_work = 20.0
    shorter = placement.evaluate(at(21, 16), held=True)
    assert (shorter.action, shorter.desired_replicas) == (Action.WAIT, 0)  # held
    assert shorter.state.holding and shorter.state.fallback_until is None
    assert shorter.state.planned_hold == (at(21, 5), at(21, 18))
    assert shorter.backlog is not None and shorter.backlog.fits
    placement.held_work += 2 * 3.6
    restored = placement.evaluate(at(21, 18), held=True)
    assert (restored.action, restored.reason, restored.event_type) == (
        Action.RESTORE,
        Reason.RESTORED,
        EventType.NORMAL,
    )
    assert "planned restore" in restored.message
    assert restored.state.waiting_hold == (at(21, 5), at(21, 18))


def test_a_hold_that_ends_before_its_window_goes_on_while_the_work_measured_fits() -> None:
    # Days that vary by 20%: the plan fits its high quantile into 0.8 of the window and
    # ends at 17:00. The work held by then is the forecast's typical: a quarter hour at a
    # time, the hold goes on until what waits and what arrives until the new end fill 0.95
    # of the window (19:30), with no restore and move back; then the planned restore.
    placement = ShapedPlacement(make_spec(**SPEC), history=varying_history)
    moved = placement.evaluate(at(21, 5), held=False)
    plan = moved.plan
    assert moved.action is Action.MOVE_TO_BATCH and plan is not None and plan.ends_early
    assert (plan.start, plan.end, plan.margin) == (at(21, 5), at(21, 17), 0.8)
    placement.held_work = plan.work_replica_hours
    went_on = placement.evaluate(at(21, 17), held=True)
    assert (went_on.action, went_on.desired_replicas) == (Action.WAIT, 0)  # held
    assert went_on.state.holding and went_on.state.planned_hold == (at(21, 5), at(21, 19, 30))
    assert "held on past the planned hold's end until 2026-11-21 19:30 UTC" in went_on.message
    assert "within 0.95 of it" in went_on.message
    assert went_on.backlog is not None and went_on.backlog.fits
    placement.held_work += 2.5 * 0.9 * 4 * 1.2
    restored = placement.evaluate(at(21, 19, 30), held=True)
    assert (restored.action, restored.reason) == (Action.RESTORE, Reason.RESTORED)
    assert restored.state.waiting_hold == (at(21, 5), at(21, 19, 30))
    created = placement.evaluate(at(22, 1), held=False)  # the window's Job does that work
    assert (created.action, created.job_name) == (Action.CREATE_JOB, JOB)


def test_a_hold_that_ends_before_its_window_does_not_go_on_past_what_fits() -> None:
    # The same hold, with more work held by 17:00 than the window has room for beyond it
    # (0.95 of it taken): restored at its planned end.
    placement = ShapedPlacement(make_spec(**SPEC), history=varying_history)
    placement.evaluate(at(21, 5), held=False)
    placement.held_work = 27.0
    restored = placement.evaluate(at(21, 17), held=True)
    assert (restored.action, restored.reason) == (Action.RESTORE, Reason.RESTORED)
    assert "planned restore" in restored.message
    assert restored.state.waiting_hold == (at(21, 5), at(21, 17))


def test_a_hold_priced_as_steady_goes_on_where_the_work_measured_fell_short() -> None:
    # Fourteen days alike: the plan fills 0.95 of the window (steady load) and ends at
    # 20:00, so it does not go on where the work held came to the forecast. Here half of it
    # came (bursty, 11-14: a hold re-priced as steady at its end, 26.5 replica-hours held of
    # 31.8 forecast, restored at 17:00 and its Job done in 2h20m of 4h): the window has room
    # the plan did not count on, and the hold goes on while the work measured fits.
    placement = ShapedPlacement(make_spec(**SPEC))
    moved = placement.evaluate(at(21, 5), held=False)
    plan = moved.plan
    assert moved.action is Action.MOVE_TO_BATCH and plan is not None and plan.ends_early
    assert (plan.end, plan.margin) == (at(21, 20), 0.95)
    placement.held_work = plan.work_replica_hours / 2
    went_on = placement.evaluate(at(21, 20), held=True)
    assert (went_on.action, went_on.desired_replicas) == (Action.WAIT, 0)  # held
    assert went_on.state.holding and went_on.state.fallback_until is None
    taken = went_on.state.planned_hold
    assert taken is not None and taken[0] == at(21, 5) and at(21, 22) <= taken[1] <= at(22, 1)
    assert went_on.backlog is not None and went_on.backlog.fits


def test_a_hold_priced_as_steady_ends_as_planned_where_the_work_came_as_forecast() -> None:
    placement = ShapedPlacement(make_spec(**SPEC))
    moved = placement.evaluate(at(21, 5), held=False)
    assert moved.plan is not None and moved.plan.margin == 0.95
    placement.held_work = moved.plan.work_replica_hours
    restored = placement.evaluate(at(21, 20), held=True)
    assert (restored.action, restored.reason) == (Action.RESTORE, Reason.RESTORED)
    assert "planned restore" in restored.message
    assert restored.state.waiting_hold == (at(21, 5), at(21, 20))
