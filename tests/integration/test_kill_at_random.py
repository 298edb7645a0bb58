"""SIGKILL the operator at random moments while placements move to batch, fail, fall back and
are deleted and re-created; afterwards the invariants hold: every Deployment is either held at
its warm count with its original count recorded, or back at its original count; no window has
two Jobs; deleting every placement gives every replica back."""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from functools import partial

from prometheus_client import Gauge

from placement.localenv.operator_process import OperatorProcess
from placement.localenv.prometheus import LocalPrometheus
from tests.integration.harness import (
    HOLD,
    Placements,
    averaged_utilization,
    operator_stopped,
    placement,
)
from tests.integration.wait import until

ORIGINAL = {"steady": 4, "hybrid": 5, "failing": 3}
WARM = {"steady": 0, "hybrid": 1, "failing": 0}
KILLS = 8


def _manifest(namespace: str, name: str) -> dict[str, object]:
    if name == "failing":
        return placement(name, namespace, deployment=name, retry_window="0s",
                         pod_labels={"sim.placement.runplacement.io/outcome": "fail"})  # fmt: skip
    return placement(name, namespace, deployment=name, warm_replicas=WARM[name])


def _check_invariants(placements: Placements) -> None:
    for name, original in ORIGINAL.items():
        deployment = placements.apps.read_namespaced_deployment(name, placements.namespace)
        annotations = {
            k: v for k, v in (deployment.metadata.annotations or {}).items() if k.startswith(HOLD)
        }
        replicas = deployment.spec.replicas
        if annotations:
            assert annotations[f"{HOLD}original-replicas"] == str(original), name
            assert replicas == WARM[name], (name, replicas)
        else:
            assert replicas == original, (name, replicas)
        windows = Counter(job.metadata.labels[f"{HOLD}window"] for job in placements.jobs(name))
        assert all(count == 1 for count in windows.values()), (name, windows)


# The schedule of kills reads as one story; split, the test would hide which kill broke what.
def test_sigkill_at_random_moments_loses_nothing_and_duplicates_nothing(  # noqa: C901
    operator: OperatorProcess, placements: Placements, prometheus: LocalPrometheus,
    utilization: Gauge,
) -> None:  # fmt: skip
    seed = int(os.environ.get("PLACEMENT_KILL_SEED", time.time_ns() % 1_000_000))
    print(f"PLACEMENT_KILL_SEED={seed}")  # rerun the same schedule with this
    rng = random.Random(seed)
    ns = placements.namespace
    for name, replicas in ORIGINAL.items():
        placements.deployment(name, replicas)
        utilization.labels(ns, name).set(0.2)
    for name in ORIGINAL:
        prometheus.wait_for_value(averaged_utilization(ns, name), 0.2)
        placements.apply(_manifest(ns, name))

    for kill in range(KILLS):
        time.sleep(rng.uniform(0.05, 2.0))
        with operator_stopped(operator, kill=True):
            time.sleep(rng.uniform(0.0, 0.5))
            if kill == 2:
                placements.delete("steady")
        if kill == 2:
            until(lambda: placements.exists("steady"), lambda exists: not exists,
                  what="steady deleted", timeout=60)  # fmt: skip
            assert placements.replicas("steady") == ORIGINAL["steady"]
        if kill == 4:
            placements.apply(_manifest(ns, "steady"))

    # Let the last operator settle, then check what a user would.
    for name in ORIGINAL:
        until(partial(placements.status, name), lambda status: bool(status.get("decision")),
              what=f"{name} decided", timeout=60)  # fmt: skip
    time.sleep(3)
    _check_invariants(placements)
    assert placements.status("hybrid")["phase"] == "Batch"

    for name in ORIGINAL:
        placements.delete(name)
    for name in ORIGINAL:
        until(partial(placements.exists, name), lambda exists: not exists,
              what=f"{name} deleted", timeout=60)  # fmt: skip
    for name, original in ORIGINAL.items():
        assert placements.replicas(name) == original, name
    _check_invariants(placements)
