"""Finished Jobs: kept long enough for their outcome to be recorded, and no longer than the
history limits once it is (newest 3 succeeded, 1 failed by default), like a CronJob's."""

from __future__ import annotations

import time

import pytest
from prometheus_client import Gauge

from placement.core.api import WorkloadPlacementSpec
from placement.core.jobs import job_manifest
from placement.localenv.prometheus import LocalPrometheus
from tests.integration.harness import Placements, measured_deployment, placement
from tests.integration.wait import until

pytestmark = pytest.mark.usefixtures("operator")


def test_a_zero_ttl_is_raised_and_the_window_runs_once(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "fleeting")
    manifest = placement("fleeting", placements.namespace, deployment="fleeting")
    manifest["spec"]["batch"]["jobTemplate"]["spec"]["ttlSecondsAfterFinished"] = 0
    placements.apply(manifest)

    moved = placements.wait_for_event("fleeting", "MovedToBatch", timeout=90)
    assert "ttlSecondsAfterFinished 0 raised to 3600" in moved.message, moved.message
    status = placements.wait_for_reason("fleeting", "BatchSucceeded", timeout=90)
    assert status["batch"]["lastSucceeded"]
    time.sleep(6)  # three more evaluations: the finished Job is still there, none is added
    jobs = placements.jobs("fleeting")
    assert [job.spec.ttl_seconds_after_finished for job in jobs] == [3600]
    reasons = [e.reason for e in placements.events("fleeting")]
    assert "BatchJobCreated" not in reasons and "BatchWindowMissed" not in reasons, reasons


def test_finished_jobs_beyond_the_history_limit_are_deleted_once_recorded(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    ns = placements.namespace
    measured_deployment(placements, prometheus, utilization, "aged")
    manifest = placement("aged", ns, deployment="aged")
    placements.apply(manifest)
    current = placements.wait_for_reason("aged", "BatchSucceeded", timeout=90)["batch"][
        "currentJob"
    ]
    # Five more finished Jobs labelled as the operator labels its own, one after another
    # (Job finish times have one-second resolution).
    spec = WorkloadPlacementSpec.model_validate(manifest["spec"])
    others = [f"aged-2026010{day}-0100" for day in range(1, 6)]
    for name in others:
        placements.batch.create_namespaced_job(
            ns, job_manifest(spec, placement="aged", job_name=name, window_label=name[5:])
        )
        until(
            lambda name=name: placements.batch.read_namespaced_job(name, ns).status.succeeded,  # type: ignore[misc]
            bool,
            what=f"{name} succeeded",
        )
        time.sleep(1.1)

    kept = until(
        lambda: sorted(str(job.metadata.name) for job in placements.jobs("aged")),
        lambda names: len(names) <= 4,
        timeout=60,
        what="the Jobs beyond the newest three deleted",
    )
    # The newest three succeeded, and the current window's, which is never deleted.
    assert kept == sorted([current, *others[-3:]]), kept
    # What learning needs stays in status: every run, deleted Jobs' included.
    runs = placements.status("aged")["learning"]["runs"]
    assert {run["job"] for run in runs} == {current, *others}
