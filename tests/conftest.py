"""Shared fixtures: one real control plane and one real Prometheus per test session.

They start only when a test asks for them, so `pytest tests/unit` needs no binaries. A missing
binary is a failure that says `make tools`, never a skip: an integration test that does not
run has not passed.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from placement.localenv.cluster import LocalCluster
from placement.localenv.operator_process import OperatorProcess, start_operator
from placement.localenv.prometheus import Exporter, LocalPrometheus
from tests.integration.wait import until


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("cluster"), nodes=2) as local:
        yield local


@pytest.fixture(scope="session")
def api_client(cluster: LocalCluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="session")
def core_v1(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def namespace(core_v1: client.CoreV1Api, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, named after it; deleted afterwards."""
    stem = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = _create_unique_namespace(core_v1, stem)
    _wait_for_default_service_account(core_v1, name)
    yield name
    try:
        core_v1.delete_namespace(name)
    except ApiException as error:
        if error.status != 404:
            raise


def _create_unique_namespace(core_v1: client.CoreV1Api, stem: str) -> str:
    # Parametrized cases share their 40-character stem, so the suffix alone tells them apart:
    # ten hex digits, and a fresh one if the name still belongs to a namespace being deleted
    # (a 5-digit suffix once collided with a terminating namespace in CI).
    for _ in range(5):
        name = f"{stem}-{uuid.uuid4().hex[:10]}"
        try:
            core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
            return name
        except ApiException as error:
            if error.status != 409:
                raise
    raise RuntimeError(f"no free namespace name for {stem} after 5 tries")


def _wait_for_default_service_account(core_v1: client.CoreV1Api, namespace: str) -> None:
    # Pods are refused until the controller-manager has created the namespace's "default"
    # ServiceAccount; waiting here keeps that race out of every test.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            core_v1.read_namespaced_service_account("default", namespace)
            return
        except ApiException as error:
            if error.status != 404:
                raise
        time.sleep(0.1)
    raise TimeoutError(f"namespace {namespace} got no default ServiceAccount in 30s")


@pytest.fixture(scope="session")
def exporter() -> Iterator[Exporter]:
    with Exporter() as running:
        yield running


@pytest.fixture(scope="session")
def prometheus(
    exporter: Exporter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPrometheus]:
    with LocalPrometheus(tmp_path_factory.mktemp("prometheus"), targets=[exporter.target]) as p:
        yield p


CRD_FILE = Path(__file__).parents[1] / "crds" / "workloadplacements.placement.runplacement.io.yaml"


@pytest.fixture(scope="session")
def crd(cluster: LocalCluster) -> str:
    """The committed CRD, applied to the real API server and Established."""
    cluster.kubectl("apply", "--server-side", "-f", str(CRD_FILE))
    name = "workloadplacements.placement.runplacement.io"
    # Polled, not `kubectl wait`: on a loaded machine its first GET can race the create.
    until(
        lambda: cluster.kubectl(
            "get", f"crd/{name}", "-o",
            "jsonpath={.status.conditions[?(@.type=='Established')].status}", check=False,
        ).stdout,
        lambda established: established == "True",
        what="CRD Established",
    )  # fmt: skip
    # Discovery can trail the Established condition for a moment.
    until(
        lambda: cluster.kubectl("get", "wp", "-A", check=False).returncode,
        lambda code: code == 0,
        what="wp resource discoverable",
    )
    return name


@pytest.fixture(scope="session")
def operator(
    cluster: LocalCluster,
    prometheus: LocalPrometheus,
    crd: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """`placement run` as its own process, the way it runs in a pod, against the real
    cluster and Prometheus, looking at every placement each second."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = start_operator(cluster.kubeconfig, prometheus.url, log, tick_seconds=1)
    yield process
    process.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # In CI a test that needs a binary (cluster, helm, hadolint) and skips has not run: count
    # it as a failure.
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("CI") and report.skipped and "tests/unit/" not in item.nodeid:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which counts as not run: {report.longrepr}"
