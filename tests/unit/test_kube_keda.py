"""What the Kubernetes adapter reads about KEDA and Kueue: the placement's own ScaledObject
(and only that one is not a conflict), whether KEDA is installed (asked rarely), and a Job
Kueue keeps suspended read as waiting. The API client is a stand-in; the real one is
exercised in tests/integration/test_async_engines.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import MagicMock

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from placement.adapters.fakecluster import FakeCluster
from placement.adapters.kube import KEDA_DISCOVERY_SECONDS, KubeAdapter, job_state
from placement.adapters.observe import observe, others_autoscalers
from placement.core.cluster import Refused, Retry
from placement.core.labels import PLACEMENT_LABEL
from placement.core.observation import ScaledObjectState
from placement.core.policy import JobOutcome
from placement.core.scaledobject import scaled_object_manifest
from tests.unit.factories import make_spec
from tests.unit.fake_operator import ScriptedMetrics


def scaled(name: str, deployment: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}, "resourceVersion": "7"},
        "spec": {
            "scaleTargetRef": {"name": deployment},
            "minReplicaCount": 0,
            "maxReplicaCount": 4,
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Active"}]},
    }


def keda_hpa(name: str, owner: str) -> client.V2HorizontalPodAutoscaler:
    return client.V2HorizontalPodAutoscaler(
        metadata=client.V1ObjectMeta(
            name=name,
            owner_references=[
                client.V1OwnerReference(
                    api_version="keda.sh/v1alpha1", kind="ScaledObject", name=owner, uid="u"
                )
            ],
        ),
        spec=client.V2HorizontalPodAutoscalerSpec(
            max_replicas=4,
            scale_target_ref=client.V2CrossVersionObjectReference(
                kind="Deployment", name="summarizer"
            ),
        ),
    )


def adapter(items: list[dict[str, Any]], hpas: list[Any] = ()) -> KubeAdapter:  # type: ignore[assignment]
    kube = KubeAdapter(client.ApiClient())
    kube.custom = MagicMock()
    custom(kube).list_namespaced_custom_object.return_value = {"items": items}
    kube.autoscaling = MagicMock()
    kube.autoscaling.list_namespaced_horizontal_pod_autoscaler.return_value = MagicMock(
        items=list(hpas)
    )
    return kube


def custom(kube: KubeAdapter) -> Any:
    """The stand-in for CustomObjectsApi (typed Any: mocks have no signature)."""
    return kube.custom


OWN = {PLACEMENT_LABEL: "summarizer"}
ASYNC_SPEC = make_spec(**{"async": {"queue": "sum(queue)"}, "latency.acceptableDelay": "10m"})


def others(kube: KubeAdapter, placement: str) -> tuple[str, ...]:
    """The autoscalers an evaluation of `placement` counts as conflicts (as observe does)."""
    return others_autoscalers(
        kube.conflicting_autoscalers("ml", "summarizer"),
        kube.placement_scaled_object("ml", placement),
    )


def test_the_placements_own_scaled_object_and_its_hpa_are_no_conflict() -> None:
    kube = adapter(
        [scaled("placement-summarizer", "summarizer", OWN), scaled("by-hand", "summarizer")],
        [keda_hpa("keda-hpa-placement-summarizer", "placement-summarizer"),
         keda_hpa("keda-hpa-by-hand", "by-hand")],
    )  # fmt: skip
    assert others(kube, "summarizer") == (
        "HorizontalPodAutoscaler/keda-hpa-by-hand",
        "ScaledObject/by-hand",
    )
    # For another placement on the same Deployment every one conflicts.
    assert len(others(kube, "other")) == 4


def test_a_scaled_object_named_like_ours_but_without_our_label_is_a_conflict() -> None:
    kube = adapter([scaled("placement-summarizer", "summarizer"), scaled("x", "summarizer", OWN)])
    assert kube.placement_scaled_object("ml", "summarizer") is None
    assert others(kube, "summarizer") == ("ScaledObject/placement-summarizer", "ScaledObject/x")


def test_whose_a_scaled_object_is_is_read_by_its_name_before_applying() -> None:
    kube = adapter([scaled("placement-summarizer", "ledger", {PLACEMENT_LABEL: "other"})])
    assert kube.scaled_object_placement("ml", "placement-summarizer") == "other"
    kwargs = custom(kube).list_namespaced_custom_object.call_args.kwargs
    assert kwargs["field_selector"] == "metadata.name=placement-summarizer"
    assert (
        adapter([scaled("placement-summarizer", "ledger")]).scaled_object_placement(
            "ml", "placement-summarizer"
        )
        == ""
    )
    assert adapter([]).scaled_object_placement("ml", "placement-summarizer") is None


def test_the_fresh_read_carries_the_resource_version_to_apply_over() -> None:
    kube = adapter([scaled("placement-summarizer", "summarizer", OWN)])
    holder = kube.scaled_object_holder("ml", "placement-summarizer")
    assert holder is not None and (holder.placement, holder.resource_version) == ("summarizer", "7")


def test_the_own_scaled_object_is_read_with_its_conditions() -> None:
    kube = adapter([scaled("placement-summarizer", "summarizer", OWN)])
    assert kube.placement_scaled_object("ml", "summarizer") == ScaledObjectState(
        name="placement-summarizer",
        deployment="summarizer",
        min_replicas=0,
        max_replicas=4,
        ready=True,
        active=None,
        resource_version="7",
    )
    kwargs = custom(kube).list_namespaced_custom_object.call_args.kwargs
    assert kwargs["label_selector"] == f"{PLACEMENT_LABEL}=summarizer"


def test_without_keda_there_is_no_scaled_object_and_no_conflict_from_one() -> None:
    kube = adapter([])
    custom(kube).list_namespaced_custom_object.side_effect = ApiException(status=404)
    assert kube.placement_scaled_object("ml", "summarizer") is None
    assert others(kube, "summarizer") == ()


def test_keda_discovery_is_asked_once_for_several_evaluations() -> None:
    kube = adapter([])
    served = client.V1APIResourceList(
        group_version="keda.sh/v1alpha1",
        resources=[
            client.V1APIResource(
                name="scaledobjects", kind="ScaledObject", namespaced=True, singular_name="",
                verbs=["get"],
            )
        ],
    )  # fmt: skip
    custom(kube).get_api_resources.return_value = served
    assert all(kube.keda_installed() for _ in range(5))
    assert custom(kube).get_api_resources.call_count == 1

    # Asked again after the cache expired, a failed look-up keeps the last answer.
    expired = (time.monotonic() - 2 * KEDA_DISCOVERY_SECONDS, True)
    kube._keda_known = expired
    custom(kube).get_api_resources.side_effect = ApiException(status=503)
    assert kube.keda_installed() is True
    assert kube._keda_known == expired  # not refreshed: asked again next time
    fresh = adapter([])
    custom(fresh).get_api_resources.side_effect = ApiException(status=503)
    with pytest.raises(ApiException):
        fresh.keda_installed()  # nothing known yet: the evaluation is retried

    missing = adapter([])
    custom(missing).get_api_resources.side_effect = ApiException(status=404)
    assert not missing.keda_installed() and not missing.keda_installed()
    assert custom(missing).get_api_resources.call_count == 1


def test_apply_is_a_forced_server_side_apply_and_its_refusals_are_typed() -> None:
    kube = adapter([])
    manifest = {"metadata": {"name": "placement-summarizer"}}
    kube.apply_scaled_object("ml", manifest)
    kwargs = custom(kube).patch_namespaced_custom_object.call_args.kwargs
    assert kwargs["_content_type"] == "application/apply-patch+yaml"
    assert kwargs["field_manager"] == "placement-operator" and kwargs["force"] is True

    assert (
        "resourceVersion"
        not in custom(kube).patch_namespaced_custom_object.call_args.args[5]["metadata"]
    )
    # Over the version read: a precondition the API server checks (409 when replaced since).
    kube.apply_scaled_object("ml", manifest, resource_version="41")
    body = custom(kube).patch_namespaced_custom_object.call_args.args[5]
    assert body["metadata"] == {"name": "placement-summarizer", "resourceVersion": "41"}
    assert manifest == {"metadata": {"name": "placement-summarizer"}}  # not changed in place

    custom(kube).patch_namespaced_custom_object.side_effect = ApiException(status=409)
    with pytest.raises(Retry):
        kube.apply_scaled_object("ml", manifest)
    custom(kube).patch_namespaced_custom_object.side_effect = ApiException(status=403)
    with pytest.raises(Refused):
        kube.apply_scaled_object("ml", manifest)


def test_a_new_scaled_object_is_created_and_one_that_exists_is_not_written_over() -> None:
    kube = adapter([])
    manifest = {"metadata": {"name": "placement-summarizer"}}
    assert kube.create_scaled_object("ml", manifest) is True
    call = custom(kube).create_namespaced_custom_object.call_args
    assert call.args[2:] == ("ml", "scaledobjects", manifest)
    assert custom(kube).patch_namespaced_custom_object.mock_calls == []
    custom(kube).create_namespaced_custom_object.side_effect = ApiException(status=409)
    assert kube.create_scaled_object("ml", manifest) is False  # AlreadyExists
    custom(kube).create_namespaced_custom_object.side_effect = ApiException(status=403)
    with pytest.raises(Refused):
        kube.create_scaled_object("ml", manifest)


def test_without_caches_an_hpa_named_as_kedas_for_ours_is_read_by_its_name() -> None:
    kube = adapter([], [keda_hpa("keda-hpa-placement-summarizer", "placement-summarizer")])
    listed: Any = kube.autoscaling.list_namespaced_horizontal_pod_autoscaler
    # No controller flag on that owner reference: KEDA sets it, so this one is not KEDA's.
    assert kube.cached_keda_hpa_taken("ml", "placement-summarizer") == (
        "HorizontalPodAutoscaler/keda-hpa-placement-summarizer "
        "(scaling Deployment/summarizer, not KEDA's for placement-summarizer)"
    )
    assert listed.call_args.kwargs["field_selector"] == (
        "metadata.name=keda-hpa-placement-summarizer"
    )
    listed.return_value.items[0].metadata.owner_references[0].controller = True
    assert kube.cached_keda_hpa_taken("ml", "placement-summarizer") is None
    listed.return_value.items = []
    assert kube.cached_keda_hpa_taken("ml", "placement-summarizer") is None


def test_deleting_a_scaled_object_already_gone_is_no_error() -> None:
    kube = adapter([])
    assert kube.delete_scaled_object("ml", "placement-summarizer") is True
    custom(kube).delete_namespaced_custom_object.side_effect = ApiException(status=404)
    assert kube.delete_scaled_object("ml", "placement-summarizer") is False


def _job(suspend: bool | None, conditions: list[client.V1JobCondition] = ()) -> client.V1Job:  # type: ignore[assignment]
    return client.V1Job(
        metadata=client.V1ObjectMeta(name="summarizer-20261130-0100"),
        spec=client.V1JobSpec(suspend=suspend, template=client.V1PodTemplateSpec()),
        status=client.V1JobStatus(conditions=list(conditions) or None),
    )


def test_a_job_kueue_keeps_suspended_is_waiting_not_running_nor_failed() -> None:
    assert job_state(_job(True)).outcome is JobOutcome.WAITING
    assert job_state(_job(False)).outcome is JobOutcome.RUNNING
    assert job_state(_job(None)).outcome is JobOutcome.RUNNING
    failed = client.V1JobCondition(type="Failed", status="True")
    assert job_state(_job(True, [failed])).outcome is JobOutcome.FAILED


def test_one_observation_carries_the_own_scaled_object_and_whether_keda_is_there() -> None:
    cluster = FakeCluster()
    cluster.add("summarizer", 4)
    manifest = scaled_object_manifest(
        placement="summarizer", namespace="ml", deployment="summarizer",
        query='sum(queue{namespace="ml"})', queue_per_replica=10, min_replicas=0,
        max_replicas=4, acceptable_delay=timedelta(minutes=5),
        prometheus_url="http://prometheus:9090",
    )  # fmt: skip
    cluster.apply_scaled_object("ml", manifest)
    seen = observe(cluster, ScriptedMetrics(), ASYNC_SPEC, namespace="ml", placement="summarizer")
    assert seen.keda_installed is True
    assert seen.scaled_object is not None
    assert (seen.scaled_object.name, seen.scaled_object.max_replicas) == ("placement-summarizer", 4)
    assert seen.autoscalers == ()
    # KEDA's HPA for it is ours too; a hand-made ScaledObject is not.
    cluster.autoscalers["summarizer"] = [
        "HorizontalPodAutoscaler/keda-hpa-placement-summarizer",
        "ScaledObject/by-hand",
    ]
    seen = observe(cluster, ScriptedMetrics(), ASYNC_SPEC, namespace="ml", placement="summarizer")
    assert seen.autoscalers == ("ScaledObject/by-hand",)

    # Without spec.async and without a hold there is nothing to look for: no request.
    asked: list[str] = []
    cluster.placement_scaled_object = lambda namespace, placement: asked.append(placement)  # type: ignore[method-assign]
    plain = make_spec()
    observe(cluster, ScriptedMetrics(), plain, namespace="ml", placement="summarizer")
    assert asked == []
    observe(cluster, ScriptedMetrics(), ASYNC_SPEC, namespace="ml", placement="summarizer")
    assert asked == ["summarizer"]
    # spec.async removed while still holding: the ScaledObject is looked for, to be deleted.
    cluster.scale_for_batch(
        "ml", "summarizer", replicas=4, original=4, placement="summarizer",
        since=datetime(2026, 11, 30, tzinfo=UTC), baseline_utilization=None,
    )  # fmt: skip
    observe(cluster, ScriptedMetrics(), plain, namespace="ml", placement="summarizer")
    assert asked == ["summarizer", "summarizer"]
    del cluster.placement_scaled_object

    cluster.keda = False
    seen = observe(cluster, ScriptedMetrics(), ASYNC_SPEC, namespace="ml", placement="summarizer")
    assert seen.keda_installed is False and seen.scaled_object is None
