"""The operator reads each placement's load history far less often than it evaluates: one
range query per query shape and namespace, then none until the refresh is due, however many
placements and evaluations."""

from __future__ import annotations

import re
import time
import urllib.request

from prometheus_client import Gauge

from placement.localenv.operator_process import OperatorProcess
from placement.localenv.prometheus import LocalPrometheus
from tests.integration.harness import Placements, measured_deployment, placement
from tests.integration.test_load_metrics import api_requests


def _history_reads_ok(operator: OperatorProcess) -> float:
    with urllib.request.urlopen(operator.metrics_url, timeout=10) as response:
        text = response.read().decode()
    found = re.search(r'^placement_history_reads_total\{outcome="ok"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_placements_of_one_shape_cost_one_range_query_per_refresh(
    placements: Placements,
    prometheus: LocalPrometheus,
    utilization: Gauge,
    operator: OperatorProcess,
) -> None:
    names = ["alpha", "beta", "gamma"]
    for name in names:
        measured_deployment(placements, prometheus, utilization, name)
    before = api_requests(prometheus, "/api/v1/query_range")
    reads_before = _history_reads_ok(operator)
    for name in names:
        placements.apply(placement(name, placements.namespace, deployment=name))
    for name in names:
        placements.wait_for_event(name, "MovedToBatch")
    after_first = api_requests(prometheus, "/api/v1/query_range")
    instant = api_requests(prometheus, "/api/v1/query")

    time.sleep(10)  # evaluationInterval 2s: about five more evaluations of each

    assert api_requests(prometheus, "/api/v1/query") > instant  # they were evaluated
    # One shape, one namespace: the three histories were one range query, and the later
    # evaluations, within the hour's refresh, asked none.
    assert after_first - before == 1
    assert api_requests(prometheus, "/api/v1/query_range") == after_first
    assert _history_reads_ok(operator) - reads_before == 1  # the operator's own count agrees
