"""The real KEDA operator against the local cluster: a ScaledObject with a Prometheus trigger
on a queue series scales its Deployment to zero while the queue is empty, back to one when it
fills, and leaves the Deployment alone once the ScaledObject is deleted.

These are the engine's own guarantees that the async mode builds on; the operator is not
involved here."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from placement.localenv.engines import LocalKeda
from placement.localenv.prometheus import Exporter, LocalPrometheus
from tests.integration.harness import Placements
from tests.integration.wait import until

QUEUE_METRIC = "inference_queue_depth"


def scaled_object(
    name: str, deployment: str, prometheus_url: str, query: str, *, max_replicas: int = 4
) -> dict[str, Any]:
    """What the operator writes for an async placement: min 0, polled each second."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"name": deployment},
            "minReplicaCount": 0,
            "maxReplicaCount": max_replicas,
            "pollingInterval": 1,
            "cooldownPeriod": 2,
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": prometheus_url,
                        "query": query,
                        "threshold": "10",
                        "activationThreshold": "0",
                    },
                }
            ],
        },
    }


def test_keda_scales_a_deployment_to_zero_on_an_empty_queue_and_back_when_it_fills(
    keda: LocalKeda, prometheus: LocalPrometheus, exporter: Exporter, placements: Placements,
    api_client: client.ApiClient,
) -> None:  # fmt: skip
    namespace = placements.namespace
    queue = exporter.gauge(QUEUE_METRIC, "requests waiting", ["namespace", "deployment"])
    query = f'sum({QUEUE_METRIC}{{namespace="{namespace}",deployment="summarizer"}})'
    queue.labels(namespace, "summarizer").set(0)
    prometheus.wait_for_value(query, 0)
    placements.deployment("summarizer", 2)

    placements.custom.create_namespaced_custom_object(
        "keda.sh", "v1alpha1", namespace, "scaledobjects",
        scaled_object("summarizer", "summarizer", prometheus.url, query),
    )  # fmt: skip
    started = time.monotonic()
    until(lambda: placements.replicas("summarizer"), lambda r: r == 0, timeout=60,
          what="KEDA scaled the idle Deployment to zero")  # fmt: skip
    to_zero = time.monotonic() - started
    # KEDA hands scaling above one replica to the HPA it created.
    hpas = (
        client.AutoscalingV2Api(api_client)
        .list_namespaced_horizontal_pod_autoscaler(namespace)
        .items
    )
    assert [h.metadata.name for h in hpas] == ["keda-hpa-summarizer"]

    queue.labels(namespace, "summarizer").set(5)
    started = time.monotonic()
    until(lambda: placements.replicas("summarizer"), lambda r: r >= 1, timeout=60,
          what="KEDA scaled the Deployment up from zero on a filled queue")  # fmt: skip
    from_zero = time.monotonic() - started
    status = placements.scaled_object("summarizer")["status"]
    active = {c["type"]: c["status"] for c in status["conditions"]}
    assert active["Ready"] == "True" and active["Active"] == "True", status
    print(
        f"KEDA: started in {keda.startup_seconds:.1f}s; "
        f"to zero {to_zero:.1f}s, from zero {from_zero:.1f}s"
    )

    # Deleting the ScaledObject stops the scaling and restores nothing.
    replicas = placements.replicas("summarizer")
    placements.custom.delete_namespaced_custom_object(
        "keda.sh", "v1alpha1", namespace, "scaledobjects", "summarizer"
    )
    until(lambda: placements.scaled_object_exists("summarizer"), lambda e: not e,
          what="ScaledObject gone (KEDA's finalizer done)")  # fmt: skip
    until(
        lambda: (
            client.AutoscalingV2Api(api_client)
            .list_namespaced_horizontal_pod_autoscaler(namespace)
            .items
        ),
        lambda items: items == [],
        what="KEDA's HPA deleted with the ScaledObject",
    )
    queue.labels(namespace, "summarizer").set(0)
    time.sleep(5)  # more than pollingInterval + cooldownPeriod: KEDA would have acted by now
    assert placements.replicas("summarizer") == replicas
