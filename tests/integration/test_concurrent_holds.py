"""Two placements created at the same moment on one Deployment: the hold is a conditional
write, so exactly one of them holds it and creates a Job; the other says who holds it."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import Gauge

from placement.localenv.prometheus import LocalPrometheus
from tests.integration.harness import (
    HOLD,
    Placements,
    averaged_utilization,
    placement,
    utilization_query,
)
from tests.integration.wait import until

pytestmark = pytest.mark.usefixtures("operator")

PAIRS = 20
SIGNAL = "pairs-signal"  # one utilization series every placement reads


def test_twenty_racing_pairs_end_with_one_holder_and_one_job_each(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    ns = placements.namespace
    utilization.labels(ns, SIGNAL).set(0.2)
    prometheus.wait_for_value(averaged_utilization(ns, SIGNAL), 0.2)
    targets = [f"shared-{i:02d}" for i in range(PAIRS)]
    for target in targets:
        placements.deployment(target, 4)
    manifests = []
    for target in targets:
        for side in ("a", "b"):
            manifest = placement(f"{target}-{side}", ns, deployment=target)
            manifest["spec"]["metrics"]["utilization"] = utilization_query(ns, SIGNAL)
            manifests.append(manifest)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(manifests)) as pool:
        list(pool.map(placements.apply, manifests))  # both of each pair at once

    def holders() -> dict[str, str | None]:
        found = {}
        for target in targets:
            deployment = placements.apps.read_namespaced_deployment(target, ns)
            found[target] = (deployment.metadata.annotations or {}).get(f"{HOLD}placement")
        return found

    held = until(holders, lambda h: all(h.values()), timeout=120, what="every Deployment held")

    def settled() -> dict[str, str | None]:
        # Every placement has decided: the holder moved, the other is blocked by it.
        return {
            str(m["metadata"]["name"]): (placements.status(m["metadata"]["name"]).get("phase"))
            for m in manifests
        }

    phases = until(settled, lambda p: all(p.values()), timeout=120, what="every placement decided")
    time.sleep(5)  # several more evaluations: nothing may move twice
    print(f"{PAIRS} pairs settled in {time.monotonic() - started:.1f}s")

    assert holders() == held  # nobody took a hold over
    jobs = placements.batch.list_namespaced_job(ns).items
    assert len(jobs) == PAIRS, sorted(str(j.metadata.name) for j in jobs)
    for target in targets:
        winner = held[target]
        loser = f"{target}-b" if winner == f"{target}-a" else f"{target}-a"
        assert winner in (f"{target}-a", f"{target}-b")
        assert placements.replicas(target) == 0
        assert len(placements.jobs(winner)) == 1 and placements.jobs(loser) == []
        assert phases[winner] == "Batch" and phases[loser] == "Blocked", (target, phases)
        said = [(e.reason, e.message) for e in placements.events(loser)]
        assert any(
            reason == "ConflictingAutoscaler" and f"WorkloadPlacement/{winner}" in message
            for reason, message in said
        ), said
        assert not any(reason == "ManualOverride" for reason, _ in said), said
        assert not any(e.reason == "ManualOverride" for e in placements.events(winner))
