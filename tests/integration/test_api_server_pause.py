"""An API server that stops answering (SIGSTOP: connections open, no reply): every request
times out instead of holding a worker thread, /healthz fails once evaluations have been
stuck past the bound, and everything recovers after SIGCONT."""

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
from placement.localenv.process import http_ok, log_tail
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


def test_a_paused_api_server_times_requests_out_and_fails_healthz_until_it_resumes(
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

            os.kill(apiserver, signal.SIGSTOP)
            paused = time.monotonic()
            try:
                # kopf caches a probe result for 10 s: the bound plus the cache, and a margin.
                until(
                    lambda: _health(own.liveness_url),
                    lambda health: health[0] == 500,
                    timeout=STALL + 10 + 20,
                    interval=1,
                    what="/healthz failing while the API server is paused",
                )
                unhealthy_after = time.monotonic() - paused
                # Threads were released by timeouts, not left waiting on the socket.
                log = log_tail(own.log_path, 400)
                assert "timed out" in log or "TimeoutError" in log, log[-3000:]
            finally:
                os.kill(apiserver, signal.SIGCONT)
            resumed = time.monotonic()
            until(
                lambda: http_ok(own.liveness_url),
                bool,
                timeout=60,
                interval=1,
                what="/healthz healthy again after SIGCONT",
            )
            healthy_after = time.monotonic() - resumed
            print(
                f"/healthz failed {unhealthy_after:.1f}s after the pause "
                f"(timeout {API_TIMEOUT}s, bound {STALL}s); healthy {healthy_after:.1f}s after "
                "the resume"
            )
            summary = json.loads(_health(own.liveness_url)[1])
            assert summary["evaluations"]["completed"] > 0
            # The operator goes on: the placement is still evaluated and held.
            assert placements.replicas("patient") == 0
            assert placements.status("patient")["phase"] == "Batch"
        finally:
            os.kill(apiserver, signal.SIGCONT)  # never leave the session's API server paused
            own.stop()
