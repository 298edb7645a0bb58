"""Which finished Jobs go, and the TTL every Job keeps: the outcome of a window must be
recorded before its Job can vanish, and deleting old Jobs must not lose what learning uses."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from placement.core.api import WorkloadPlacementSpec, WorkloadPlacementStatus
from placement.core.jobs import expired_jobs, job_manifest, ttl_after_finished, ttl_note
from placement.core.learning import learn
from placement.core.policy import JobObservation, JobOutcome
from placement.core.status import learning_status
from tests.unit.factories import example_manifest

T0 = dt.datetime(2026, 11, 1, 2, 0, tzinfo=dt.UTC)


def _spec(ttl: object = None, interval: str = "5m") -> WorkloadPlacementSpec:
    manifest = copy.deepcopy(example_manifest())
    if ttl is not None:
        manifest["spec"]["batch"]["jobTemplate"]["spec"]["ttlSecondsAfterFinished"] = ttl
    manifest["spec"]["evaluationInterval"] = interval
    return WorkloadPlacementSpec.model_validate(manifest["spec"])


def _job_spec(spec: WorkloadPlacementSpec) -> dict[str, object]:
    manifest = job_manifest(spec, placement="p", job_name="p-20261101-0200", window_label="w")
    return dict(manifest["spec"])


@pytest.mark.parametrize(
    ("ttl", "interval", "granted"),
    [(0, "5m", 3600), (60, "5m", 3600), (7200, "5m", 7200), (0, "2h", 21600)],
)
def test_a_short_ttl_is_raised_so_the_outcome_is_seen_first(
    ttl: int, interval: str, granted: int
) -> None:
    spec = _spec(ttl, interval)
    assert _job_spec(spec)["ttlSecondsAfterFinished"] == granted
    assert ttl_after_finished(spec) == (ttl, granted)
    if ttl != granted:
        assert f"ttlSecondsAfterFinished {ttl} raised to {granted}" in ttl_note(spec)
    else:
        assert ttl_note(spec) == ""


def test_no_ttl_stays_none_the_history_limits_clean_up() -> None:
    spec = _spec()
    assert "ttlSecondsAfterFinished" not in _job_spec(spec)
    assert ttl_note(spec) == ""


def _job(name: str, hours: int, outcome: JobOutcome = JobOutcome.SUCCEEDED) -> JobObservation:
    return JobObservation(
        name=name,
        outcome=outcome,
        finished_at=None if outcome is JobOutcome.RUNNING else T0 + dt.timedelta(hours=hours),
        pod_hours=2.0,
        failed_pod_hours=2.0 if outcome is JobOutcome.FAILED else 0.0,
        work_replica_hours=8.0,
    )


def _recorded(jobs: list[JobObservation], max_runs: int = 20) -> WorkloadPlacementStatus:
    """The status an evaluation that saw `jobs` writes: outcomes and learned runs."""
    runs = tuple(run for job in jobs if (run := job.run()) is not None)
    runs = tuple(sorted(runs, key=lambda r: r.finished_at))[-max_runs:]
    succeeded = [j.finished_at for j in jobs if j.outcome is JobOutcome.SUCCEEDED]
    failed = [j.finished_at for j in jobs if j.outcome is JobOutcome.FAILED]
    status = WorkloadPlacementStatus()
    status.batch.last_succeeded = max(succeeded, default=None)  # type: ignore[type-var]
    status.batch.last_failed = max(failed, default=None)  # type: ignore[type-var]
    status.learning = learning_status(None, runs)
    return status


def test_like_cronjob_the_newest_succeeded_and_failed_are_kept() -> None:
    jobs = [
        *(_job(f"ok-{h}", h) for h in range(6)),
        *(_job(f"bad-{h}", 10 + h, JobOutcome.FAILED) for h in range(3)),
        _job("running", 0, JobOutcome.RUNNING),
    ]
    expired = expired_jobs(jobs, _recorded(jobs), keep_succeeded=3, keep_failed=1)
    assert expired == ["ok-0", "ok-1", "ok-2", "bad-0", "bad-1"]  # oldest first


def test_a_job_whose_outcome_status_does_not_hold_yet_is_kept() -> None:
    old = [_job(f"ok-{h}", h) for h in range(4)]
    newer = _job("ok-9", 9)
    # Status was written before ok-9 finished: even with no history kept, ok-9 stays.
    expired = expired_jobs([*old, newer], _recorded(old), keep_succeeded=0, keep_failed=0)
    assert expired == ["ok-0", "ok-1", "ok-2", "ok-3"]
    assert expired_jobs(old, None, keep_succeeded=0, keep_failed=0) == []


def test_the_current_windows_job_is_never_deleted() -> None:
    jobs = [_job("ok-0", 0), _job("failed-now", 1, JobOutcome.FAILED)]
    expired = expired_jobs(
        jobs, _recorded(jobs), keep_succeeded=0, keep_failed=0, protected={"failed-now"}
    )
    # Deleting a failed Job of the open window would have it created again.
    assert expired == ["ok-0"]


def test_learning_keeps_what_it_needs_in_status_not_in_jobs() -> None:
    spec = _spec()
    jobs = [_job(f"ok-{h:02d}", h) for h in range(30)]
    status = _recorded(jobs, max_runs=spec.learning.max_runs)
    before = learn(spec.costs, spec.learning, status.learning.runs)
    expired = expired_jobs(jobs, status, keep_succeeded=3, keep_failed=1)
    assert len(expired) == 27
    # Learning reads status.learning.runs (the latest maxRuns), so nothing it uses is lost.
    after = learn(spec.costs, spec.learning, status.learning.runs)
    assert after == before and after.batch_efficiency.runs == 20


def test_a_run_not_yet_in_learning_keeps_its_job() -> None:
    jobs = [_job(f"ok-{h}", h) for h in range(5)]
    status = _recorded(jobs)
    status.learning.runs = [r for r in status.learning.runs if r.job != "ok-1"]
    assert "ok-1" not in expired_jobs(jobs, status, keep_succeeded=1, keep_failed=1)
