"""`placement run` as its own process against a local cluster, the way it runs in a pod.

The demo, the integration tests and the benchmarks start the operator through this, so they
all exercise the same command line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from placement.localenv.process import ManagedProcess, free_port, http_ok


class OperatorProcess(ManagedProcess):
    """The operator, with where its own /metrics is served."""

    metrics_url: str = ""
    liveness_url: str = ""


def start_operator(
    kubeconfig: Path,
    prometheus_url: str,
    log_path: Path,
    *,
    tick_seconds: float = 1.0,
    extra_args: Sequence[str] = (),
    standalone: bool = True,
    timeout: float = 60.0,
    wait_live: bool = True,
) -> OperatorProcess:
    """Start the operator and return once its liveness endpoint answers (at once when not
    `wait_live`)."""
    port, metrics_port = free_port(), free_port()
    process = OperatorProcess(
        "placement-operator",
        [
            sys.executable,
            "-m",
            "placement.runtime.cli",
            "run",
            "--prometheus-url",
            prometheus_url,
            "--tick",
            f"{tick_seconds:g}",
            *(["--standalone"] if standalone else []),
            "--liveness",
            f"http://127.0.0.1:{port}/healthz",
            "--metrics-address",
            f"127.0.0.1:{metrics_port}",
            *extra_args,
        ],
        log_path,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
    )
    process.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    process.liveness_url = f"http://127.0.0.1:{port}/healthz"
    process.start()
    if not wait_live:
        return process
    try:
        process.wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), timeout, "live")
    except BaseException:
        process.stop()
        raise
    return process
