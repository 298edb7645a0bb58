"""Issue 12: while a placement is held, the work arriving keeps being measured (its demand
series does not shrink with the fleet); when the work waiting at window start would no longer
fit the window, the operator restores realtime early, with a Warning that says so."""

from __future__ import annotations

import datetime as dt

import pytest
from prometheus_client import Gauge

from placement.localenv.prometheus import Exporter, LocalPrometheus
from tests.integration.harness import Placements, measured_deployment, placement

pytestmark = pytest.mark.usefixtures("operator")

DEMAND_METRIC = "inference_demand_tokens_per_second"
QUEUE_METRIC = "inference_queued_tokens"


@pytest.fixture(scope="module")
def demand(exporter: Exporter) -> Gauge:
    return exporter.gauge(DEMAND_METRIC, "tokens arriving per second", ["namespace", "deployment"])


@pytest.fixture(scope="module")
def queued(exporter: Exporter) -> Gauge:
    return exporter.gauge(QUEUE_METRIC, "tokens waiting", ["namespace", "deployment"])


def _later_window() -> dict[str, str]:
    """A window opening in two hours, for three hours: the placement is held until then."""
    now = dt.datetime.now(dt.UTC)
    start, end = now + dt.timedelta(hours=2), now + dt.timedelta(hours=5)
    return {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}", "timeZone": "UTC"}


def test_a_held_placement_whose_demand_rises_is_restored_before_its_window_is_missed(
    placements: Placements,
    prometheus: LocalPrometheus,
    utilization: Gauge,
    demand: Gauge,
    queued: Gauge,
) -> None:
    ns = placements.namespace
    demand.labels(ns, "enricher").set(5.0)
    queued.labels(ns, "enricher").set(100.0)
    measured_deployment(placements, prometheus, utilization, "enricher", replicas=4, value=0.2)
    for metric, value in ((DEMAND_METRIC, 5.0), (QUEUE_METRIC, 100.0)):
        prometheus.wait_for_value(
            f'avg_over_time(({metric}{{namespace="{ns}",deployment="enricher"}})[1m:])', value
        )
    manifest = placement("enricher", ns, deployment="enricher", window=_later_window())
    manifest["spec"]["metrics"].update(
        {
            "demand": f'sum({DEMAND_METRIC}{{namespace="{ns}",deployment="enricher"}})',
            "queueDepth": f'sum({QUEUE_METRIC}{{namespace="{ns}",deployment="enricher"}})',
        }
    )
    placements.apply(manifest)
    placements.wait_for_event("enricher", "MovedToBatch")
    assert placements.replicas("enricher") == 0
    assert placements.jobs("enricher") == []  # held: the window has not opened yet

    # Work arrives ten thousand times faster and piles up: it cannot wait two hours.
    demand.labels(ns, "enricher").set(50_000.0)
    queued.labels(ns, "enricher").set(50_000_000.0)

    event = placements.wait_for_event("enricher", "BacklogWillMissWindow", timeout=120)
    assert event.type == "Warning"
    assert any(char.isdigit() for char in event.message)  # the projection, with its numbers
    assert placements.replicas("enricher") == 4
    # Restored while the window is still ahead: nothing was missed, no fallback taken.
    assert placements.jobs("enricher") == []
    assert not any(e.reason == "FallbackRestored" for e in placements.events("enricher"))
