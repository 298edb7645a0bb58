"""Metrics that cannot be trusted never scale anything down, and an outage alone never throws
a placement that is already in batch into fallback. Faults are real: the Prometheus process
stopped or paused, and series that are NaN, several, stale or absent."""

from __future__ import annotations

import math
import time

import pytest
from prometheus_client import Gauge

from placement.localenv.prometheus import LocalPrometheus
from tests.integration.harness import (
    UTILIZATION_METRIC,
    Placements,
    averaged_utilization,
    measured_deployment,
    placement,
)
from tests.integration.wait import until

pytestmark = pytest.mark.usefixtures("operator")


def _still_held(placements: Placements, name: str, seconds: float) -> None:
    """For `seconds`, the held placement stays in batch and nothing falls back."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert placements.status(name)["phase"] == "Batch"
        assert placements.replicas(name) == 0
        time.sleep(0.5)
    assert not any(e.reason == "FallbackRestored" for e in placements.events(name))


@pytest.mark.parametrize("fault", ["down", "frozen"])
def test_prometheus_down_or_stuck_scales_nothing_and_keeps_batch_in_batch(
    fault: str, placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    measured_deployment(placements, prometheus, utilization, "held")
    placements.apply(placement("held", placements.namespace, deployment="held"))
    placements.wait_for_reason("held", "BatchSucceeded", timeout=90)
    measured_deployment(placements, prometheus, utilization, "fresh")

    outage = prometheus.down() if fault == "down" else prometheus.frozen()
    with outage:
        placements.apply(placement("fresh", placements.namespace, deployment="fresh"))
        placements.wait_for_reason("fresh", "MetricsUnavailable", timeout=60)
        event = placements.wait_for_event("fresh", "MetricsUnavailable")
        assert event.type == "Warning"
        assert ("timeout" if fault == "frozen" else "error") in event.message
        assert placements.replicas("fresh") == 4
        assert placements.jobs("fresh") == []
        _still_held(placements, "held", 8)

    # Back: the fresh placement decides on real data; the held one never left batch.
    placements.wait_for_event("fresh", "MovedToBatch", timeout=90)
    assert placements.status("held")["phase"] == "Batch"


def test_nan_several_stale_and_empty_series_never_scale_down(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    ns = placements.namespace
    for name in ("nan", "several", "stale", "empty"):
        placements.deployment(name, 4)
    utilization.labels(ns, "nan").set(math.nan)
    utilization.labels(ns, "several-a").set(0.2)
    utilization.labels(ns, "several-b").set(0.3)
    utilization.labels(ns, "stale").set(0.2)
    prometheus.wait_for_value(averaged_utilization(ns, "stale"), 0.2)
    utilization.remove(ns, "stale")  # the exporter stops reporting it: a staleness marker
    until(lambda: prometheus.query(f'{UTILIZATION_METRIC}{{namespace="{ns}",deployment="stale"}}'),
          lambda result: result == [], what="stale series marked stale")  # fmt: skip

    queries = {
        "nan": f'{UTILIZATION_METRIC}{{namespace="{ns}",deployment="nan"}}',
        "several": f'{UTILIZATION_METRIC}{{namespace="{ns}",deployment=~"several-.*"}}',
        # A query shape of its own: a shared result fetched by other placements before the
        # series went stale may be reused for up to --metrics-max-age (60 s).
        "stale": f'max({UTILIZATION_METRIC}{{namespace="{ns}",deployment="stale"}})',
        "empty": f'{UTILIZATION_METRIC}{{namespace="{ns}",deployment="nothing-here"}}',
    }
    for name, query in queries.items():
        manifest = placement(name, ns, deployment=name)
        manifest["spec"]["metrics"]["utilization"] = query
        placements.apply(manifest)

    for name in queries:
        placements.wait_for_reason(name, "MetricsUnavailable")
        assert placements.wait_for_event(name, "MetricsUnavailable").type == "Warning"
    time.sleep(3)  # several more evaluations on the same bad data
    for name in queries:
        assert placements.replicas(name) == 4, name
        assert placements.jobs(name) == [], name
    messages = {name: placements.status(name)["decision"]["message"] for name in queries}
    for name in queries:
        print(f"{name}: {messages[name]}")
    assert "not-a-number: value is nan" in messages["nan"]
    assert "several-series" in messages["several"]
    assert "query empty" in messages["empty"]
    assert "query empty" in messages["stale"] or "stale" in messages["stale"]  # fmt: skip
