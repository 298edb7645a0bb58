"""What goes wrong around a decision: a refused Job template, an operator that lost its
status, an optional metric that is missing, two placements on one Deployment."""

from __future__ import annotations

import datetime as dt
import urllib.request

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import Gauge

from placement.core.api import GROUP, PLURAL, VERSION
from placement.localenv.cluster import LocalCluster
from placement.localenv.operator_process import OperatorProcess
from placement.localenv.process import log_tail
from placement.localenv.prometheus import LocalPrometheus
from tests.integration.harness import (
    Placements,
    measured_deployment,
    operator_stopped,
    placement,
    status_refused_policy,
    utilization_query,
)
from tests.integration.wait import until

pytestmark = pytest.mark.usefixtures("operator")


def _closed_window() -> dict[str, str]:
    now = dt.datetime.now(dt.UTC)
    start, end = now + dt.timedelta(hours=2), now + dt.timedelta(hours=5)
    return {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}", "timeZone": "UTC"}


@pytest.mark.parametrize("window", ["open", "closed"])
def test_a_job_template_the_api_server_refuses_costs_no_replicas(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge, window: str
) -> None:
    measured_deployment(placements, prometheus, utilization, "refused")
    manifest = placement(
        "refused",
        placements.namespace,
        deployment="refused",
        window=_closed_window() if window == "closed" else None,
    )
    # The CRD lets JobSpec fields through; only the API server knows this one is invalid.
    manifest["spec"]["batch"]["jobTemplate"]["spec"]["completionMode"] = "Sometimes"
    placements.apply(manifest)

    event = placements.wait_for_event("refused", "BatchJobRejected")
    assert event.type == "Warning"
    assert "completionMode" in event.message
    assert "deployment/refused left at 4 replicas" in event.message
    status = placements.status("refused")
    assert status["phase"] == "Blocked"
    assert placements.replicas("refused") == 4
    assert placements.jobs("refused") == []
    assert not any(e.reason == "MovedToBatch" for e in placements.events("refused"))


def test_annotations_alone_let_a_fresh_operator_finish_the_handoff(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    # As if the operator scaled the Deployment down two days ago and lost everything else:
    # no status, no Job; only what it wrote on the Deployment in that one patch.
    measured_deployment(placements, prometheus, utilization, "amnesia")
    two_days_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).isoformat()
    placements.apps.patch_namespaced_deployment(
        "amnesia",
        placements.namespace,
        {
            "metadata": {
                "annotations": {
                    "placement.runplacement.io/original-replicas": "4",
                    "placement.runplacement.io/placement": "amnesia",
                    "placement.runplacement.io/held-since": two_days_ago,
                    "placement.runplacement.io/baseline-utilization": "0.2",
                }
            },
            "spec": {"replicas": 0},
        },
        _content_type="application/merge-patch+json",
    )
    placements.apply(placement("amnesia", placements.namespace, deployment="amnesia"))

    # Yesterday's window ended with no successful Job: the fallback gives the replicas back.
    placements.wait_for_event("amnesia", "FallbackRestored", timeout=90)
    assert placements.replicas("amnesia") == 4
    assert placements.status("amnesia")["batch"]["missedWindows"] >= 1


def test_a_missing_queue_depth_does_not_block_the_decision(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "queueless")
    manifest = placement("queueless", placements.namespace, deployment="queueless")
    manifest["spec"]["metrics"]["queueDepth"] = 'inference_queue_depth{deployment="none"}'
    placements.apply(manifest)

    placements.wait_for_event("queueless", "MovedToBatch", timeout=90)
    assert placements.replicas("queueless") == 0
    assert not any(e.reason == "MetricsUnavailable" for e in placements.events("queueless"))


def test_a_second_placement_on_a_held_deployment_is_blocked_and_cannot_undo_the_first(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "shared")
    placements.apply(placement("first", placements.namespace, deployment="shared"))
    placements.wait_for_event("first", "MovedToBatch", timeout=90)

    placements.apply(placement("second", placements.namespace, deployment="shared"))
    status = placements.wait_for_reason("second", "ConflictingAutoscaler")
    assert status["phase"] == "Blocked"
    assert (
        "WorkloadPlacement/first"
        in placements.wait_for_event("second", "ConflictingAutoscaler").message
    )

    placements.delete("second")
    until(lambda: placements.exists("second"), lambda exists: not exists, what="second gone")
    assert placements.replicas("shared") == 0  # still held by the first
    deployment = placements.apps.read_namespaced_deployment("shared", placements.namespace)
    assert isinstance(deployment, client.V1Deployment)
    assert deployment.metadata.annotations["placement.runplacement.io/placement"] == "first"


def _hold_by_hand(placements: Placements, deployment: str, holder: str, original: int) -> None:
    """The Deployment as a placement called `holder` leaves it after scaling it down."""
    placements.apps.patch_namespaced_deployment(
        deployment,
        placements.namespace,
        {
            "metadata": {
                "annotations": {
                    "placement.runplacement.io/original-replicas": str(original),
                    "placement.runplacement.io/placement": holder,
                    "placement.runplacement.io/held-since": dt.datetime.now(dt.UTC).isoformat(),
                    "placement.runplacement.io/baseline-utilization": "0.2",
                }
            },
            "spec": {"replicas": 0},
        },
        _content_type="application/merge-patch+json",
    )


def _retarget(placements: Placements, name: str, deployment: str) -> None:
    placements.custom.patch_namespaced_custom_object(
        "placement.runplacement.io",
        "v1alpha1",
        placements.namespace,
        "workloadplacements",
        name,
        {
            "spec": {
                "target": {"deployment": deployment},
                "metrics": {"utilization": utilization_query(placements.namespace, deployment)},
            }
        },
    )


def test_deleting_right_after_retargeting_gives_back_what_was_held(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "held-a", replicas=3)
    measured_deployment(placements, prometheus, utilization, "next-b", replicas=2)
    placements.apply(placement("hasty", placements.namespace, deployment="held-a"))
    placements.wait_for_event("hasty", "MovedToBatch", timeout=90)

    _retarget(placements, "hasty", "next-b")
    placements.delete("hasty")  # before any evaluation of the new target
    until(lambda: placements.exists("hasty"), lambda exists: not exists, what="hasty gone")
    assert placements.replicas("held-a") == 3
    assert placements.replicas("next-b") == 2


def test_a_held_deployment_changed_outside_the_operator_is_not_fought(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "gitops")
    placements.apply(placement("gitops", placements.namespace, deployment="gitops"))
    placements.wait_for_event("gitops", "MovedToBatch", timeout=90)

    # A GitOps tool replaces the Deployment from Git: 5 replicas, no annotations of ours.
    placements.apps.patch_namespaced_deployment(
        "gitops",
        placements.namespace,
        {
            "metadata": {
                "annotations": {
                    "placement.runplacement.io/original-replicas": None,
                    "placement.runplacement.io/placement": None,
                    "placement.runplacement.io/held-since": None,
                    "placement.runplacement.io/baseline-utilization": None,
                }
            },
            "spec": {"replicas": 5},
        },
        _content_type="application/merge-patch+json",
    )
    event = placements.wait_for_event("gitops", "ManualOverride")
    assert event.type == "Warning"
    assert "changed outside the operator" in event.message
    assert placements.status("gitops")["phase"] == "Blocked"
    assert placements.replicas("gitops") == 5


def test_a_refused_job_while_holding_is_reported_as_refused_not_created(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "stuck")
    _hold_by_hand(placements, "stuck", "stuck", original=4)
    manifest = placement("stuck", placements.namespace, deployment="stuck")
    manifest["spec"]["batch"]["jobTemplate"]["spec"]["completionMode"] = "Sometimes"
    placements.apply(manifest)

    status = placements.wait_for_reason("stuck", "BatchJobRejected")
    assert "currentJob" not in status.get("batch", {})
    assert placements.jobs("stuck") == []
    reasons = [e.reason for e in placements.events("stuck")]
    assert "BatchJobCreated" not in reasons
    assert reasons.count("BatchJobRejected") == 1
    assert placements.replicas("stuck") == 0  # held until the window's end brings fallback


def test_stale_annotations_of_a_deleted_placement_say_how_to_clear_them(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "haunted")
    _hold_by_hand(placements, "haunted", "long-gone", original=4)
    placements.apply(placement("heir", placements.namespace, deployment="haunted"))

    event = placements.wait_for_event("heir", "ConflictingAutoscaler")
    assert "WorkloadPlacement/long-gone, which no longer exists" in event.message
    assert "remove the placement.runplacement.io/ annotations" in event.message
    assert placements.replicas("haunted") == 0


def test_a_placement_whose_status_is_refused_is_reported_and_still_evaluated(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge,
    cluster: LocalCluster, operator: OperatorProcess,
) -> None:  # fmt: skip
    ns = placements.namespace
    measured_deployment(placements, prometheus, utilization, "unwritable")
    policy = status_refused_policy(f"freeze-{ns}", ns)
    with operator_stopped(operator):
        placements.apply(placement("unwritable", ns, deployment="unwritable"))
        cluster.kubectl("apply", "-f", "-", input_text=policy)

        def refused() -> bool:
            try:
                placements.custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, ns, PLURAL, "unwritable", {"status": {"phase": "Realtime"}}
                )
            except ApiException as error:
                return bool(error.status == 422)
            return False

        until(refused, bool, what="the admission policy in force")

    event = placements.wait_for_event("unwritable", "StatusWriteFailed")
    assert event.type == "Warning"
    assert "status could not be written (422" in event.message, event.message
    assert "frozen by the test" in event.message
    # It still acts on its decisions, and says so, while its status cannot be written.
    placements.wait_for_event("unwritable", "MovedToBatch", timeout=90)
    assert placements.replicas("unwritable") == 0
    assert "decision" not in placements.status("unwritable")  # nothing of the operator's
    with urllib.request.urlopen(operator.metrics_url, timeout=5) as response:
        metrics = response.read().decode()
    assert 'placement_status_write_failures_total{code="422"}' in metrics
    assert "status could not be written (422" in log_tail(operator.log_path, 400)
    assert [e.reason for e in placements.events("unwritable")].count("StatusWriteFailed") == 1

    # Still evaluated: once writes are admitted again, the next evaluation's status lands.
    cluster.kubectl("delete", "-f", "-", input_text=policy)
    status = until(
        lambda: placements.status("unwritable"),
        lambda s: s.get("phase") == "Batch",
        timeout=60,
        what="status written after the refusal ended",
    )
    assert status["originalReplicas"] == 4
