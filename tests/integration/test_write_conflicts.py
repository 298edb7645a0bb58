"""Another writer keeps updating the held Deployment (a controller adding labels, with
resourceVersion, so it gets 409s itself). The operator's restore is a merge patch without a
resourceVersion and never conflicts; its hold is conditional on the Deployment as read, and a
conflict from a change that is not another hold is retried on a fresh read: it moves to batch
and restores on deletion regardless, and no conflict reaches its log."""

from __future__ import annotations

import threading

import pytest
from kubernetes.client.exceptions import ApiException
from prometheus_client import Gauge

from placement.localenv.operator_process import OperatorProcess
from placement.localenv.process import log_tail
from placement.localenv.prometheus import LocalPrometheus
from tests.integration.harness import Placements, averaged_utilization, placement
from tests.integration.wait import until


def test_a_busy_deployment_is_moved_and_restored_without_conflict_errors(
    operator: OperatorProcess, placements: Placements, prometheus: LocalPrometheus,
    utilization: Gauge,
) -> None:  # fmt: skip
    ns = placements.namespace
    placements.deployment("busy", 4)
    utilization.labels(ns, "busy").set(0.2)
    prometheus.wait_for_value(averaged_utilization(ns, "busy"), 0.2)

    stop = threading.Event()
    counts = {"updates": 0, "conflicts": 0}

    def neighbour() -> None:
        # read-modify-write with resourceVersion, as controllers do
        while not stop.is_set():
            current = placements.apps.read_namespaced_deployment("busy", ns)
            labels = current.metadata.labels or {}
            labels["touched"] = str(counts["updates"])
            current.metadata.labels = labels
            try:
                placements.apps.replace_namespaced_deployment("busy", ns, current)
                counts["updates"] += 1
            except ApiException as error:
                if error.status != 409:
                    raise
                counts["conflicts"] += 1

    thread = threading.Thread(target=neighbour, daemon=True)
    thread.start()
    try:
        placements.apply(placement("busy", ns, deployment="busy"))
        placements.wait_for_event("busy", "MovedToBatch", timeout=90)
        assert placements.replicas("busy") == 0
        placements.delete("busy")
        until(lambda: placements.exists("busy"), lambda exists: not exists,
              what="placement deleted")  # fmt: skip
        assert placements.replicas("busy") == 4
    finally:
        stop.set()
        thread.join(10)
    print(f"neighbour: {counts['updates']} updates, {counts['conflicts']} conflicts of its own")
    # Busy enough to race the operator (on a loaded 2-core machine it manages about 8 updates).
    assert counts["updates"] >= 3
    # This placement's lines only: other tests' placements (racing pairs) may rightly say
    # ConflictingAutoscaler in the same log.
    own = [line for line in log_tail(operator.log_path, 2000).splitlines() if ns in line]
    assert not [line for line in own if "(409)" in line or "Conflict" in line], own


pytestmark = pytest.mark.usefixtures("operator")
