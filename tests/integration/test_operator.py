"""The operator against a real control plane and a real Prometheus, one test per path.

Numbers used throughout (harness.placement defaults): 4 replicas at 4 USD/h, utilization 0.2,
batch pods at 2 USD/h doing 4x a realtime replica-hour, staging 5/run, operations 10/day,
retry rate 5%: work 4*0.2*24 = 19.2 replica-hours -> 4.8 batch pod-hours -> batch 9.60,
retries 0.48.
"""

from __future__ import annotations

import pytest
from prometheus_client import Gauge

from placement.core.api import GROUP, PLURAL, VERSION
from placement.localenv.process import ManagedProcess
from placement.localenv.prometheus import LocalPrometheus
from placement.runtime.watchbodies import LAST_APPLIED
from tests.integration.harness import (
    Placements,
    measured_deployment,
    placement,
    utilization_query,
)
from tests.integration.wait import until

pytestmark = pytest.mark.usefixtures("operator")


def test_moves_to_batch_keeps_warm_replicas_and_runs_the_windows_job(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "summarizer")
    placements.apply(
        placement("summarizer", placements.namespace, deployment="summarizer", warm_replicas=1)
    )

    status = placements.wait_for_reason("summarizer", "BatchSucceeded", timeout=90)
    assert placements.replicas("summarizer") == 1  # hybrid serving: one warm replica
    assert status["phase"] == "Batch"
    assert status["originalReplicas"] == 4
    # capacity avoided (4-1)*4*24 = 288; savings 288 - 9.60 - 5 - 0.48 - 10 = 262.92
    assert status["decision"]["breakdown"] == {
        "capacityAvoided": 288.0,
        "batchProcessing": 9.6,
        "dataStaging": 5.0,
        "retries": 0.48,
        "operations": 10.0,
        "missedWindowRisk": 0.0,
    }
    assert status["decision"]["savingsPerDay"] == 262.92
    # The whole day's work fits the window: the planned hold is the day before its end.
    hold = status["batch"]["plannedHold"]
    assert hold["hours"] == 24.0 and hold["forecastBatchPodHours"] <= hold["windowCapacityPodHours"]

    [job] = placements.jobs("summarizer")
    window_label = job.metadata.labels["placement.runplacement.io/window"]
    assert job.metadata.name == f"summarizer-{window_label}"
    assert job.metadata.owner_references[0].kind == "WorkloadPlacement"
    assert job.status.succeeded == 4  # parallelism 4, all completed on kwok
    # Learning measured the finished Job: the work the operator gave it (annotated on it)
    # beside the pod-hours it took; one run is not yet enough to use (minRuns 5).
    [run] = status["learning"]["runs"]
    assert run["job"] == job.metadata.name and run["succeeded"] is True
    work = float(job.metadata.annotations["placement.runplacement.io/work-replica-hours"])
    assert run["workReplicaHours"] == pytest.approx(work) and work > 0
    assert run["failedPodHours"] == 0
    assert status["learning"]["retryRate"] == {
        "declared": 0.05,
        "measured": 0.0,
        "runs": 1,
        "inUse": False,
    }
    assert status["learning"]["batchEfficiency"]["declared"] == 4

    moved = placements.wait_for_event("summarizer", "MovedToBatch")
    assert moved.type == "Normal"
    assert moved.message.startswith(
        "saves 262.92 USD/day = capacity avoided 288.00 - batch 9.60 - "
        "staging 5.00 - retries 0.48 - operations 10.00 - missed windows 0.00; "
        "deployment/summarizer 4 -> 1; planned hold "
    )
    assert moved.message.endswith(
        "(4 pods x 4h x 0.8); backlog not watched (no metrics.demand or metrics.queueDepth); "
        f"job summarizer-{window_label} created"
    )
    assert placements.wait_for_event("summarizer", "BatchSucceeded").type == "Normal"


def test_user_visible_work_stays_realtime(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "chat")
    placements.apply(placement("chat", placements.namespace, deployment="chat", user_visible=True))

    status = placements.wait_for_reason("chat", "StayRealtime")
    assert status["phase"] == "Realtime"
    assert placements.replicas("chat") == 4
    assert placements.jobs("chat") == []
    assert "user" in placements.wait_for_event("chat", "StayRealtime").message


def test_without_an_owner_nothing_changes(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "orphan")
    placements.apply(placement("orphan", placements.namespace, deployment="orphan", owner=""))

    placements.wait_for_reason("orphan", "OwnerMissing")
    event = placements.wait_for_event("orphan", "OwnerMissing")
    assert placements.replicas("orphan") == 4
    assert placements.jobs("orphan") == []
    assert "owner" in event.message.lower()


def test_staging_and_operations_that_erase_the_savings_keep_it_realtime(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "reindex")
    costs = {
        "realtimeReplicaHourly": 4.0,
        "batchPodHourly": 2.0,
        "batchEfficiency": 4,
        "dataStagingPerRun": 300,
        "operationsPerDay": 150,
        "retryRate": 0.05,
    }
    placements.apply(placement("reindex", placements.namespace, deployment="reindex", costs=costs))

    status = placements.wait_for_reason("reindex", "SavingsNegative")
    # 384 - 9.60 - 300 - 0.48 - 150 = -76.08
    assert status["decision"]["savingsPerDay"] == -76.08
    event = placements.wait_for_event("reindex", "SavingsNegative")
    assert "-76.08" in event.message or "loses 76.08" in event.message
    assert "staging 300.00" in event.message and "operations 150.00" in event.message
    assert placements.replicas("reindex") == 4
    assert placements.jobs("reindex") == []


def test_recommend_mode_changes_nothing_and_says_what_it_would_do(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "advisor")
    placements.apply(
        placement("advisor", placements.namespace, deployment="advisor", mode="Recommend")
    )

    status = placements.wait_for_reason("advisor", "BatchRecommended")
    assert status["decision"]["savingsPerDay"] == 358.92  # 384 - 9.60 - 5 - 0.48 - 10
    event = placements.wait_for_event("advisor", "BatchRecommended")
    assert "358.92" in event.message
    assert placements.replicas("advisor") == 4
    assert placements.jobs("advisor") == []
    assert "originalReplicas" not in status


def test_a_job_that_fails_past_its_retry_window_restores_realtime(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "flaky")
    placements.apply(
        placement(
            "flaky",
            placements.namespace,
            deployment="flaky",
            retry_window="1s",
            pod_labels={"sim.placement.runplacement.io/outcome": "fail"},  # kwok fails the pods
        )
    )

    status = placements.wait_for_reason("flaky", "FallbackRestored", timeout=90)
    assert status["phase"] == "Fallback"
    assert placements.replicas("flaky") == 4
    event = placements.wait_for_event("flaky", "FallbackRestored")
    assert event.type == "Warning"
    assert "flaky" in event.message
    [job] = placements.jobs("flaky")
    assert any(c.type == "Failed" and c.status == "True" for c in job.status.conditions)
    [run] = status["learning"]["runs"]
    assert run["succeeded"] is False and run["failedPodHours"] == run["podHours"]


def test_a_failed_job_is_acted_on_at_once_even_with_a_long_interval(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    """With evaluationInterval 10m, the Job's failure (seen by the Job watch) is reported at
    once and the fallback follows its 15 s retryWindow, not the next interval."""
    measured_deployment(placements, prometheus, utilization, "nightfail")
    manifest = placement(
        "nightfail",
        placements.namespace,
        deployment="nightfail",
        retry_window="15s",
        pod_labels={"sim.placement.runplacement.io/outcome": "fail"},
    )
    manifest["spec"]["evaluationInterval"] = "10m"
    placements.apply(manifest)

    status = placements.wait_for_reason("nightfail", "FallbackRestored", timeout=120)
    assert placements.replicas("nightfail") == 4
    reasons = {entry["reason"] for entry in status["history"]}
    assert {"BatchJobFailed", "FallbackRestored"} <= reasons  # the failure, then its fallback


def test_alert_fallback_warns_and_leaves_the_deployment_alone(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "paged")
    placements.apply(
        placement(
            "paged",
            placements.namespace,
            deployment="paged",
            warm_replicas=1,
            retry_window="1s",
            fallback="Alert",
            pod_labels={"sim.placement.runplacement.io/outcome": "fail"},
        )
    )

    # BatchJobFailed in phase Batch comes first (the Job failed, its retry window still open):
    # the fallback is the decision after it.
    status = until(
        lambda: placements.status("paged"),
        lambda s: (
            (s.get("decision") or {}).get("reason") == "BatchJobFailed"
            and s.get("phase") == "Fallback"
        ),
        timeout=90,
        what="paged: BatchJobFailed in phase Fallback",
    )
    assert status["phase"] == "Fallback"
    # Not the BatchJobFailed Event ("... then fallback Alert"), which the Job watch makes
    # come first: the fallback's own.
    event = until(
        lambda: placements.events("paged"),
        lambda found: any("fallback Alert:" in e.message for e in found),
        what="an Alert fallback event",
    )
    alert = next(e for e in event if "fallback Alert:" in e.message)
    assert alert.type == "Warning"
    assert "deployment/paged left at 1 replicas" in alert.message
    assert placements.replicas("paged") == 1  # a person decides; the operator only warns


def test_deleting_a_placement_in_batch_restores_the_replicas_first(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "nightly", replicas=3)
    placements.apply(placement("nightly", placements.namespace, deployment="nightly"))
    placements.wait_for_event("nightly", "MovedToBatch", timeout=90)
    assert placements.replicas("nightly") == 0

    placements.delete("nightly")
    until(lambda: placements.exists("nightly"), lambda exists: not exists, what="placement gone")
    assert placements.replicas("nightly") == 3
    annotations = placements.apps.read_namespaced_deployment(
        "nightly", placements.namespace
    ).metadata.annotations
    assert not any(key.startswith("placement.runplacement.io/") for key in annotations)


def test_missing_metrics_never_scale_down(placements: Placements) -> None:
    placements.deployment("unmeasured", 4)  # no series in Prometheus for it
    placements.apply(placement("unmeasured", placements.namespace, deployment="unmeasured"))

    placements.wait_for_reason("unmeasured", "MetricsUnavailable")
    event = placements.wait_for_event("unmeasured", "MetricsUnavailable")
    assert event.type == "Warning"
    assert "utilization" in event.message
    assert placements.replicas("unmeasured") == 4
    assert placements.jobs("unmeasured") == []


def test_a_missing_deployment_blocks_the_placement(placements: Placements) -> None:
    placements.apply(placement("ghost", placements.namespace, deployment="does-not-exist"))

    status = placements.wait_for_reason("ghost", "TargetMissing")
    assert status["phase"] == "Blocked"
    assert placements.wait_for_event("ghost", "TargetMissing").type == "Warning"


def test_operator_process_is_still_alive(operator: ManagedProcess) -> None:
    assert operator.exit_code() is None


def test_retargeting_gives_the_old_deployment_back_and_holds_the_new_one_with_its_own_count(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "old-target", replicas=4)
    measured_deployment(placements, prometheus, utilization, "new-target", replicas=2)
    manifest = placement("mover", placements.namespace, deployment="old-target")
    placements.apply(manifest)
    placements.wait_for_event("mover", "MovedToBatch", timeout=90)
    assert placements.replicas("old-target") == 0

    placements.custom.patch_namespaced_custom_object(
        "placement.runplacement.io",
        "v1alpha1",
        placements.namespace,
        "workloadplacements",
        "mover",
        {
            "spec": {
                "target": {"deployment": "new-target"},
                "metrics": {"utilization": utilization_query(placements.namespace, "new-target")},
            }
        },
    )
    until(
        lambda: placements.replicas("old-target"), lambda n: n == 4, what="old target restored to 4"
    )
    status = until(
        lambda: placements.status("mover"),
        lambda s: s.get("originalReplicas") == 2 and s.get("phase") == "Batch",
        timeout=60,
        what="new target held with its own count",
    )
    assert placements.replicas("new-target") == 0
    assert status["originalReplicas"] == 2
    restored = [e for e in placements.events("mover") if e.reason == "Restored"]
    assert "deployment/old-target 0 -> 4" in restored[0].message

    placements.delete("mover")
    until(
        lambda: placements.replicas("new-target"),
        lambda n: n == 2,
        what="new target restored to 2 on delete",
    )


def test_a_spec_change_is_evaluated_at_once_even_with_a_long_interval(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    """With evaluationInterval 5m, a spec changed right after apply (likely while the first
    evaluation still runs) is decided within seconds, not after the interval."""
    measured_deployment(placements, prometheus, utilization, "changed")
    manifest = placement("changed", placements.namespace, deployment="changed", owner="")
    manifest["spec"]["mode"] = "Recommend"
    manifest["spec"]["evaluationInterval"] = "5m"
    placements.apply(manifest)
    placements.custom.patch_namespaced_custom_object(
        GROUP, VERSION, placements.namespace, PLURAL, "changed", {"spec": {"owner": "team-ml"}}
    )
    status = placements.wait_for_reason("changed", "BatchRecommended", timeout=30)
    assert status["observedGeneration"] == 2
    assert placements.replicas("changed") == 4  # Recommend: nothing scaled


def test_kubectls_last_applied_record_survives_the_operators_patches(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    """The operator keeps placements' bodies without kubectl's last-applied copy (memory);
    its own patches must still add to the server's annotations, not replace them."""
    measured_deployment(placements, prometheus, utilization, "applied")
    manifest = placement("applied", placements.namespace, deployment="applied", owner="")
    record = '{"kind":"WorkloadPlacement","spec":{}}'
    manifest["metadata"]["annotations"] = {LAST_APPLIED: record}  # what kubectl apply sends
    placements.apply(manifest)

    placements.wait_for_reason("applied", "OwnerMissing", timeout=60)
    annotations = placements.get("applied")["metadata"]["annotations"]
    assert annotations[LAST_APPLIED] == record
    assert f"{GROUP}/last-handled-configuration" in annotations  # kopf's record beside it
