"""The operator reads each placement's load history far less often than it evaluates: one
range query per query shape and namespace, then none until the refresh is due, however many
placements and evaluations."""

from __future__ import annotations

import time

import pytest
from prometheus_client import Gauge

from placement.localenv.prometheus import LocalPrometheus
from tests.integration.harness import Placements, measured_deployment, placement
from tests.integration.test_load_metrics import api_requests

pytestmark = pytest.mark.usefixtures("operator")


def test_placements_of_one_shape_cost_one_range_query_per_refresh(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    names = ["alpha", "beta", "gamma"]
    for name in names:
        measured_deployment(placements, prometheus, utilization, name)
    before = api_requests(prometheus, "/api/v1/query_range")
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
