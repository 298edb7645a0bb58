"""The Kubernetes adapter with watch caches: reads make no request, the operator's own writes
are read back at once, and a conflicting hold makes the next read a live one."""

from __future__ import annotations

import datetime as dt
from typing import Any
from unittest.mock import MagicMock

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from placement.adapters.kube import KubeAdapter
from placement.adapters.kubewatch import ClusterCaches
from placement.core.cluster import HoldConflict
from placement.core.scaledobject import scaled_object_name

HELD = "placement.runplacement.io/"


def deployment(name: str, version: int, replicas: int, **annotations: str) -> dict[str, Any]:
    labels = {f"{HELD}placement": annotations["placement"]} if "placement" in annotations else {}
    return {
        "metadata": {
            "name": name,
            "namespace": "ml",
            "resourceVersion": str(version),
            "annotations": {HELD + key: value for key, value in annotations.items()},
            "labels": labels,
        },
        "spec": {"replicas": replicas},
    }


def model(item: dict[str, Any]) -> client.V1Deployment:
    metadata = item["metadata"]
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(
            name=metadata["name"], namespace="ml", resource_version=metadata["resourceVersion"],
            annotations=metadata["annotations"], labels=metadata["labels"],
        ),
        spec=client.V1DeploymentSpec(
            replicas=item["spec"]["replicas"], selector=client.V1LabelSelector(),
            template=client.V1PodTemplateSpec(),
        ),
    )  # fmt: skip


@pytest.fixture
def cached() -> tuple[KubeAdapter, MagicMock, ClusterCaches]:
    caches = ClusterCaches(client.Configuration(host="https://127.0.0.1:1"))
    caches.deployments.replace([deployment("web", 5, 4), deployment("other", 6, 2)])
    caches.jobs.replace([])
    caches.hpas.replace(
        [{"metadata": {"name": "h", "namespace": "ml", "resourceVersion": "7"},
          "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}}}]
    )  # fmt: skip
    caches.scaled_objects.mark_absent("404")
    kube = KubeAdapter(client.ApiClient(), caches=caches)
    apps = MagicMock()
    kube.apps, kube.batch, kube.autoscaling, kube.custom = (
        apps,
        MagicMock(),
        MagicMock(),
        MagicMock(),
    )
    return kube, apps, caches


def test_reads_come_from_the_caches_without_a_request(
    cached: tuple[KubeAdapter, MagicMock, ClusterCaches],
) -> None:
    kube, apps, _ = cached
    web = kube.read_deployment("ml", "web")
    assert web is not None and web.replicas == 4
    assert kube.read_deployment("ml", "missing") is None
    assert kube.claimed_by("ml", "p") == []
    assert kube.placement_jobs("ml", "p") == []
    assert kube.conflicting_autoscalers("ml", "web") == ["HorizontalPodAutoscaler/h"]
    assert kube.conflicting_autoscalers("ml", "other") == []
    for mock in (apps, kube.batch, kube.autoscaling, kube.custom):
        assert mock.mock_calls == []


def test_a_same_named_scaled_object_is_told_from_the_cache_without_a_request(
    cached: tuple[KubeAdapter, MagicMock, ClusterCaches],
) -> None:
    kube, _, caches = cached
    assert kube.cached_scaled_object_placement("ml", "placement-p") is None  # KEDA absent
    caches.scaled_objects.replace(
        [
            {
                "metadata": {
                    "name": "placement-p", "namespace": "ml", "resourceVersion": "8",
                    "labels": {f"{HELD}placement": "other"},
                },
                "spec": {"scaleTargetRef": {"name": "ledger"}},
            },
            {"metadata": {"name": "theirs", "namespace": "ml", "resourceVersion": "9"}, "spec": {}},
        ]
    )  # fmt: skip
    assert kube.cached_scaled_object_placement("ml", "placement-p") == "other"
    assert kube.cached_scaled_object_placement("ml", "theirs") == ""
    assert kube.cached_scaled_object_placement("ml", "placement-q") is None
    assert kube.custom.mock_calls == []  # type: ignore[attr-defined]
    assert KubeAdapter(client.ApiClient()).cached_scaled_object_placement("ml", "x") is None


def test_an_hpa_named_as_keda_names_ours_is_told_from_the_cache_unless_kedas(
    cached: tuple[KubeAdapter, MagicMock, ClusterCaches],
) -> None:
    """KEDA makes keda-hpa-<ScaledObject> with the ScaledObject as its controller owner; any
    other HPA of that name it would take over."""
    kube, _, caches = cached
    keda = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "placement-p",
            "uid": "u", "controller": True}  # fmt: skip

    def hpa(name: str, owners: list[dict[str, Any]]) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": "ml", "resourceVersion": "3",
                             "ownerReferences": owners},
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "ledger"}}}  # fmt: skip

    caches.hpas.replace([hpa("keda-hpa-placement-p", [keda]), hpa("keda-hpa-placement-q", [])])
    assert kube.cached_keda_hpa_taken("ml", "placement-p") is None
    assert kube.cached_keda_hpa_taken("ml", "placement-r") is None
    assert kube.cached_keda_hpa_taken("ml", "placement-q") == (
        "HorizontalPodAutoscaler/keda-hpa-placement-q "
        "(scaling Deployment/ledger, not KEDA's for placement-q)"
    )
    # Another ScaledObject's HPA renamed, or KEDA's marked as not its controller: not ours.
    caches.hpas.replace([hpa("keda-hpa-placement-q", [keda]),
                         hpa("keda-hpa-placement-p", [{**keda, "controller": False}])])  # fmt: skip
    assert kube.cached_keda_hpa_taken("ml", "placement-q") is not None
    assert kube.cached_keda_hpa_taken("ml", "placement-p") is not None
    assert kube.autoscaling.mock_calls == []  # type: ignore[attr-defined]


def test_the_hpa_keda_would_make_for_a_63_character_scaled_object_keeps_its_whole_name(
    cached: tuple[KubeAdapter, MagicMock, ClusterCaches],
) -> None:
    """KEDA names it keda-hpa-<name> uncut (2.21, getDefaultHpaName). Before, the name was cut
    to 63 characters: an HPA at the real name was not seen and KEDA took it over."""
    kube, _, caches = cached
    name = scaled_object_name("a" * 80)
    assert len(name) == 63
    target = {"scaleTargetRef": {"kind": "Deployment", "name": "ledger"}}
    metadata = {"name": f"keda-hpa-{name}", "namespace": "ml", "resourceVersion": "3"}
    caches.hpas.replace([{"metadata": metadata, "spec": target}])
    assert kube.cached_keda_hpa_taken("ml", name) == (
        f"HorizontalPodAutoscaler/keda-hpa-{name} "
        f"(scaling Deployment/ledger, not KEDA's for {name})"
    )


def test_a_hold_is_read_back_at_once_and_a_conflict_makes_the_next_read_live(
    cached: tuple[KubeAdapter, MagicMock, ClusterCaches],
) -> None:
    kube, apps, _ = cached
    since = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    apps.patch_namespaced_deployment.return_value = model(
        deployment("web", 9, 0, **{"placement": "p", "original-replicas": "4"})
    )
    kube.scale_for_batch(
        "ml", "web", replicas=0, original=4, placement="p", since=since,
        baseline_utilization=None, resource_version="5",
    )  # fmt: skip
    held = kube.read_deployment("ml", "web")
    assert held is not None and held.replicas == 0 and held.managed_by == "p"
    assert [d.name for d in kube.claimed_by("ml", "p")] == ["web"]
    assert apps.read_namespaced_deployment.mock_calls == []

    # Someone changed it since: 409, and the next read asks the API server.
    apps.patch_namespaced_deployment.side_effect = ApiException(status=409)
    with pytest.raises(HoldConflict):
        kube.scale_for_batch(
            "ml", "other", replicas=0, original=2, placement="p", since=since,
            baseline_utilization=None, resource_version="6",
        )  # fmt: skip
    apps.read_namespaced_deployment.return_value = model(deployment("other", 12, 3))
    fresh = kube.read_deployment("ml", "other")
    assert fresh is not None and fresh.replicas == 3 and fresh.resource_version == "12"
    assert len(apps.read_namespaced_deployment.mock_calls) == 1
    kube.read_deployment("ml", "other")  # the cache has it now
    assert len(apps.read_namespaced_deployment.mock_calls) == 1
