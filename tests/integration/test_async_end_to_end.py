"""End to end on the real control plane, Prometheus and KEDA, with the operator deciding: a
placement whose results may wait 10 minutes (too short for its batch window) and whose work
waits in a queue moves to async; KEDA, through the ScaledObject the operator created, scales
the Deployment to zero on the empty queue and back up when it fills; switched to Recommend,
the operator deletes its ScaledObject and the original replicas come back."""

from __future__ import annotations

import time

import pytest
from prometheus_client import Gauge

from placement.core.api import GROUP, PLURAL, VERSION
from placement.localenv.engines import LocalKeda
from placement.localenv.prometheus import Exporter, LocalPrometheus
from tests.integration.harness import Placements, measured_deployment, placement
from tests.integration.wait import until

QUEUE_METRIC = "inference_e2e_queue_depth"
SCALED = "placement-summarizer"


@pytest.mark.usefixtures("operator")
def test_the_operator_moves_a_queued_workload_to_async_and_back(
    keda: LocalKeda, prometheus: LocalPrometheus, exporter: Exporter, placements: Placements,
    utilization: Gauge,
) -> None:  # fmt: skip
    namespace = placements.namespace
    queue = exporter.gauge(QUEUE_METRIC, "requests waiting", ["namespace", "deployment"])
    queue.labels(namespace, "summarizer").set(0)
    query = f'sum({QUEUE_METRIC}{{deployment="summarizer"}})'
    prometheus.wait_for_value(f'sum({QUEUE_METRIC}{{namespace="{namespace}"}})', 0)
    measured_deployment(placements, prometheus, utilization, "summarizer")
    manifest = placement("summarizer", namespace, deployment="summarizer", acceptable_delay="10m")
    manifest["spec"]["async"] = {"queue": query, "queuePerReplica": 10, "scaleUpTime": "1m"}

    started = time.monotonic()
    placements.apply(manifest)
    event = placements.wait_for_event("summarizer", "MovedToAsync", timeout=90)
    decided = time.monotonic() - started
    until(lambda: placements.replicas("summarizer"), lambda r: r == 0, timeout=90,
          what="KEDA scaled the idle Deployment to zero")  # fmt: skip
    to_zero = time.monotonic() - started
    scaled = placements.scaled_object(SCALED)
    trigger = scaled["spec"]["triggers"][0]["metadata"]
    assert f'namespace="{namespace}"' in trigger["query"], trigger  # scoped by the operator
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (0, 4)

    queue.labels(namespace, "summarizer").set(5)
    started = time.monotonic()
    until(lambda: placements.replicas("summarizer"), lambda r: r >= 1, timeout=90,
          what="KEDA scaled up from zero on a filled queue")  # fmt: skip
    from_zero = time.monotonic() - started
    time.sleep(5)  # evaluations in async: KEDA's counts are not a manual override
    status = placements.status("summarizer")
    assert status["phase"] == "Async", status.get("decision")

    started = time.monotonic()
    placements.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "summarizer", {"spec": {"mode": "Recommend"}}
    )
    placements.wait_for_event("summarizer", "LeftAsync", timeout=60)
    until(lambda: placements.scaled_object_exists(SCALED), lambda e: not e, timeout=60,
          what="the operator deleted its ScaledObject")  # fmt: skip
    until(lambda: placements.replicas("summarizer"), lambda r: r == 4, timeout=60,
          what="the original replicas restored")  # fmt: skip
    left = time.monotonic() - started
    print(
        f"\nasync end to end: MovedToAsync {decided:.1f}s after apply ({event.message[:160]}); "
        f"zero {to_zero:.1f}s after apply; up from zero {from_zero:.1f}s; "
        f"left async and restored 4 replicas {left:.1f}s after Recommend"
    )
