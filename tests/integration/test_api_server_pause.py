"""An API server that stops answering (SIGSTOP: connections open, no reply). Evaluations
read the watch caches, so an idle placement goes on being evaluated without a request and
/healthz stays healthy (a restart would not bring the API server back); after SIGCONT the
watches resume and a change made then reaches the decision. That each request carries a
timeout (no thread left waiting on a silent socket) is tests/unit/test_kube_timeouts.py's."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client import Gauge

from placement.localenv.cluster import LocalCluster
from placement.localenv.operator_process import OperatorProcess, start_operator
from placement.localenv.process import http_ok
from placement.localenv.prometheus import LocalPrometheus
from tests.integration.harness import (
    Placements,
    measured_deployment,
    operator_stopped,
    placement,
)
from tests.integration.wait import until

API_TIMEOUT = 2  # seconds per request
STALL = 6  # seconds of failing evaluations before /healthz fails


def _health(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError as error:
        return 0, str(error)


def test_a_paused_api_server_leaves_evaluations_running_from_the_caches(
    operator: OperatorProcess, cluster: LocalCluster, prometheus: LocalPrometheus,
    placements: Placements, utilization: Gauge, tmp_path: Path,
) -> None:  # fmt: skip
    ns = placements.namespace
    measured_deployment(placements, prometheus, utilization, "patient")
    apiserver = cluster.running()["kube-apiserver"]
    assert apiserver is not None
    with operator_stopped(operator):
        own = start_operator(
            cluster.kubeconfig, prometheus.url, tmp_path / "operator.log", tick_seconds=1,
            extra_args=["--api-timeout", str(API_TIMEOUT), "--health-stall", str(STALL)],
        )  # fmt: skip
        try:
            placements.apply(placement("patient", ns, deployment="patient"))
            placements.wait_for_reason("patient", "BatchSucceeded", timeout=90)
            assert _health(own.liveness_url)[0] == 200

            before = json.loads(_health(own.liveness_url)[1])["evaluations"]["completed"]
            os.kill(apiserver, signal.SIGSTOP)
            try:
                # kopf caches a probe result for 10 s; evaluations go on from the caches.
                summary = until(
                    lambda: _health(own.liveness_url),
                    lambda health: (
                        health[0] == 200
                        and json.loads(health[1])["evaluations"]["completed"] >= before + 3
                    ),
                    timeout=STALL + 10 + 20,
                    interval=1,
                    what="evaluations completing from the caches while the API server is paused",
                )
                assert summary[0] == 200
            finally:
                os.kill(apiserver, signal.SIGCONT)
            resumed = time.monotonic()
            # The watches resume: a change made after the pause reaches the decision.
            placements.apps.patch_namespaced_deployment_scale(
                "patient", ns, {"spec": {"replicas": 5}}
            )
            placements.wait_for_event("patient", "ManualOverride", timeout=60)
            print(f"ManualOverride {time.monotonic() - resumed:.1f}s after the resume")
            assert http_ok(own.liveness_url)
        finally:
            os.kill(apiserver, signal.SIGCONT)  # never leave the session's API server paused
            own.stop()
