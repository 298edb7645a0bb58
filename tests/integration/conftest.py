from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client
from prometheus_client import Gauge

from placement.localenv.process import ManagedProcess, log_tail
from placement.localenv.prometheus import Exporter
from tests.integration.harness import UTILIZATION_METRIC, Placements


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in item.nodeid:
            item.add_marker(pytest.mark.integration)


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
    process = item.funcargs.get("operator") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(process, ManagedProcess):
        report.sections.append(("operator log (tail)", log_tail(process.log_path, 60)))
