"""An HPA or a KEDA ScaledObject on the same Deployment: the placement is Blocked with
ConflictingAutoscaler and nothing is scaled (KEDA #5288: two controllers fighting over
.spec.replicas)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import Gauge

from placement.adapters.kube import KubeAdapter
from placement.core.cluster import Retry
from placement.core.labels import PLACEMENT_LABEL
from placement.localenv.cluster import LocalCluster
from placement.localenv.prometheus import Exporter, LocalPrometheus
from tests.integration.harness import (
    Placements,
    measured_deployment,
    placement,
)
from tests.integration.wait import until

pytestmark = pytest.mark.usefixtures("operator")

# The part of KEDA's ScaledObject CRD the operator reads (spec.scaleTargetRef); KEDA itself is
# not needed to show that the operator keeps its hands off.
SCALED_OBJECT_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "scaledobjects.keda.sh"},
    "spec": {
        "group": "keda.sh",
        "scope": "Namespaced",
        "names": {
            "kind": "ScaledObject",
            "plural": "scaledobjects",
            "singular": "scaledobject",
            "listKind": "ScaledObjectList",
        },
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


# KEDA's full CRD may be the one served (the engine tests install it), and it requires a
# trigger; no KEDA runs here to act on it.
TRIGGERS = [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}}]


@pytest.fixture(scope="module")
def keda_crd(cluster: LocalCluster, api_client: client.ApiClient) -> Iterator[None]:
    extensions = client.ApiextensionsV1Api(api_client)
    try:
        extensions.create_custom_resource_definition(SCALED_OBJECT_CRD)
    except ApiException as error:
        if error.status != 409:
            raise
    until(
        lambda: extensions.read_custom_resource_definition("scaledobjects.keda.sh").status,
        lambda status: any(
            c.type == "Established" and c.status == "True" for c in status.conditions or []
        ),
        what="ScaledObject CRD Established",
    )
    yield


def _never_scaled(placements: Placements, name: str) -> None:
    status = placements.wait_for_reason(name, "ConflictingAutoscaler")
    assert status["phase"] == "Blocked"
    event = placements.wait_for_event(name, "ConflictingAutoscaler")
    assert event.type == "Warning"
    time.sleep(3)
    assert placements.replicas(name) == 4
    assert placements.jobs(name) == []


def test_an_hpa_on_the_deployment_blocks_the_placement(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge,
    api_client: client.ApiClient,
) -> None:  # fmt: skip
    measured_deployment(placements, prometheus, utilization, "autoscaled")
    client.AutoscalingV2Api(api_client).create_namespaced_horizontal_pod_autoscaler(
        placements.namespace,
        client.V2HorizontalPodAutoscaler(
            metadata=client.V1ObjectMeta(name="autoscaled"),
            spec=client.V2HorizontalPodAutoscalerSpec(
                scale_target_ref=client.V2CrossVersionObjectReference(
                    api_version="apps/v1", kind="Deployment", name="autoscaled"
                ),
                min_replicas=4,
                max_replicas=8,
            ),
        ),
    )
    placements.apply(placement("autoscaled", placements.namespace, deployment="autoscaled"))
    _never_scaled(placements, "autoscaled")
    assert "HorizontalPodAutoscaler/autoscaled" in placements.status("autoscaled")["conditions"][0][
        "message"
    ] or "HorizontalPodAutoscaler/autoscaled" in str(placements.status("autoscaled"))


@pytest.mark.usefixtures("keda_crd")
def test_a_keda_scaled_object_on_the_deployment_blocks_the_placement(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "keda-managed")
    placements.custom.create_namespaced_custom_object(
        "keda.sh", "v1alpha1", placements.namespace, "scaledobjects",
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": "queue-scaler"},
            "spec": {"scaleTargetRef": {"name": "keda-managed"}, "minReplicaCount": 1,
                     "triggers": TRIGGERS},
        },
    )  # fmt: skip
    placements.apply(placement("keda-managed", placements.namespace, deployment="keda-managed"))
    _never_scaled(placements, "keda-managed")
    assert "ScaledObject/queue-scaler" in str(placements.status("keda-managed"))


def test_an_hpa_named_as_kedas_for_a_placement_without_async_blocks_it(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge,
    api_client: client.ApiClient,
) -> None:  # fmt: skip
    """An HPA named keda-hpa-placement-<name> on the placement's own Deployment, the placement
    without spec.async: before, it was left out of the conflicts by its name, and the
    operator scaled the Deployment 4 -> 0 under it."""
    measured_deployment(placements, prometheus, utilization, "hpa-alike")
    client.AutoscalingV2Api(api_client).create_namespaced_horizontal_pod_autoscaler(
        placements.namespace,
        client.V2HorizontalPodAutoscaler(
            metadata=client.V1ObjectMeta(name="keda-hpa-placement-hpa-alike"),
            spec=client.V2HorizontalPodAutoscalerSpec(
                scale_target_ref=client.V2CrossVersionObjectReference(
                    api_version="apps/v1", kind="Deployment", name="hpa-alike"
                ),
                min_replicas=4,
                max_replicas=8,
            ),
        ),
    )
    placements.apply(placement("hpa-alike", placements.namespace, deployment="hpa-alike"))
    _never_scaled(placements, "hpa-alike")
    assert "HorizontalPodAutoscaler/keda-hpa-placement-hpa-alike" in str(
        placements.status("hpa-alike")
    )


@pytest.mark.usefixtures("keda_crd")
def test_an_autoscaler_added_while_held_blocks_and_keeps_the_count_to_restore(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "latecomer")
    placements.apply(placement("latecomer", placements.namespace, deployment="latecomer"))
    placements.wait_for_event("latecomer", "MovedToBatch", timeout=90)
    placements.custom.create_namespaced_custom_object(
        "keda.sh", "v1alpha1", placements.namespace, "scaledobjects",
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": "late"},
            "spec": {"scaleTargetRef": {"name": "latecomer"}, "triggers": TRIGGERS},
        },
    )  # fmt: skip
    placements.wait_for_event("latecomer", "ConflictingAutoscaler")
    status = until(lambda: placements.status("latecomer"), lambda s: s["phase"] == "Blocked",
                   what="blocked")  # fmt: skip
    # Blocked, not fighting: the operator writes nothing more, and the count to restore is
    # still in status and on the Deployment for when the autoscaler goes.
    assert status["originalReplicas"] == 4
    annotations = placements.apps.read_namespaced_deployment(
        "latecomer", placements.namespace
    ).metadata.annotations
    assert annotations["placement.runplacement.io/original-replicas"] == "4"


@pytest.mark.usefixtures("keda_crd")
def test_a_scaled_object_with_the_placements_name_is_never_taken_over(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge, exporter: Exporter
) -> None:
    """Someone else's ScaledObject named as the placement's would be, scaling another
    Deployment: before, the operator's forced server-side apply took it over (KEDA then
    scaled the placement's Deployment with it, and the other lost its autoscaler)."""
    namespace = placements.namespace
    queue = exporter.gauge("inference_taken_queue_depth", "requests waiting", ["namespace"])
    queue.labels(namespace).set(0)
    prometheus.wait_for_value(f'sum(inference_taken_queue_depth{{namespace="{namespace}"}})', 0)
    measured_deployment(placements, prometheus, utilization, "taken")
    theirs = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "placement-taken", "labels": {"team": "ledger"}},
        "spec": {"scaleTargetRef": {"name": "ledger"}, "triggers": TRIGGERS},
    }
    placements.custom.create_namespaced_custom_object(
        "keda.sh", "v1alpha1", namespace, "scaledobjects", theirs
    )
    before = placements.apps.read_namespaced_deployment("taken", namespace).metadata
    manifest = placement("taken", namespace, deployment="taken", acceptable_delay="10m")
    manifest["spec"]["async"] = {"queue": "sum(inference_taken_queue_depth)", "scaleUpTime": "1m"}
    placements.apply(manifest)
    event = placements.wait_for_event("taken", "ConflictingAutoscaler", timeout=90)
    assert event.type == "Warning"
    assert "scaledobject/placement-taken exists and is not this placement's" in event.message
    time.sleep(3)
    scaled = placements.scaled_object("placement-taken")
    assert scaled["spec"]["scaleTargetRef"] == {"name": "ledger"}
    assert scaled["metadata"]["labels"] == {"team": "ledger"}
    assert placements.status("taken")["phase"] == "Blocked"
    assert placements.replicas("taken") == 4
    deployment = placements.apps.read_namespaced_deployment("taken", namespace)
    assert not any(
        key.startswith("placement.runplacement.io/")
        for key in deployment.metadata.annotations or {}
    )
    # Seen in the watch cache: blocked with no write (before, a hold and its give-back each
    # evaluation: two patches).
    assert deployment.metadata.generation == before.generation


@pytest.mark.usefixtures("keda_crd")
def test_an_hpa_named_as_kedas_for_the_placement_is_never_handed_to_keda(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge, exporter: Exporter,
    api_client: client.ApiClient,
) -> None:  # fmt: skip
    """An HPA named keda-hpa-placement-<name> that KEDA did not make (no controller owner
    reference to the ScaledObject), scaling another Deployment: before, the operator created
    its ScaledObject and KEDA would have taken that HPA over, rewriting it to scale the
    placement's Deployment."""
    namespace = placements.namespace
    queue = exporter.gauge("inference_hpa_queue_depth", "requests waiting", ["namespace"])
    queue.labels(namespace).set(0)
    prometheus.wait_for_value(f'sum(inference_hpa_queue_depth{{namespace="{namespace}"}})', 0)
    measured_deployment(placements, prometheus, utilization, "hpa-named")
    autoscaling = client.AutoscalingV2Api(api_client)
    autoscaling.create_namespaced_horizontal_pod_autoscaler(
        namespace,
        client.V2HorizontalPodAutoscaler(
            metadata=client.V1ObjectMeta(name="keda-hpa-placement-hpa-named"),
            spec=client.V2HorizontalPodAutoscalerSpec(
                scale_target_ref=client.V2CrossVersionObjectReference(
                    api_version="apps/v1", kind="Deployment", name="ledger"
                ),
                min_replicas=2,
                max_replicas=8,
            ),
        ),
    )
    before = placements.apps.read_namespaced_deployment("hpa-named", namespace).metadata
    manifest = placement("hpa-named", namespace, deployment="hpa-named", acceptable_delay="10m")
    manifest["spec"]["async"] = {"queue": "sum(inference_hpa_queue_depth)", "scaleUpTime": "1m"}
    placements.apply(manifest)
    event = placements.wait_for_event("hpa-named", "ConflictingAutoscaler", timeout=90)
    assert event.type == "Warning"
    assert "HorizontalPodAutoscaler/keda-hpa-placement-hpa-named (scaling Deployment/ledger" in (
        event.message
    )
    time.sleep(3)
    assert not placements.scaled_object_exists("placement-hpa-named")
    hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler(
        "keda-hpa-placement-hpa-named", namespace
    )
    assert hpa.spec.scale_target_ref.name == "ledger"
    assert placements.status("hpa-named")["phase"] == "Blocked"
    assert placements.replicas("hpa-named") == 4
    # Blocked before any write: the Deployment was not touched.
    deployment = placements.apps.read_namespaced_deployment("hpa-named", namespace)
    assert deployment.metadata.generation == before.generation


@pytest.mark.usefixtures("keda_crd")
def test_a_scaled_object_that_came_after_the_read_makes_the_create_fail_not_overwrite(
    placements: Placements, api_client: client.ApiClient
) -> None:
    """The executor creates the ScaledObject when its fresh read found none: on the API
    server, one someone else created in between answers 409 AlreadyExists and stays as it
    was (a forced server-side apply would have taken it over)."""
    namespace = placements.namespace
    kube = KubeAdapter(api_client)
    ours: dict[str, Any] = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "placement-raced", "labels": {PLACEMENT_LABEL: "raced"}},
        "spec": {"scaleTargetRef": {"name": "raced"}, "triggers": TRIGGERS},
    }
    assert kube.scaled_object_placement(namespace, "placement-raced") is None  # the read
    theirs = {**ours, "metadata": {"name": "placement-raced", "labels": {"team": "ledger"}},
              "spec": {"scaleTargetRef": {"name": "ledger"}, "triggers": TRIGGERS}}  # fmt: skip
    placements.custom.create_namespaced_custom_object(
        "keda.sh", "v1alpha1", namespace, "scaledobjects", theirs
    )
    assert kube.create_scaled_object(namespace, ours) is False
    assert kube.scaled_object_placement(namespace, "placement-raced") == ""  # not ours
    kept = placements.scaled_object("placement-raced")
    assert kept["spec"]["scaleTargetRef"] == {"name": "ledger"}
    assert kept["metadata"]["labels"] == {"team": "ledger"}
    # With none there, the create is what makes it.
    fresh = {**ours, "metadata": {**ours["metadata"], "name": "placement-fresh"}}
    assert kube.create_scaled_object(namespace, fresh) is True
    assert placements.scaled_object("placement-fresh")["metadata"]["labels"] == {
        PLACEMENT_LABEL: "raced"
    }
    # Ours applied over only at the version read: replaced since, the apply is a conflict.
    read = kube.scaled_object_holder(namespace, "placement-fresh")
    assert read is not None and read.placement == "raced"
    kube.apply_scaled_object(namespace, fresh, resource_version=read.resource_version)
    placements.custom.delete_namespaced_custom_object(
        "keda.sh", "v1alpha1", namespace, "scaledobjects", "placement-fresh"
    )
    placements.custom.create_namespaced_custom_object(
        "keda.sh", "v1alpha1", namespace, "scaledobjects",
        {**theirs, "metadata": {"name": "placement-fresh", "labels": {"team": "ledger"}}},
    )  # fmt: skip
    with pytest.raises(Retry):
        kube.apply_scaled_object(namespace, fresh, resource_version=read.resource_version)
    assert placements.scaled_object("placement-fresh")["metadata"]["labels"] == {"team": "ledger"}
