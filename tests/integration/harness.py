"""Placements on the real cluster: build manifests, apply them, read status and Events."""

from __future__ import annotations

import datetime as dt
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from kubernetes import client
from prometheus_client import Gauge

from placement.adapters.prometheus import averaged
from placement.core.api import GROUP, PLURAL, VERSION
from placement.localenv.operator_process import OperatorProcess
from placement.localenv.process import http_ok
from placement.localenv.prometheus import LocalPrometheus
from tests.integration.wait import until

HOLD = "placement.runplacement.io/"

IMAGE = "registry.example/summarizer:1.0"  # kwok never pulls it
UTILIZATION_METRIC = "inference_useful_utilization"


def open_window(now: dt.datetime | None = None) -> dict[str, str]:
    """A batch window (UTC) that opened an hour ago and closes in three hours."""
    now = now or dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(hours=3)
    return {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}", "timeZone": "UTC"}


def utilization_query(namespace: str, deployment: str) -> str:
    return f'{UTILIZATION_METRIC}{{namespace="{namespace}",deployment="{deployment}"}}'


def averaged_utilization(namespace: str, deployment: str) -> str:
    """The query as the operator evaluates it (averaged over the 1m lookback the placements
    here use): waiting for it keeps a just-started series out of the first decision."""
    return averaged(utilization_query(namespace, deployment), dt.timedelta(minutes=1))


def placement(
    name: str,
    namespace: str,
    *,
    deployment: str,
    owner: str = "team-ml",
    mode: str = "Enforce",
    risk: str = "Low",
    user_visible: bool = False,
    warm_replicas: int = 0,
    acceptable_delay: str = "24h",
    retry_window: str = "30m",
    fallback: str = "RestoreRealtime",
    costs: dict[str, Any] | None = None,
    pod_labels: dict[str, str] | None = None,
    window: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A realistic Enforce placement: 4 replicas at 4 USD/h, batch at 2 USD/h, 4x efficient."""
    pod_metadata = {"labels": pod_labels} if pod_labels else {}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkloadPlacement",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "owner": owner,
            "mode": mode,
            "productRisk": risk,
            "target": {"deployment": deployment, "warmReplicas": warm_replicas},
            "latency": {"userVisible": user_visible, "acceptableDelay": acceptable_delay},
            "batch": {
                "window": window or open_window(),
                "retryWindow": retry_window,
                "jobTemplate": {
                    "spec": {
                        "parallelism": 4,
                        "backoffLimit": 0,
                        "template": {
                            "metadata": pod_metadata,
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [{"name": "batch", "image": IMAGE}],
                            },
                        },
                    }
                },
            },
            "fallback": {"action": fallback},
            "costs": costs
            or {
                "realtimeReplicaHourly": 4.0,
                "batchPodHourly": 2.0,
                "batchEfficiency": 4,
                "dataStagingPerRun": 5,
                "operationsPerDay": 10,
                "retryRate": 0.05,
            },
            "metrics": {"utilization": utilization_query(namespace, deployment), "lookback": "1m"},
            "evaluationInterval": "2s",
        },
    }


def deployment(name: str, replicas: int) -> client.V1Deployment:
    """A Deployment whose pods kwok runs (the image is never pulled)."""
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="server", image=IMAGE)]),
            ),
        ),
    )


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


class Placements:
    """Read and write WorkloadPlacements, Deployments and Jobs in one namespace."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)

    def deployment(self, name: str, replicas: int) -> None:
        self.apps.create_namespaced_deployment(self.namespace, deployment(name, replicas))

    def replicas(self, deployment: str) -> int:
        return int(self.apps.read_namespaced_deployment(deployment, self.namespace).spec.replicas)

    def apply(self, manifest: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, manifest
        )

    def get(self, name: str) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name),
        )

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def exists(self, name: str) -> bool:
        return self._exists(lambda: self.get(name))

    def scaled_object(self, name: str) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            self.custom.get_namespaced_custom_object(
                "keda.sh", "v1alpha1", self.namespace, "scaledobjects", name
            ),
        )

    def scaled_object_exists(self, name: str) -> bool:
        return self._exists(lambda: self.scaled_object(name))

    @staticmethod
    def _exists(read: Callable[[], object]) -> bool:
        try:
            read()
        except client.exceptions.ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def events(self, name: str) -> list[Event]:
        items = self.core.list_namespaced_event(
            self.namespace,
            field_selector=f"involvedObject.kind=WorkloadPlacement,involvedObject.name={name}",
        ).items
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        items.sort(key=lambda e: e.first_timestamp or e.event_time or epoch)
        return [Event(e.type, e.reason, e.message) for e in items]

    def jobs(self, placement_name: str) -> list[client.V1Job]:
        return self.batch.list_namespaced_job(
            self.namespace, label_selector=f"{GROUP}/placement={placement_name}"
        ).items

    def wait_for_reason(self, name: str, reason: str, timeout: float = 60) -> dict[str, Any]:
        """Status once status.decision.reason == reason."""
        return until(
            lambda: self.status(name),
            lambda s: (s.get("decision") or {}).get("reason") == reason,
            timeout=timeout,
            what=f"{name} decision reason {reason}",
        )

    def wait_for_event(self, name: str, reason: str, timeout: float = 60) -> Event:
        events = until(
            lambda: self.events(name),
            lambda found: any(e.reason == reason for e in found),
            timeout=timeout,
            what=f"{reason} event on {name}",
        )
        return next(e for e in events if e.reason == reason)


@contextmanager
def operator_stopped(operator: OperatorProcess, *, kill: bool = False) -> Iterator[None]:
    """The session's operator stopped (SIGTERM, or SIGKILL with `kill`) for the block, then
    started again with the same command line, and live before the block's end returns."""
    if kill and operator.pid is not None:
        os.kill(operator.pid, signal.SIGKILL)
        until(operator.exit_code, lambda code: code is not None, what="operator killed")
    else:
        operator.stop()
    try:
        yield
    finally:
        operator.start()
        operator.wait_until(lambda: http_ok(operator.liveness_url), 60, "live again")


def hold_by_hand(
    placements: Placements, deployment: str, *, placement_name: str, original: int, since: str
) -> None:
    """What the operator writes on a Deployment when it moves it to batch, written by hand."""
    placements.apps.patch_namespaced_deployment(
        deployment,
        placements.namespace,
        {
            "metadata": {
                "annotations": {
                    f"{HOLD}original-replicas": str(original),
                    f"{HOLD}placement": placement_name,
                    f"{HOLD}held-since": since,
                    f"{HOLD}baseline-utilization": "0.2",
                }
            },
            "spec": {"replicas": 0},
        },
        _content_type="application/merge-patch+json",
    )


def measured_deployment(
    placements: Placements,
    prometheus: LocalPrometheus,
    utilization: Gauge,
    name: str,
    replicas: int = 4,
    value: float = 0.2,
) -> None:
    """A Deployment whose utilization series Prometheus already averages over the lookback."""
    placements.deployment(name, replicas)
    utilization.labels(placements.namespace, name).set(value)
    prometheus.wait_for_value(averaged_utilization(placements.namespace, name), value)


_UPDATES_REFUSED = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: ["{group}"]
        apiVersions: ["*"]
        operations: ["UPDATE"]
        resources: [{resources}]
  validations:
    - expression: "object.metadata.namespace != '{namespace}'"
      message: "{message}"
      reason: {reason}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  validationActions: [Deny]
"""


def updates_refused_policy(
    name: str, namespace: str, *, group: str, resources: list[str], message: str, reason: str
) -> str:
    """A ValidatingAdmissionPolicy (and binding) refusing every UPDATE of `resources` in
    `namespace`: a full etcd, a broken webhook or lost rights, as the API server shows them."""
    return _UPDATES_REFUSED.format(
        name=name,
        namespace=namespace,
        group=group,
        resources=", ".join(f'"{resource}"' for resource in resources),
        message=message,
        reason=reason,
    )


def status_refused_policy(name: str, namespace: str) -> str:
    """Every status write of the namespace's placements refused (422)."""
    return updates_refused_policy(
        name,
        namespace,
        group="placement.runplacement.io",
        resources=["workloadplacements/status"],
        message="status of this placement is frozen by the test",
        reason="Invalid",
    )
