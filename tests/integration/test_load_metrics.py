"""Demand, requests, the async queue and the load history against a real Prometheus: the
instant readings batched like utilization, the history one range query per shape and
namespace over two weeks of backfilled samples, refreshed once per interval, bounded, and
never reading another namespace."""

from __future__ import annotations

import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import Gauge

from placement.adapters.prometheus import (
    BatchedMetricsReader,
    MetricsReader,
    Outcome,
    QueryLimits,
)
from placement.core.tenancy import ScopeError, scope_to_namespace
from placement.localenv.prometheus import Exporter, LocalPrometheus, write_openmetrics

LOOKBACK = timedelta(minutes=1)
DAYS = 14
STEP = 300  # seconds: the history's step for 14 days
METRIC = "history_demand_tokens"


def api_requests(prometheus: LocalPrometheus, handler: str) -> float:
    """Prometheus's own count of HTTP API requests to `handler` (as bench/scale.py reads)."""
    with urllib.request.urlopen(f"{prometheus.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    pattern = re.compile(
        r'^prometheus_http_requests_total\{[^}]*handler="'
        + re.escape(handler)
        + r'"[^}]*\} (\S+)$',
        re.MULTILINE,
    )
    return sum(float(value) for value in pattern.findall(text))


# -- instant readings: demand, requests, async.queue -----------------------------------------


@pytest.fixture(scope="module")
def load(exporter: Exporter) -> Gauge:
    return exporter.gauge(
        "load_probe", "demand, requests and queue values the tests set", ["namespace", "app"]
    )


def _serve(prometheus: LocalPrometheus, load: Gauge, ns: str, values: dict[str, float]) -> None:
    for app, value in values.items():
        load.labels(ns, app).set(value)
    deadline = time.monotonic() + 30
    selector = f'load_probe{{namespace="{ns}"}}'
    while len(prometheus.query(f"avg_over_time(({selector})[1m:])")) < len(values):
        assert time.monotonic() < deadline, f"{selector} not averaged after 30s"
        time.sleep(0.2)


@pytest.mark.parametrize("method", ["demand", "requests", "async_queue"])
def test_each_new_reading_is_two_queries_per_pass_for_a_namespaces_placements(
    prometheus: LocalPrometheus, load: Gauge, method: str
) -> None:
    ns = f"l{uuid.uuid4().hex[:6]}"
    # Demand and queue depth are not fractions: 1,250 tokens/s is a good reading.
    values = {f"app-{i}": 250.0 * i for i in range(1, 6)}
    _serve(prometheus, load, ns, values)
    batched = BatchedMetricsReader(MetricsReader(prometheus.url, timeout=5), max_age=60)
    before = api_requests(prometheus, "/api/v1/query")

    for app, value in values.items():
        query = scope_to_namespace(
            f'sum(load_probe{{app="{app}"}})', ns, field=f"spec.metrics.{method}"
        )
        reading = getattr(batched, method)(query, LOOKBACK, reader=f"{ns}/{app}")
        assert reading.outcome is Outcome.OK, reading
        assert reading.value == pytest.approx(value)

    assert api_requests(prometheus, "/api/v1/query") - before == 2


def test_a_new_reading_of_a_series_that_is_not_there_is_empty(prometheus: LocalPrometheus) -> None:
    reader = MetricsReader(prometheus.url, timeout=5)
    reading = reader.async_queue('sum(load_probe{namespace="nowhere",app="x"})', LOOKBACK)
    assert reading.outcome is Outcome.EMPTY


# -- the history: two weeks backfilled with promtool -----------------------------------------


def _hourly(base: float, moment: float) -> float:
    """A daily shape: the hour of day plus a base, so a sample tells which series it is."""
    return base + datetime.fromtimestamp(moment, UTC).hour


# Per (namespace, deployment): the base of its daily shape.
SERIES = {("team-a", "web"): 10.0, ("team-a", "chat"): 100.0, ("team-b", "web"): 9000.0}


@pytest.fixture(scope="module")
def history_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrometheus]:
    """A Prometheus holding 14 days of one sample every 5 minutes per series, on the
    history's grid, up to 10 minutes ago."""
    workdir = tmp_path_factory.mktemp("history")
    last = (time.time() // STEP) * STEP - 2 * STEP
    moments = [last - STEP * i for i in range(DAYS * 86400 // STEP + 12)]
    samples = [
        ({"namespace": ns, "deployment": app}, moment, _hourly(base, moment))
        for (ns, app), base in SERIES.items()
        for moment in sorted(moments)
    ]
    series = write_openmetrics(workdir / "history.om", METRIC, samples)
    with LocalPrometheus(workdir / "prom", backfill=[series]) as prometheus:
        yield prometheus


def _demand(app: str) -> str:
    return f'sum({METRIC}{{deployment="{app}"}})'


def _scoped(app: str, namespace: str = "team-a") -> str:
    return scope_to_namespace(_demand(app), namespace, field="spec.metrics.demand")


def test_two_weeks_of_history_are_one_range_query_for_a_namespaces_placements(
    history_prometheus: LocalPrometheus,
) -> None:
    reader = MetricsReader(history_prometheus.url, timeout=10)
    batched = BatchedMetricsReader(reader, max_age=60)
    before = api_requests(history_prometheus, "/api/v1/query_range")

    histories = {
        app: batched.history(
            _scoped(app), timedelta(days=DAYS), source="demand", reader=f"team-a/{app}"
        )
        for app in ("web", "chat")
    }

    assert api_requests(history_prometheus, "/api/v1/query_range") - before == 1
    for app, history in histories.items():
        assert history is not None, app
        # Kept as hour means (what the forecast learns from): 14 days, 337 hours at most.
        assert history.source == "demand" and history.step == timedelta(hours=1)
        assert DAYS * 24 - 1 <= len(history.samples) <= DAYS * 24 + 1
        base = SERIES[("team-a", app)]
        assert sum(value == _hourly(base, m.timestamp()) for m, value in history.samples) >= (
            len(history.samples) - 2
        )
        # And the newest hours on the 5-minute grid as read, the last 10 minutes without
        # samples. Each instant reads the sample written for it; Prometheus 2 may also give
        # the instant after the last sample that sample (its lookback includes the edge).
        as_read = history.as_read()
        assert as_read.step == timedelta(minutes=5) and 50 <= len(as_read.samples) <= 61
        assert all(
            value in (_hourly(base, m.timestamp()), _hourly(base, m.timestamp() - STEP))
            for m, value in as_read.samples
        )


def test_a_second_evaluation_within_the_refresh_makes_no_range_query(
    history_prometheus: LocalPrometheus,
) -> None:
    reader = MetricsReader(history_prometheus.url, timeout=10, history_refresh=4)
    batched = BatchedMetricsReader(reader, max_age=60)

    def evaluate_all() -> None:
        for app in ("web", "chat"):
            history = batched.history(
                _scoped(app), timedelta(days=DAYS), source="demand", reader=f"team-a/{app}"
            )
            assert history is not None

    before = api_requests(history_prometheus, "/api/v1/query_range")
    evaluate_all()
    started = time.monotonic()
    evaluate_all()
    evaluate_all()
    assert time.monotonic() - started < 4, "the evaluations took longer than the refresh"
    assert api_requests(history_prometheus, "/api/v1/query_range") - before == 1
    time.sleep(4)
    evaluate_all()  # the refresh is due: one query again for both
    assert api_requests(history_prometheus, "/api/v1/query_range") - before == 2


def test_the_history_reads_only_the_placements_namespace(
    history_prometheus: LocalPrometheus,
) -> None:
    batched = BatchedMetricsReader(MetricsReader(history_prometheus.url, timeout=10), max_age=60)
    # team-c has no series: its placement gets none of team-a's or team-b's.
    assert (
        batched.history(
            _scoped("web", "team-c"), timedelta(days=DAYS), source="demand", reader="team-c/p"
        )
        is None
    )
    # An escaped own namespace reads its own series (base 10), never team-b's (base 9000).
    escaped = scope_to_namespace(
        f'sum({METRIC}{{namespace="team-\\141",deployment="web"}})',
        "team-a",
        field="spec.metrics.demand",
    )
    history = batched.history(escaped, timedelta(days=2), source="demand", reader="team-a/p")
    assert history is not None and max(value for _, value in history.samples) < 9000
    for widening in ('namespace=~"team-.*"', 'namespace!="team-a"', 'namespace="team-b"'):
        with pytest.raises(ScopeError, match=r"^spec\.metrics\.demand: "):
            scope_to_namespace(
                f"sum({METRIC}{{{widening}}})", "team-a", field="spec.metrics.demand"
            )


def test_a_history_answer_over_its_bound_is_never_read_whole(
    history_prometheus: LocalPrometheus,
) -> None:
    # One series of 14 days is about 80 kB; the namespace's shared answer two of them.
    roomy = MetricsReader(
        history_prometheus.url, timeout=10, limits=QueryLimits(max_history_bytes=120_000)
    )
    batched = BatchedMetricsReader(roomy, max_age=60)
    before = api_requests(history_prometheus, "/api/v1/query_range")
    history = batched.history(
        _scoped("web"), timedelta(days=DAYS), source="demand", reader="team-a/web"
    )
    # The shared answer was over the bound: the placement's own, within it, was read.
    assert history is not None and len(history.samples) > DAYS * 24 - 2
    assert api_requests(history_prometheus, "/api/v1/query_range") - before == 2

    tight = MetricsReader(
        history_prometheus.url, timeout=10, limits=QueryLimits(max_history_bytes=20_000)
    )
    assert (
        BatchedMetricsReader(tight, max_age=60).history(
            _scoped("web"), timedelta(days=DAYS), source="demand", reader="team-a/web"
        )
        is None
    )


def test_history_from_a_prometheus_that_is_down_is_none(tmp_path: Path) -> None:
    with LocalPrometheus(tmp_path / "prom") as prometheus:
        url = prometheus.url
    reader = MetricsReader(url, timeout=2)
    assert reader.history(_scoped("web"), timedelta(days=1), source="demand") is None
