"""The batch Job for one window, built from the placement's jobTemplate, and which finished
Jobs may go. Pure."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from typing import Any

from placement.core.api import WorkloadPlacementSpec, WorkloadPlacementStatus
from placement.core.labels import KUEUE_QUEUE_LABEL, PLACEMENT_LABEL, WINDOW_LABEL, WORK_ANNOTATION
from placement.core.policy import JobObservation, JobOutcome

# A finished Job must outlive the operator's next look at it, or its success is never seen
# and the window's Job is created again (a TTL of 0 did so 7 times in 63 s).
MIN_TTL_SECONDS_AFTER_FINISHED = 3600
TTL_FIELD = "ttlSecondsAfterFinished"


def ttl_after_finished(spec: WorkloadPlacementSpec) -> tuple[Any, Any]:
    """(the template's ttlSecondsAfterFinished, the one the Job gets): a TTL shorter than an
    hour, or than three evaluation intervals, is raised to that; none stays none (the
    operator's history limits delete old Jobs)."""
    requested = spec.batch.job_template.spec.ttl_seconds_after_finished
    if requested is None:
        return None, None
    interval = spec.evaluation_interval.timedelta.total_seconds()
    floor = max(MIN_TTL_SECONDS_AFTER_FINISHED, math.ceil(3 * interval))
    return requested, max(requested, floor)


def ttl_note(spec: WorkloadPlacementSpec) -> str:
    """What an Event says about a raised TTL; empty when the template's is kept."""
    requested, granted = ttl_after_finished(spec)
    if requested == granted:
        return ""
    return (
        f"; jobTemplate's {TTL_FIELD} {requested} raised to {granted} so the Job's outcome is "
        "recorded before it is deleted"
    )


def job_manifest(
    spec: WorkloadPlacementSpec,
    *,
    placement: str,
    job_name: str,
    window_label: str,
    work_replica_hours: float | None = None,
) -> dict[str, Any]:
    """A batch/v1 Job: the template's metadata and spec, plus the labels that tie it to its
    placement and window (and to a Kueue LocalQueue when queueName is set), and the work it
    is given (learning sets it against the pod-hours it takes)."""
    template = spec.batch.job_template.model_dump(by_alias=True, exclude_none=True, mode="json")
    metadata = template.get("metadata") or {}
    labels = {
        **(metadata.get("labels") or {}),
        PLACEMENT_LABEL: placement,
        WINDOW_LABEL: window_label,
    }
    if spec.batch.queue_name:
        # Kueue admits the Job through this label; its webhook suspends it until admitted.
        labels[KUEUE_QUEUE_LABEL] = spec.batch.queue_name
    job_metadata: dict[str, Any] = {"name": job_name, "labels": labels}
    annotations = dict(metadata.get("annotations") or {})
    if work_replica_hours is not None:
        annotations[WORK_ANNOTATION] = f"{work_replica_hours:g}"
    if annotations:
        job_metadata["annotations"] = annotations
    job_spec = dict(template["spec"])
    if spec.batch.queue_name:
        # Created suspended, as Kueue asks of queued Jobs: without its webhook (Kueue not
        # installed, or the queue not managed) the Job still waits for admission instead of
        # starting outside the queue's quota.
        job_spec["suspend"] = True
    _, ttl = ttl_after_finished(spec)
    if ttl is not None:
        job_spec[TTL_FIELD] = ttl
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": job_metadata,
        "spec": job_spec,
    }


def expired_jobs(
    jobs: Iterable[JobObservation],
    recorded: WorkloadPlacementStatus | None,
    *,
    keep_succeeded: int,
    keep_failed: int,
    protected: Collection[str] = (),
) -> list[str]:
    """Finished Jobs beyond the newest `keep_succeeded` succeeded and `keep_failed` failed
    ones (CronJob's history limits), oldest first, that may be deleted: only those whose
    outcome and learned run the `recorded` status already holds, so deleting them loses
    nothing, and never one in `protected` (the current window's)."""
    finished = sorted(
        (job for job in jobs if job.finished_at is not None and job.outcome != JobOutcome.RUNNING),
        key=lambda job: job.finished_at,  # type: ignore[arg-type,return-value]
        reverse=True,
    )
    succeeded = [job for job in finished if job.outcome is JobOutcome.SUCCEEDED]
    failed = [job for job in finished if job.outcome is JobOutcome.FAILED]
    beyond = [*succeeded[keep_succeeded:], *failed[keep_failed:]]
    return [
        job.name
        for job in sorted(beyond, key=lambda job: job.finished_at)  # type: ignore[arg-type,return-value]
        if job.name not in protected and _is_recorded(job, recorded)
    ]


def unadmitted_jobs(jobs: Iterable[JobObservation], *, current: str) -> list[str]:
    """Jobs still suspended (Kueue never admitted them) but `current`, the current or next
    window's: their window ended without them. Withdrawn once realtime serves their work,
    so Kueue cannot start them hours late on work already done."""
    return [job.name for job in jobs if job.outcome is JobOutcome.WAITING and job.name != current]


def _is_recorded(job: JobObservation, status: WorkloadPlacementStatus | None) -> bool:
    if status is None or job.finished_at is None:
        return False
    batch = status.batch
    last = batch.last_succeeded if job.outcome is JobOutcome.SUCCEEDED else batch.last_failed
    if last is None or job.finished_at > last:
        return False  # its outcome is not in status yet
    if job.run() is None:
        return True  # nothing to learn from it
    runs = status.learning.runs
    # Learning keeps the latest runs in status: this one is there, or older than all of them.
    return any(run.job == job.name for run in runs) or (
        bool(runs) and job.finished_at < min(run.finished_at for run in runs)
    )
