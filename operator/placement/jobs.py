"""The batch Job for one window, built from the placement's jobTemplate. Pure."""

from __future__ import annotations

from typing import Any

from placement.api import WorkloadPlacementSpec
from placement.labels import KUEUE_QUEUE_LABEL, PLACEMENT_LABEL, WINDOW_LABEL, WORK_ANNOTATION


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
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": job_metadata,
        "spec": template["spec"],
    }
