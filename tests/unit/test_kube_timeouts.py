"""Every request the adapter sends carries the configured timeout: a stalled API server must
not hold a worker thread forever (six did, for 30 s, while /healthz answered 200)."""

from __future__ import annotations

import datetime as dt
from unittest.mock import MagicMock

from kubernetes import client

from placement.adapters.kube import KubeAdapter


def test_every_call_of_the_adapter_has_a_request_timeout() -> None:
    kube = KubeAdapter(client.ApiClient(), timeout=7.5)
    apps, batch, autoscaling, custom = MagicMock(), MagicMock(), MagicMock(), MagicMock()
    apps.read_namespaced_deployment.return_value = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web", annotations={}, resource_version="3"),
        spec=client.V1DeploymentSpec(
            replicas=2, selector=client.V1LabelSelector(), template=client.V1PodTemplateSpec()
        ),
    )
    apps.list_namespaced_deployment.return_value = client.V1DeploymentList(items=[])
    batch.list_namespaced_job.return_value = client.V1JobList(items=[])
    autoscaling.list_namespaced_horizontal_pod_autoscaler.return_value = MagicMock(items=[])
    custom.list_namespaced_custom_object.return_value = {"items": []}
    kube.apps, kube.batch, kube.autoscaling, kube.custom = apps, batch, autoscaling, custom

    kube.read_deployment("ml", "web")
    kube.claimed_by("ml", "p")
    kube.placement_exists("ml", "p")
    kube.scale_for_batch(
        "ml", "web", replicas=0, original=2, placement="p",
        since=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), baseline_utilization=0.2,
        resource_version="3",
    )  # fmt: skip
    kube.restore("ml", "web", replicas=2)
    kube.forget("ml", "web")
    kube.patch_placement_status("ml", "p", {"phase": "Batch"})
    kube.conflicting_autoscalers("ml", "web")
    kube.create_job("ml", {"metadata": {"name": "j"}})
    kube.placement_jobs("ml", "p")
    kube.delete_job("ml", "j")
    custom.get_api_resources.return_value = client.V1APIResourceList(
        group_version="keda.sh/v1alpha1", resources=[]
    )
    kube.keda_installed()
    kube.placement_scaled_object("ml", "p")
    kube.apply_scaled_object("ml", {"metadata": {"name": "placement-p"}})
    kube.delete_scaled_object("ml", "placement-p")

    calls = [
        (name, kwargs)
        for mock in (apps, batch, autoscaling, custom)
        for name, _args, kwargs in mock.mock_calls
    ]
    assert len(calls) >= 16, calls
    missing = [name for name, kwargs in calls if kwargs.get("_request_timeout") != 7.5]
    assert missing == []
