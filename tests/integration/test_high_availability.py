"""Two operator replicas sharing a kopf peering object: only the higher priority acts; when it
is killed (SIGKILL, no goodbye), the other takes over once the dead one's keep-alive expires,
and nothing is actuated twice."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client
from prometheus_client import Gauge

from placement.localenv.cluster import LocalCluster
from placement.localenv.operator_process import OperatorProcess, start_operator
from placement.localenv.process import log_tail
from placement.localenv.prometheus import LocalPrometheus
from tests.integration.harness import (
    Placements,
    averaged_utilization,
    operator_stopped,
    placement,
)
from tests.integration.wait import until

PEERING_CRDS = Path(__file__).parents[2] / "crds" / "kopfpeerings.kopf.dev.yaml"
LIFETIME = 10  # seconds a silent peer counts as alive: the takeover bound


@pytest.fixture
def peering(cluster: LocalCluster, api_client: client.ApiClient) -> Iterator[str]:
    cluster.kubectl("apply", "--server-side", "-f", str(PEERING_CRDS))
    until(
        lambda: cluster.kubectl("get", "clusterkopfpeerings", check=False).returncode,
        lambda code: code == 0,
        what="peering resource served",
    )
    name = f"placement-ha-{uuid.uuid4().hex[:6]}"
    custom = client.CustomObjectsApi(api_client)
    custom.create_cluster_custom_object(
        "kopf.dev", "v1", "clusterkopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}},
    )  # fmt: skip
    yield name
    custom.delete_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", name)


def _peers(api_client: client.ApiClient, peering: str) -> dict[str, Any]:
    body = client.CustomObjectsApi(api_client).get_cluster_custom_object(
        "kopf.dev", "v1", "clusterkopfpeerings", peering
    )
    return dict(cast(dict[str, Any], body).get("status") or {})


def _replica(cluster: LocalCluster, prometheus: LocalPrometheus, log: Path, peering: str,
             priority: int) -> OperatorProcess:  # fmt: skip
    return start_operator(
        cluster.kubeconfig, prometheus.url, log, tick_seconds=1, standalone=False,
        extra_args=["--peering", peering, "--priority", str(priority),
                    "--peering-lifetime", str(LIFETIME)],
    )  # fmt: skip


def test_one_replica_acts_and_the_other_takes_over_after_a_kill(
    operator: OperatorProcess, cluster: LocalCluster, prometheus: LocalPrometheus,
    placements: Placements, utilization: Gauge, peering: str, tmp_path: Path,
    api_client: client.ApiClient,
) -> None:  # fmt: skip
    ns = placements.namespace
    for name in ("first", "second"):
        placements.deployment(name, 4)
        utilization.labels(ns, name).set(0.2)
        prometheus.wait_for_value(averaged_utilization(ns, name), 0.2)

    with operator_stopped(operator):
        active = _replica(cluster, prometheus, tmp_path / "active.log", peering, 200)
        standby = _replica(cluster, prometheus, tmp_path / "standby.log", peering, 100)
        try:
            # Both keep-alives in the peering object: the standby starts paused and stays so.
            until(
                lambda: _peers(api_client, peering),
                lambda peers: sorted(p["priority"] for p in peers.values()) == [100, 200],
                what="both replicas in the peering object",
            )
            placements.apply(placement("first", ns, deployment="first"))
            placements.wait_for_event("first", "MovedToBatch", timeout=90)
            assert f"[{ns}/first]" in log_tail(active.log_path, 400)
            assert f"[{ns}/first]" not in log_tail(standby.log_path, 400)

            assert active.pid is not None
            os.kill(active.pid, signal.SIGKILL)
            killed = time.monotonic()
            placements.apply(placement("second", ns, deployment="second"))
            placements.wait_for_event("second", "MovedToBatch", timeout=LIFETIME + 60)
            takeover = time.monotonic() - killed
            print(f"takeover after SIGKILL: {takeover:.1f}s (peering lifetime {LIFETIME}s)")
            assert takeover <= LIFETIME + 15
            assert "Resuming operations" in log_tail(standby.log_path, 400)

            time.sleep(3)
            for name in ("first", "second"):
                reasons = [e.reason for e in placements.events(name)]
                assert reasons.count("MovedToBatch") == 1, (name, reasons)
                assert len(placements.jobs(name)) == 1, name
                assert placements.replicas(name) == 0
        finally:
            standby.stop()
            active.stop()
