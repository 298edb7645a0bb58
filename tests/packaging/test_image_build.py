"""The image built for real from the Dockerfile (buildah, chroot isolation: no Docker engine on
these machines), then the operator run from it against the local control plane and Prometheus
through a move to batch and a restore."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import Gauge

from placement.localenv.cluster import LocalCluster
from placement.localenv.operator_process import OperatorProcess
from placement.localenv.process import ManagedProcess, free_port, http_ok, log_tail
from placement.localenv.prometheus import LocalPrometheus
from tests.integration.harness import (
    Placements,
    measured_deployment,
    operator_stopped,
    placement,
)
from tests.integration.wait import until

ROOT = Path(__file__).parents[2]
IMAGE = "localhost/placement-operator:test"


@pytest.fixture(scope="module")
def image() -> str:
    result = subprocess.run(
        ["sh", str(ROOT / "hack" / "build-image.sh"), IMAGE],
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout.strip()


def _config(image: str) -> dict[str, Any]:
    inspected = subprocess.run(
        ["buildah", "inspect", "--type", "image", image], capture_output=True, check=True
    )
    config: dict[str, Any] = json.loads(inspected.stdout)["OCIv1"]["config"]
    return config


def test_the_image_runs_as_user_10001_with_the_operator_as_entrypoint(image: str) -> None:
    config = _config(image)
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["placement", "run"]
    assert {"8080/tcp", "8081/tcp"} <= set(config["ExposedPorts"])


@pytest.fixture
def container(image: str) -> Iterator[str]:
    name = f"placement-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["buildah", "from", "--name", name, image], capture_output=True, check=True)
    yield name
    subprocess.run(["buildah", "rm", name], capture_output=True, check=False)


def _in_image(container: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["buildah", "run", "--isolation", "chroot", container, "--", *command],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_image_holds_only_the_installed_operator(container: str) -> None:
    assert _in_image(container, "id", "-u").stdout.strip() == "10001"
    assert _in_image(container, "placement", "--version").stdout.strip().startswith("placement ")
    # No source tree, no build tools: the final stage copies only the virtualenv.
    assert _in_image(container, "test", "-e", "/src").returncode != 0
    # The read-only root filesystem of the chart needs no bytecode written at run time.
    compiled = _in_image(
        container, "python", "-c",
        "import importlib.util as u, pathlib as p;"
        "print(p.Path(u.cache_from_source(u.find_spec('placement.runtime.handlers').origin)).exists())",
    )  # fmt: skip
    assert compiled.stdout.strip() == "True", compiled.stderr


@pytest.fixture
def operator_from_image(
    container: str,
    cluster: LocalCluster,
    prometheus: LocalPrometheus,
    crd: str,
    operator: OperatorProcess,
    tmp_path: Path,
) -> Iterator[ManagedProcess]:
    # The image's user (10001) reads the kubeconfig: a world-readable copy in its own
    # directory, mounted read-only as a Secret would be.
    config_dir = tmp_path / "config"
    config_dir.mkdir(mode=0o755)
    config_dir.chmod(0o755)
    kubeconfig = config_dir / "kubeconfig"
    kubeconfig.write_text(cluster.kubeconfig.read_text())
    kubeconfig.chmod(0o644)
    liveness, metrics = free_port(), free_port()
    process = ManagedProcess(
        "operator-from-image",
        [
            "buildah", "run", "--isolation", "chroot",
            "--volume", f"{config_dir}:/config:ro",
            "--env", "PLACEMENT_LOG_LEVEL=INFO",
            container, "--",
            "placement", "run",
            "--prometheus-url", prometheus.url,
            "--kubeconfig", "/config/kubeconfig",
            "--tick", "1",
            "--standalone",
            "--liveness", f"http://127.0.0.1:{liveness}/healthz",
            "--metrics-address", f"127.0.0.1:{metrics}",
        ],
        tmp_path / "operator.log",
    )  # fmt: skip
    # The session's operator watches every namespace too: stopped meanwhile, so the decisions
    # (and the log lines this test reads) are the image's.
    with operator_stopped(operator):
        process.start()
        try:
            process.wait_until(lambda: http_ok(f"http://127.0.0.1:{liveness}/healthz"), 120, "live")
            yield process
        finally:
            process.stop()
            print(log_tail(process.log_path, 40))


def test_the_operator_from_the_image_moves_to_batch_and_restores(
    operator_from_image: ManagedProcess,
    placements: Placements,
    prometheus: LocalPrometheus,
    utilization: Gauge,
) -> None:
    measured_deployment(placements, prometheus, utilization, "summarizer")
    placements.apply(placement("summarizer", placements.namespace, deployment="summarizer"))

    placements.wait_for_reason("summarizer", "BatchSucceeded", timeout=120)
    assert placements.replicas("summarizer") == 0
    assert len(placements.jobs("summarizer")) == 1

    # `kubectl describe`: "From placement-operator, <pod>", the message without the reason.
    moved = [
        event
        for event in placements.core.list_namespaced_event(
            placements.namespace, field_selector="involvedObject.name=summarizer"
        ).items
        if event.reason == "MovedToBatch"
    ]
    assert moved and moved[0].source.component == "placement-operator"
    assert moved[0].reporting_component == "placement-operator"
    assert moved[0].reporting_instance not in ("", "dev")
    assert moved[0].message.startswith("saves ")

    placements.delete("summarizer")  # the finalizer restores the replicas first
    until(
        lambda: placements.replicas("summarizer"),
        lambda replicas: replicas == 4,
        timeout=60,
        what="replicas restored",
    )
    until(lambda: placements.exists("summarizer"), lambda exists: not exists, what="deleted")
    log = operator_from_image.log_path.read_text()
    assert "decision reason=MovedToBatch phase=Batch" in log  # the structured decision line
    assert "Timer 'reconcile' succeeded" not in log  # per-tick lines are DEBUG
