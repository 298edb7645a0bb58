"""A real Prometheus scrapes an exporter the test controls and serves backfilled history."""

from __future__ import annotations

import time
from pathlib import Path

from placement.localenv.prometheus import (
    Exporter,
    LocalPrometheus,
    write_openmetrics,
)


def test_prometheus_answers_with_the_value_the_test_set(
    exporter: Exporter, prometheus: LocalPrometheus
) -> None:
    utilization = exporter.gauge(
        "inference_useful_utilization", "useful work over capacity", ["namespace", "deployment"]
    )
    utilization.labels("team-a", "summarizer").set(0.37)
    query = 'inference_useful_utilization{namespace="team-a",deployment="summarizer"}'
    prometheus.wait_for_value(query, 0.37)

    utilization.labels("team-a", "summarizer").set(0.81)
    prometheus.wait_for_value(query, 0.81)
    assert prometheus.query(f"count({query})")[0]["value"][1] == "1"


def test_backfilled_series_are_queryable(tmp_path: Path) -> None:
    # One sample a minute over the last three hours: 0.1, 0.2, ... cycling to 0.9.
    now = time.time()
    samples = [
        (
            {"namespace": "replay", "deployment": "enricher"},
            now - 3 * 3600 + 60 * i,
            round(0.1 * (1 + i % 9), 1),
        )
        for i in range(180)
    ]
    series = write_openmetrics(tmp_path / "trace.om", "inference_useful_utilization", samples)
    with LocalPrometheus(tmp_path / "prom", backfill=[series]) as prometheus:
        selector = 'inference_useful_utilization{namespace="replay"}'
        peak = prometheus.query(f"max_over_time({selector}[4h])")
        count = prometheus.query(f"count_over_time({selector}[4h])")
    assert float(peak[0]["value"][1]) == 0.9
    assert int(count[0]["value"][1]) == 180
