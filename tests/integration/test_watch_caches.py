"""The operator reads Deployments, Jobs and autoscalers from watch caches: a change reaches its
decisions within seconds, and while nothing changes its evaluations make no API request at
all (the apiserver's own apiserver_request_total says so)."""

from __future__ import annotations

import re
import time
import urllib.request

import pytest
from kubernetes import client
from prometheus_client import Gauge

from placement.localenv.cluster import LocalCluster
from placement.localenv.operator_process import OperatorProcess
from placement.localenv.prometheus import LocalPrometheus
from tests.integration.harness import Placements, measured_deployment, placement
from tests.integration.wait import until

# Everything the operator reads or writes besides its watches.
RESOURCES = frozenset(
    {"deployments", "horizontalpodautoscalers", "jobs", "scaledobjects", "workloadplacements",
     "events"}
)  # fmt: skip
_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def api_requests(cluster: LocalCluster) -> dict[tuple[str, str], float]:
    """apiserver_request_total by (verb, resource) on the operator's resources, watches left
    out (a watch is one long request, counted when it starts)."""
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    counts: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        if labels.get("resource") in RESOURCES and labels.get("verb") != "WATCH":
            key = (labels["verb"], labels["resource"])
            counts[key] = counts.get(key, 0.0) + float(match["value"])
    return counts


def evaluations(operator: OperatorProcess) -> float:
    with urllib.request.urlopen(operator.metrics_url, timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("placement_reconcile_duration_seconds_count")
    )


def _terminating(api_client: client.ApiClient) -> list[str]:
    """Namespaces being deleted: while one is, the namespace controller lists and deletes in
    it, and the apiserver's counters do not say who asked. Earlier tests' namespaces are waited
    for; one stuck (a finalizer of an engine stopped since, e.g. Kueue's on its Workloads) is
    returned, and the namespace controller's verbs are then not counted."""
    core = client.CoreV1Api(api_client)

    def names() -> list[str]:
        return [str(n.metadata.name) for n in core.list_namespace().items
                if n.status.phase == "Terminating"]  # fmt: skip

    deadline = time.monotonic() + 180
    while names() and time.monotonic() < deadline:
        time.sleep(2)
    return names()


def test_an_idle_cycle_makes_no_api_request(
    operator: OperatorProcess, cluster: LocalCluster, placements: Placements,
    prometheus: LocalPrometheus, utilization: Gauge, api_client: client.ApiClient,
) -> None:  # fmt: skip
    _terminating(api_client)
    for name in ("idle-a", "idle-b", "idle-c"):
        measured_deployment(placements, prometheus, utilization, name)
        placements.apply(placement(name, placements.namespace, deployment=name, mode="Recommend"))
    for name in ("idle-a", "idle-b", "idle-c"):
        placements.wait_for_reason(name, "BatchRecommended")
    time.sleep(3)  # the decisions written, their Events posted
    stuck = _terminating(api_client)

    before, evaluated = api_requests(cluster), evaluations(operator)
    time.sleep(10)  # evaluationInterval 2s: about five evaluations of each
    after, evaluated_after = api_requests(cluster), evaluations(operator)

    made = {
        key: after[key] - before.get(key, 0.0) for key in after if after[key] != before.get(key)
    }
    if stuck:  # the namespace controller's retries on a stuck namespace, not the operator's
        made = {key: value for key, value in made.items() if key[0] not in ("LIST", "DELETE")}
    assert evaluated_after - evaluated >= 10, "the placements were not evaluated meanwhile"
    assert made == {}, f"requests in an idle cycle: {made}"


def test_a_change_reaches_the_decision_within_seconds(
    operator: OperatorProcess, placements: Placements, prometheus: LocalPrometheus,
    utilization: Gauge, api_client: client.ApiClient,
) -> None:  # fmt: skip
    ns = placements.namespace
    measured_deployment(placements, prometheus, utilization, "watched", replicas=4)
    placements.apply(placement("watched", ns, deployment="watched", mode="Recommend"))
    placements.wait_for_reason("watched", "BatchRecommended")

    # The Deployment scaled by someone else: the next evaluation sees 6 replicas.
    placements.apps.patch_namespaced_deployment("watched", ns, {"spec": {"replicas": 6}})
    started = time.monotonic()
    until(
        lambda: placements.status("watched")["decision"]["message"],
        lambda message: "deployment/watched 6 ->" in message,
        timeout=15,
        what="a decision on 6 replicas",
    )
    print(f"replicas seen after {time.monotonic() - started:.1f}s")

    # An HPA on it appears, then goes: blocked, then recommended again.
    autoscaling = client.AutoscalingV2Api(api_client)
    autoscaling.create_namespaced_horizontal_pod_autoscaler(
        ns,
        client.V2HorizontalPodAutoscaler(
            metadata=client.V1ObjectMeta(name="watched"),
            spec=client.V2HorizontalPodAutoscalerSpec(
                scale_target_ref=client.V2CrossVersionObjectReference(
                    api_version="apps/v1", kind="Deployment", name="watched"
                ),
                min_replicas=4,
                max_replicas=8,
            ),
        ),
    )
    started = time.monotonic()
    placements.wait_for_reason("watched", "ConflictingAutoscaler", timeout=15)
    print(f"HPA seen after {time.monotonic() - started:.1f}s")
    autoscaling.delete_namespaced_horizontal_pod_autoscaler("watched", ns)
    placements.wait_for_reason("watched", "BatchRecommended", timeout=15)


pytestmark = pytest.mark.usefixtures("operator")
