from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client
from prometheus_client import Gauge

from placement.localenv.cluster import LocalCluster
from placement.localenv.engines import LocalKeda, LocalKueue
from placement.localenv.process import ManagedProcess, log_tail
from placement.localenv.prometheus import Exporter
from tests.integration.harness import UTILIZATION_METRIC, Placements


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in item.nodeid:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def keda(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKeda]:
    """KEDA's operator against the real cluster, started for the test module that asks and
    stopped after it, so no other test's ScaledObject is acted on."""
    with LocalKeda(cluster, tmp_path_factory.mktemp("keda")) as engine:
        yield engine


@pytest.fixture(scope="module")
def kueue(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKueue]:
    """Kueue's manager and webhooks against the real cluster, started for the test module
    that asks and stopped after it (its webhooks removed first), so no other test's Job
    passes its webhook."""
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
