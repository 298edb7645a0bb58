"""A placement whose inputs did not change is not written again: no status patch, no Event,
even while the wait until its window shrinks with the clock."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from prometheus_client import Gauge

from placement.localenv.prometheus import LocalPrometheus
from tests.integration.harness import Placements, averaged_utilization, placement
from tests.integration.wait import until

pytestmark = pytest.mark.usefixtures("operator")


def test_a_waiting_placement_is_evaluated_without_writes(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge
) -> None:
    placements.deployment("indexer", 4)
    utilization.labels(placements.namespace, "indexer").set(0.2)
    prometheus.wait_for_value(averaged_utilization(placements.namespace, "indexer"), 0.2)
    now = dt.datetime.now(dt.UTC)
    later = {  # a window 5-7 hours away: every evaluation, the wait is a little shorter
        "start": f"{now + dt.timedelta(hours=5):%H:%M}",
        "end": f"{now + dt.timedelta(hours=7):%H:%M}",
        "timeZone": "UTC",
    }
    placements.apply(
        placement(
            "indexer",
            placements.namespace,
            deployment="indexer",
            acceptable_delay="1h",
            window=later,
        )
    )
    placements.wait_for_reason("indexer", "DelayNotTolerated")
    first = placements.get("indexer")
    events = placements.events("indexer")

    time.sleep(8)  # evaluationInterval 2s: about four evaluations, each a minute-fraction on

    again = placements.get("indexer")
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert again["status"]["decision"]["evaluatedAt"] == first["status"]["decision"]["evaluatedAt"]
    assert placements.events("indexer") == events

    # A real change is still written, with the wait as of that evaluation.
    utilization.labels(placements.namespace, "indexer").set(0.9)
    changed = until(
        lambda: placements.status("indexer")["decision"],
        lambda decision: decision["savingsPerDay"] < 0,
        what="savings after utilization 0.9",
    )
    assert changed["evaluatedAt"] > first["status"]["decision"]["evaluatedAt"]
    assert changed["inputs"]["waitHours"] < first["status"]["decision"]["inputs"]["waitHours"]
