from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from prometheus_client import Gauge

from placement.localenv.cluster import LocalCluster
from placement.localenv.engines import LocalKeda, LocalKueue
from placement.localenv.operator_process import OperatorProcess, start_operator
from placement.localenv.process import ManagedProcess, log_tail
from placement.localenv.prometheus import Exporter, LocalPrometheus
from tests.integration.harness import UTILIZATION_METRIC, Placements
from tests.integration.wait import until


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in item.nodeid:
            item.add_marker(pytest.mark.integration)


CRD_FILE = Path(__file__).parents[2] / "crds" / "workloadplacements.placement.runplacement.io.yaml"


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


@pytest.fixture(scope="session")
def keda(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKeda]:
    """KEDA's operator against the real cluster, started once by the first test that asks.
    It stays up for the rest of the session: every ScaledObject created after that is acted
    on for real."""
    with LocalKeda(cluster, tmp_path_factory.mktemp("keda")) as engine:
        yield engine


@pytest.fixture(scope="session")
def kueue(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKueue]:
    """Kueue's manager and webhooks against the real cluster, started once by the first test
    that asks. From then on every Job creation passes its webhook; Jobs without the
    queue-name label are left alone."""
    with LocalKueue(cluster, tmp_path_factory.mktemp("kueue")) as engine:
        yield engine


@pytest.fixture
def placements(api_client: client.ApiClient, namespace: str) -> Placements:
    return Placements(api_client, namespace)


@pytest.fixture
def utilization(exporter: Exporter) -> Gauge:
    return exporter.gauge(
        UTILIZATION_METRIC, "useful work over capacity", ["namespace", "deployment"]
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # When an operator test fails, the operator's own words are the first thing to read.
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    funcargs = item.funcargs if hasattr(item, "funcargs") else {}
    process = funcargs.get("operator")
    if report.failed and isinstance(process, ManagedProcess):
        report.sections.append(("operator log (tail)", log_tail(process.log_path, 60)))
    for name in ("keda", "kueue"):
        engine = funcargs.get(name)
        if report.failed and isinstance(engine, (LocalKeda, LocalKueue)):
            report.sections.append((f"{name} log (tail)", log_tail(engine.log_path, 40)))
