"""A Job Kueue never admitted, once its window ends: with RestoreRealtime realtime serves its
work, so the suspended Job is deleted before Kueue can start it hours late; with Alert the
Deployment stays held and the Job stays queued, the only way its work gets done."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from placement.core.policy import JobObservation, JobOutcome
from placement.core.window import current_or_next_window, job_name
from tests.unit.factories import make_spec
from tests.unit.fake_operator import FakeOperator

IN_WINDOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # inside the 01:00-05:00 window
AFTER = datetime(2026, 11, 24, 5, 1, tzinfo=UTC)


def _queued_and_never_admitted(fallback: str) -> tuple[FakeOperator, str]:
    op = FakeOperator()
    op.change_spec("batch.queueName", "batch")
    op.change_spec("fallback.action", fallback)
    op.cluster.deployments["summarizer"] = replace(
        op.cluster.deployments["summarizer"],
        replicas=0,
        original_replicas=4,
        managed_by="summarizer",
        held_since=IN_WINDOW - timedelta(hours=3),
    )
    op.evaluate(IN_WINDOW)
    job = job_name("summarizer", current_or_next_window(make_spec().batch.window, IN_WINDOW))
    assert f"create job {job}" in op.cluster.writes
    op.cluster.jobs[job] = JobObservation(job, JobOutcome.WAITING)  # suspended by Kueue
    op.evaluate(IN_WINDOW + timedelta(hours=1))
    assert f"delete job {job}" not in op.cluster.writes  # its window still counts
    return op, job


def test_with_restore_realtime_the_suspended_job_is_deleted_when_its_window_ends() -> None:
    op, job = _queued_and_never_admitted("RestoreRealtime")
    op.evaluate(AFTER)
    assert op.reasons()[-1] == "KueueNotAdmitted"
    assert "it is deleted, so it cannot start late" in op.effects.events[-1].message
    assert op.cluster.deployments["summarizer"].replicas == 4
    assert job not in op.cluster.jobs
    assert op.cluster.writes.count(f"delete job {job}") == 1
    assert any(f"deleted job {job}, never admitted by Kueue" in line.message
               for line in op.effects.logs)  # fmt: skip
    op.evaluate(AFTER + timedelta(minutes=5))  # nothing more to delete
    assert op.cluster.writes.count(f"delete job {job}") == 1


def test_with_alert_the_suspended_job_stays_queued_while_the_deployment_stays_held() -> None:
    op, job = _queued_and_never_admitted("Alert")
    op.evaluate(AFTER)
    assert op.reasons()[-1] == "KueueNotAdmitted"
    assert "it stays queued: Kueue may still run it" in op.effects.events[-1].message
    assert op.cluster.deployments["summarizer"].replicas == 0
    assert op.cluster.jobs[job].outcome is JobOutcome.WAITING
    assert f"delete job {job}" not in op.cluster.writes


def test_the_current_windows_suspended_job_is_never_withdrawn() -> None:
    # Realtime (nothing held), and the window's own Job is still waiting for Kueue.
    op = FakeOperator()
    job = job_name("summarizer", current_or_next_window(make_spec().batch.window, IN_WINDOW))
    op.cluster.jobs[job] = JobObservation(job, JobOutcome.WAITING)
    op.cluster.job_owner[job] = "summarizer"
    op.metrics.value = 0.9  # busy: stays realtime
    op.evaluate(IN_WINDOW)
    assert job in op.cluster.jobs
