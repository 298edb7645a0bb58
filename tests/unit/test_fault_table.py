"""The README's "When things go wrong" table, row by row, through reconcile and the executor
against the in-memory FakeCluster: the same Events, writes and status as the integration
tests on the real control plane, in well under a second each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from placement.core.jobpolicy import JobPodPolicy
from placement.core.observation import Outcome
from placement.core.policy import JobObservation, JobOutcome
from placement.core.reconcile import Settings
from placement.core.window import current_or_next_window, job_name
from tests.unit.factories import make_spec
from tests.unit.fake_operator import FakeOperator

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # inside the 01:00-05:00 window
BEFORE = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)  # outside it


def _job(now: datetime = NOW) -> str:
    """The name of the window's Job."""
    return job_name("summarizer", current_or_next_window(make_spec().batch.window, now))


def _held(op: FakeOperator, since: datetime = NOW - timedelta(hours=1)) -> None:
    op.cluster.deployments["summarizer"] = replace(
        op.cluster.deployments["summarizer"],
        replicas=0,
        original_replicas=4,
        managed_by="summarizer",
        held_since=since,
    )


@dataclass(frozen=True)
class Row:
    fault: str
    run: Callable[[FakeOperator], None]


def died_before_the_job_and_status(op: FakeOperator) -> None:
    _held(op)
    op.evaluate(NOW)
    assert op.reasons() == ["Recovered", "BatchJobCreated"]
    assert "held at 0 replicas by this placement (4 to restore, held since" in (
        op.effects.events[0].message
    )
    assert "no Job yet" in op.effects.events[0].message
    op.evaluate(NOW + timedelta(minutes=1))
    assert op.cluster.writes == [f"create job {_job()}"]  # once


def job_created_status_not_written(op: FakeOperator) -> None:
    _held(op)
    op.cluster.jobs[_job()] = JobObservation(_job(), JobOutcome.RUNNING)
    op.cluster.job_owner[_job()] = "summarizer"
    op.evaluate(NOW)
    assert op.reasons()[0] == "Recovered"
    assert f"found job {_job()} (Running)" in op.effects.events[0].message
    assert op.cluster.writes == []  # no second Job


def restore_landed_status_still_batch(op: FakeOperator) -> None:
    op.evaluate(NOW)
    op.cluster.restore("ml", "summarizer", replicas=4)  # the restore, not its status patch
    op.evaluate(NOW + timedelta(minutes=1))
    assert "ManualOverride" not in op.reasons()
    assert op.status["phase"] == "Batch"  # decided afresh: it moves again


def job_failed_while_down(op: FakeOperator) -> None:
    op.evaluate(NOW)
    op.cluster.finish(_job(), JobOutcome.FAILED, NOW + timedelta(minutes=10), 1.0)
    op.evaluate(NOW + timedelta(hours=2))  # past the 1h retryWindow
    assert op.reasons()[-1] == "FallbackRestored"
    assert op.cluster.deployments["summarizer"].replicas == 4


def restarted_in_batch(op: FakeOperator) -> None:
    op.evaluate(NOW)
    op.evaluate(NOW + timedelta(minutes=1))  # settled: the Job runs
    events, status = list(op.effects.events), dict(op.status)
    executed = op.evaluate(NOW + timedelta(minutes=2))  # a new operator, from status alone
    assert op.effects.events == events  # no new Event
    assert executed.report.status is None and op.status == status  # no write, same phase


def scaled_by_hand_while_held(op: FakeOperator) -> None:
    op.evaluate(NOW)
    op.cluster.scale("summarizer", 7)
    op.evaluate(NOW + timedelta(minutes=1))
    assert op.effects.events[-1].reason == "ManualOverride"
    assert str(op.effects.events[-1].type) == "Warning"
    assert op.status["phase"] == "Blocked"
    writes, events = list(op.cluster.writes), len(op.effects.events)
    op.evaluate(NOW + timedelta(minutes=2))
    assert op.cluster.writes == writes and len(op.effects.events) == events
    op.change_spec("target.warmReplicas", 1)
    op.evaluate(NOW + timedelta(minutes=3))
    assert "starting over from the 7 replicas" in op.effects.events[events].message
    assert op.cluster.writes[len(writes)] == "forget summarizer"


def autoscaler_on_the_target(op: FakeOperator) -> None:
    op.cluster.autoscalers["summarizer"] = ["HorizontalPodAutoscaler/summarizer"]
    op.evaluate(NOW)
    assert op.reasons() == ["ConflictingAutoscaler"]
    assert op.status["phase"] == "Blocked" and op.cluster.writes == []


def another_placement_holds_it_first(op: FakeOperator) -> None:
    op.cluster.placements.add("other")
    op.cluster.taken_by = "other"
    op.evaluate(NOW)
    assert op.reasons() == ["ConflictingAutoscaler"]
    assert "WorkloadPlacement/other took deployment/summarizer first" in (
        op.effects.events[0].message
    )
    assert op.cluster.writes == []  # no scale, no Job


def forged_original_replicas(op: FakeOperator) -> None:
    op.evaluate(NOW)
    op.status["originalReplicas"] = 60
    op.change_spec("latency.userVisible", True)
    op.evaluate(NOW + timedelta(minutes=1))
    assert op.cluster.writes[-1] == "restore summarizer 4"
    assert "originalReplicas" not in op.status


def deleted_after_a_manual_override(op: FakeOperator) -> None:
    scaled_by_hand_while_held(FakeOperator())  # the shape, checked on its own
    op.evaluate(NOW)
    op.cluster.scale("summarizer", 7)
    op.evaluate(NOW + timedelta(minutes=1))
    op.delete()
    assert op.cluster.writes[-1] == "forget summarizer"
    assert op.cluster.deployments["summarizer"].replicas == 7
    assert "keeps the 7 replicas set outside the operator" in op.effects.events[-1].message


def ttl_zero_in_the_template(op: FakeOperator) -> None:
    op.change_spec("batch.jobTemplate.spec.ttlSecondsAfterFinished", 0)
    op.evaluate(NOW)
    assert "ttlSecondsAfterFinished 0 raised to 3600" in op.effects.events[-1].message
    assert op.cluster.manifests[_job()]["spec"]["ttlSecondsAfterFinished"] == 3600


def many_finished_jobs(op: FakeOperator) -> None:
    for day in range(1, 6):
        name = f"summarizer-old-{day}"
        op.cluster.jobs[name] = JobObservation(
            name, JobOutcome.SUCCEEDED, NOW - timedelta(days=day), pod_hours=2.0
        )
        op.cluster.job_owner[name] = "summarizer"
    op.evaluate(NOW)  # records the outcomes in status
    op.evaluate(NOW + timedelta(minutes=1))
    assert [w for w in op.cluster.writes if w.startswith("delete")] == [
        "delete job summarizer-old-5",
        "delete job summarizer-old-4",
    ]


def job_refused_before_the_move(op: FakeOperator) -> None:
    op.cluster.refuse_jobs = "422: Job.batch is invalid"
    op.evaluate(NOW)
    assert op.reasons() == ["BatchJobRejected"]
    assert op.status["phase"] == "Blocked" and op.cluster.writes == []  # nothing scaled
    assert "deployment/summarizer left at 4 replicas" in op.effects.events[0].message


def job_refused_while_held(op: FakeOperator) -> None:
    op.evaluate(BEFORE)  # moves; the window's Job comes when it opens
    op.cluster.refuse_jobs, op.cluster.refuse_only_create = "422: Job.batch is invalid", True
    op.evaluate(NOW)
    assert op.reasons()[-1] == "BatchJobRejected"
    assert op.status["phase"] == "Batch"  # held: the missed window's fallback restores it


def job_pod_policy_refuses(op: FakeOperator) -> None:
    op.settings = Settings(scope_metrics=False, job_pod_policy=JobPodPolicy(service_accounts=()))
    op.evaluate(NOW)
    assert op.reasons() == ["BatchJobRejected"]
    assert "refused by the operator's job pod policy" in op.effects.events[0].message
    assert op.cluster.writes == []


def prometheus_stopped(op: FakeOperator) -> None:
    op.metrics.outcome = Outcome.ERROR
    op.evaluate(NOW)
    assert op.reasons() == ["MetricsUnavailable"] and op.cluster.writes == []
    op.metrics.outcome = Outcome.OK
    op.evaluate(NOW + timedelta(minutes=1))
    op.metrics.outcome = Outcome.TIMEOUT
    op.evaluate(NOW + timedelta(minutes=2))
    assert op.status["phase"] == "Batch"  # no fallback for an outage alone


def stale_sample(op: FakeOperator) -> None:
    op.metrics.age = timedelta(hours=2)  # older than metrics.lookback
    op.evaluate(NOW)
    assert op.reasons() == ["MetricsUnavailable"] and op.cluster.writes == []
    assert "old, older than metrics.lookback" in op.effects.events[0].message


def target_deleted_while_held(op: FakeOperator) -> None:
    op.evaluate(NOW)
    del op.cluster.deployments["summarizer"]
    op.evaluate(NOW + timedelta(minutes=1))
    assert op.reasons()[-1] == "TargetMissing"
    writes = list(op.cluster.writes)
    op.delete()  # can still be deleted
    assert op.cluster.writes == writes


ROWS = [
    Row("scaled down, then died before creating the Job and writing status",
        died_before_the_job_and_status),
    Row("Job created, status not written", job_created_status_not_written),
    Row("restore landed, status still says Batch", restore_landed_status_still_batch),
    Row("Job failed while the operator was down", job_failed_while_down),
    Row("operator restarted (upgrade) in Batch", restarted_in_batch),
    Row("a person or GitOps scales a held Deployment", scaled_by_hand_while_held),
    Row("HPA or KEDA ScaledObject on the target", autoscaler_on_the_target),
    Row("two placements on one Deployment", another_placement_holds_it_first),
    Row("status.originalReplicas forged", forged_original_replicas),
    Row("placement deleted after a ManualOverride", deleted_after_a_manual_override),
    Row("ttlSecondsAfterFinished: 0 in the template", ttl_zero_in_the_template),
    Row("many finished Jobs", many_finished_jobs),
    Row("the API server refuses the Job before the move", job_refused_before_the_move),
    Row("the API server refuses the Job while held", job_refused_while_held),
    Row("the job pod policy refuses the Job", job_pod_policy_refuses),
    Row("Prometheus stopped", prometheus_stopped),
    Row("a stale sample", stale_sample),
    Row("target Deployment deleted while held", target_deleted_while_held),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[row.fault for row in ROWS])
def test_when_things_go_wrong(row: Row) -> None:
    row.run(FakeOperator())
