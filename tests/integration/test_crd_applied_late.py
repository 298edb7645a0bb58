"""A namespaced operator started before its CRD: it says so and serves placements once the
CRD is applied, without a restart. (kopf cannot watch CRDs without a cluster-wide right and
looks for its resource once, after start-up: before this, such an operator never served a
placement and said nothing.)"""

from __future__ import annotations

import json
from pathlib import Path

from placement.localenv.cluster import LocalCluster
from placement.localenv.operator_process import start_operator
from placement.localenv.process import http_ok
from placement.localenv.prometheus import LocalPrometheus
from tests.conftest import CRD_FILE
from tests.integration.wait import until

EXAMPLE = Path(__file__).parents[2] / "examples" / "chat-endpoint.yaml"


def test_a_namespaced_operator_started_before_its_crd_serves_placements_once_applied(
    prometheus: LocalPrometheus, tmp_path: Path
) -> None:
    with LocalCluster(tmp_path / "cluster", nodes=1) as cluster:
        cluster.kubectl("create", "namespace", "late")
        log = tmp_path / "operator.log"
        process = start_operator(
            cluster.kubeconfig,
            prometheus.url,
            log,
            extra_args=["--namespace", "late"],
            wait_live=False,
        )
        try:
            said = until(
                lambda: log.read_text(errors="replace") if log.exists() else "",
                lambda text: "is not served by the API server" in text,
                what="the operator saying the CRD is missing",
            )
            assert "apply the CRD" in said
            cluster.kubectl("apply", "--server-side", "-f", str(CRD_FILE))
            process.wait_until(lambda: http_ok(process.liveness_url), 60, "live")
            until(
                lambda: (
                    cluster.kubectl(
                        "apply", "-n", "late", "-f", str(EXAMPLE), check=False
                    ).returncode
                ),
                lambda code: code == 0,
                what="the placement applied",
            )
            status = until(
                lambda: _status(cluster, "late", "chat-endpoint"),
                lambda found: found.get("observedGeneration") == 1,
                timeout=90,
                what="the placement evaluated by the operator started before its CRD",
            )
            assert status.get("conditions"), status
        finally:
            process.stop()


def _status(cluster: LocalCluster, namespace: str, name: str) -> dict[str, object]:
    found = cluster.kubectl("get", "wp", name, "-n", namespace, "-o", "json", check=False)
    if found.returncode != 0:
        return {}
    status = json.loads(found.stdout).get("status") or {}
    return status if isinstance(status, dict) else {}
