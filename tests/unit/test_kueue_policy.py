"""A batch Job Kueue keeps suspended: waiting, not running and not failed; its window still
counts, and a window that ends with the Job still suspended is the fallback, with an Event
that says Kueue did not admit it."""

from __future__ import annotations

from datetime import datetime

from placement.core.api import Action, Phase
from placement.core.policy import JobOutcome, decide
from placement.core.reasons import EventType, Reason
from tests.unit.factories import make_spec
from tests.unit.test_policy import (
    IN_WINDOW,
    JOB,
    WINDOW_END,
    _at,
    _decide,
    _holding,
    _job,
    _observed,
)

QUEUED = {"batch.queueName": "batch", "latency.acceptableDelay": "2d"}


def test_a_suspended_job_waits_in_its_window_without_a_new_job_or_a_failure() -> None:
    state = _holding(current_job=JOB, last_reason=Reason.BATCH_JOB_CREATED)
    decision = _decide(
        make_spec(**QUEUED),
        _observed(replicas=0, jobs=(_job(JobOutcome.WAITING),)),
        state,
        now=IN_WINDOW,
    )
    assert (decision.action, decision.phase) == (Action.WAIT, Phase.BATCH)
    assert decision.reason is Reason.BATCH_JOB_CREATED and not decision.noteworthy
    assert decision.job_name is None  # the same Job: not created again
    assert decision.desired_replicas == 0  # still held
    assert f"job {JOB} suspended, waiting to be admitted from LocalQueue batch" in (
        decision.message
    )
    assert "window 2026-11-22 01:00-05:00 UTC still counts" in decision.message


def test_a_job_still_suspended_when_its_window_ends_falls_back_saying_kueue_did_not_admit_it() -> (
    None
):
    decision = _decide(
        make_spec(**QUEUED),
        _observed(replicas=0, jobs=(_job(JobOutcome.WAITING),)),
        _holding(current_job=JOB),
        now=WINDOW_END,
    )
    assert (decision.action, decision.phase) == (Action.FALLBACK, Phase.FALLBACK)
    assert (decision.reason, decision.event_type) == (Reason.KUEUE_NOT_ADMITTED, EventType.WARNING)
    assert decision.desired_replicas == 4 and decision.actuate  # RestoreRealtime
    assert (
        f"Kueue did not admit job {JOB} from LocalQueue batch before window "
        "2026-11-22 01:00-05:00 UTC ended" in decision.message
    )
    assert decision.state.missed_windows == 1 and decision.noteworthy

    # Later evaluations in the fallback keep the reason, without a new Event.
    later = decide(
        make_spec(**QUEUED), _observed(jobs=(_job(JobOutcome.WAITING),)), decision.state,
        now=_at(9),
    )  # fmt: skip
    assert (later.phase, later.reason, later.noteworthy) == (
        Phase.FALLBACK,
        Reason.KUEUE_NOT_ADMITTED,
        False,
    )


def test_with_fallback_alert_the_replicas_stay_and_the_reason_is_the_same() -> None:
    spec = make_spec(**QUEUED, **{"fallback.action": "Alert"})
    decision = _decide(
        spec,
        _observed(replicas=0, jobs=(_job(JobOutcome.WAITING),)),
        _holding(current_job=JOB),
        now=WINDOW_END,
    )
    assert (decision.reason, decision.event_type) == (Reason.KUEUE_NOT_ADMITTED, EventType.WARNING)
    assert decision.desired_replicas is None
    assert "fallback Alert: deployment/summarizer left at 0 replicas" in decision.message


def test_an_admitted_job_that_is_still_running_at_the_end_is_an_ordinary_missed_window() -> None:
    decision = _decide(
        make_spec(**QUEUED),
        _observed(replicas=0, jobs=(_job(JobOutcome.RUNNING),)),
        _holding(current_job=JOB),
        now=WINDOW_END,
    )
    assert decision.reason is Reason.FALLBACK_RESTORED
    assert "Kueue" not in decision.message


def test_a_job_admitted_and_finished_in_time_is_a_success() -> None:
    finished = datetime(2026, 11, 22, 4, 0, tzinfo=IN_WINDOW.tzinfo)
    decision = _decide(
        make_spec(**QUEUED),
        _observed(replicas=0, jobs=(_job(JobOutcome.SUCCEEDED, finished),)),
        _holding(current_job=JOB, last_reason=Reason.BATCH_JOB_CREATED),
        now=_at(4, 5),
    )
    assert decision.reason is Reason.BATCH_SUCCEEDED
