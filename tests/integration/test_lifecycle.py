"""`make cluster` leaves a usable cluster, `make cluster-down` and any death of the owner
leave no process behind, and a component that fails says why."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from placement.localenv import tools
from placement.localenv.process import ComponentError, ManagedProcess, is_alive
from tests.integration.wait import until


def _localenv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "placement.localenv", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_up_gives_a_cluster_kubectl_answers_and_down_stops_everything(tmp_path: Path) -> None:
    up = _localenv("up", "--dir", str(tmp_path), "--nodes", "1")
    assert up.returncode == 0, up.stderr
    state = json.loads((tmp_path / "state.json").read_text())
    assert f"export KUBECONFIG={state['kubeconfig']}" in up.stdout

    nodes = subprocess.run(
        [str(tools.binary("kubectl")), "--kubeconfig", state["kubeconfig"], "get", "nodes"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "kwok-node-0   Ready" in nodes

    again = _localenv("up", "--dir", str(tmp_path))
    assert "already running" in again.stdout

    children = [int(pid) for pid in state["children"].values()]
    assert len(children) == 6 and all(is_alive(pid) for pid in children)
    down = _localenv("down", "--dir", str(tmp_path))
    assert down.returncode == 0, down.stderr
    assert not is_alive(state["pid"])
    assert not [pid for pid in children if is_alive(pid)]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_no_orphans_when_the_owner_is_interrupted_or_killed(
    tmp_path: Path, signum: signal.Signals
) -> None:
    supervisor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "placement.localenv",
            "serve",
            "--dir",
            str(tmp_path),
            "--nodes",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        state_file = tmp_path / "state.json"
        until(state_file.exists, lambda ready: ready, timeout=120, what="cluster ready")
        children = [int(pid) for pid in json.loads(state_file.read_text())["children"].values()]
        supervisor.send_signal(signum)
        supervisor.wait(30)
        until(
            lambda: [pid for pid in children if is_alive(pid)],
            lambda alive: not alive,
            timeout=30,
            what="every component gone",
        )
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


def test_a_component_that_fails_is_reported_with_its_log_tail(tmp_path: Path) -> None:
    broken = ManagedProcess(
        "fake-apiserver",
        ["sh", "-c", "echo 'starting'; echo 'error: etcd-servers must be specified'; exit 3"],
        tmp_path / "fake.log",
    )
    broken.start()
    with pytest.raises(ComponentError) as failure:
        broken.wait_until(lambda: False, timeout=10, what="ready")
    message = str(failure.value)
    assert "fake-apiserver exited with code 3 before it was ready" in message
    assert "error: etcd-servers must be specified" in message


def test_a_component_that_hangs_is_reported_after_the_timeout(tmp_path: Path) -> None:
    hanging = ManagedProcess(
        "slow-thing", ["sh", "-c", "echo waiting; sleep 60"], tmp_path / "slow.log"
    )
    hanging.start()
    started = time.monotonic()
    try:
        with pytest.raises(ComponentError, match=r"slow-thing was not healthy after 1s"):
            hanging.wait_until(lambda: False, timeout=1, what="healthy")
    finally:
        hanging.stop()
    assert time.monotonic() - started < 10
    assert hanging.exit_code() is not None


def test_a_port_taken_between_pick_and_bind_is_retried_with_new_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from placement.localenv import cluster as cluster_module
    from placement.localenv.cluster import LocalCluster

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen(1)
    taken = squatter.getsockname()[1]
    from placement.localenv.process import free_port as real_free_port

    handed_out: list[int] = []

    def first_one_taken() -> int:
        # The first port the cluster asks for (the apiserver's) is already someone else's.
        port = taken if not handed_out else real_free_port()
        handed_out.append(port)
        return port

    monkeypatch.setattr(cluster_module, "free_port", first_one_taken)
    try:
        with LocalCluster(tmp_path / "c", nodes=1) as local:
            assert local.api_port != taken
            assert "kwok-node-0" in local.kubectl("get", "nodes").stdout
    finally:
        squatter.close()
    assert handed_out[0] == taken
