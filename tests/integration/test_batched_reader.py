"""Batched reads against a real Prometheus: placements of one shape share one query per pass,
and each gets what its own query would have returned."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from prometheus_client import Gauge

from placement.localenv.prometheus import Exporter, LocalPrometheus
from placement.prometheus import BatchedMetricsReader, MetricsReader, Outcome, Reading

LOOKBACK = timedelta(minutes=1)


@pytest.fixture(scope="module")
def fleet(exporter: Exporter) -> Gauge:
    return exporter.gauge("batched_probe", "values the batched reader tests set", ["ns", "app"])


@pytest.fixture
def per_placement(prometheus: LocalPrometheus) -> MetricsReader:
    return MetricsReader(prometheus.url, timeout=5)


@pytest.fixture
def batched(per_placement: MetricsReader) -> BatchedMetricsReader:
    return BatchedMetricsReader(per_placement, max_age=60)


def _serve(prometheus: LocalPrometheus, fleet: Gauge, ns: str, values: dict[str, float]) -> None:
    for app, value in values.items():
        fleet.labels(ns, app).set(value)
    deadline = time.monotonic() + 30
    selector = f'batched_probe{{ns="{ns}"}}'
    while len(prometheus.query(f"avg_over_time(({selector})[1m:])")) < len(values):
        assert time.monotonic() < deadline, f"{selector} not averaged after 30s"
        time.sleep(0.2)


def _query(ns: str, app: str) -> str:
    return f'avg(batched_probe{{ns="{ns}", app="{app}"}})'


def _same(a: Reading, b: Reading) -> bool:
    return (a.outcome, a.value) == (b.outcome, b.value)


def test_one_shape_is_two_queries_per_pass_with_each_placements_own_answer(
    prometheus: LocalPrometheus,
    fleet: Gauge,
    per_placement: MetricsReader,
    batched: BatchedMetricsReader,
) -> None:
    ns = f"b{uuid.uuid4().hex[:6]}"
    values = {f"app-{i}": round(0.1 * i, 2) for i in range(8)}
    _serve(prometheus, fleet, ns, values)

    for app, value in values.items():
        reading = batched.utilization(_query(ns, app), LOOKBACK, reader=app)
        assert reading.outcome is Outcome.OK and reading.value == pytest.approx(value)
        assert _same(reading, per_placement.utilization(_query(ns, app), LOOKBACK))
    assert batched.shared.fetches == 2  # the current samples and the lookback average

    # The next pass: the first placement back fetches once more for everyone.
    for app in values:
        batched.utilization(_query(ns, app), LOOKBACK, reader=app)
    assert batched.shared.fetches == 4


def test_failures_are_the_same_as_on_their_own(
    prometheus: LocalPrometheus,
    fleet: Gauge,
    per_placement: MetricsReader,
    batched: BatchedMetricsReader,
) -> None:
    ns = f"b{uuid.uuid4().hex[:6]}"
    _serve(prometheus, fleet, ns, {"high": 1.7, "nan": float("nan"), "ok": 0.3})
    for app, outcome in [
        ("high", Outcome.OUT_OF_RANGE),
        ("nan", Outcome.NOT_A_NUMBER),
        ("absent", Outcome.EMPTY),
    ]:
        reading = batched.utilization(_query(ns, app), LOOKBACK, reader=app)
        assert reading.outcome is outcome, reading
        assert _same(reading, per_placement.utilization(_query(ns, app), LOOKBACK))
    several = f'batched_probe{{ns="{ns}"}}'  # both series of the namespace
    reading = batched.utilization(several, LOOKBACK, reader="several")
    assert reading.outcome is Outcome.SEVERAL_SERIES
    assert _same(reading, per_placement.utilization(several, LOOKBACK))


def test_a_placement_whose_series_is_newer_than_the_shared_result_gets_it(
    prometheus: LocalPrometheus, fleet: Gauge, batched: BatchedMetricsReader
) -> None:
    ns = f"b{uuid.uuid4().hex[:6]}"
    _serve(prometheus, fleet, ns, {"first": 0.2})
    assert batched.utilization(_query(ns, "first"), LOOKBACK, reader="first").ok
    _serve(prometheus, fleet, ns, {"first": 0.2, "late": 0.6})
    reading = batched.utilization(_query(ns, "late"), LOOKBACK, reader="late")
    assert reading.outcome is Outcome.OK and reading.value == pytest.approx(0.6)


def test_a_query_that_cannot_be_grouped_is_asked_on_its_own(
    prometheus: LocalPrometheus, fleet: Gauge, batched: BatchedMetricsReader
) -> None:
    ns = f"b{uuid.uuid4().hex[:6]}"
    _serve(prometheus, fleet, ns, {"a": 0.2, "b": 0.4})
    query = f'max(batched_probe{{ns="{ns}"}}) by (ns)'
    reading = batched.utilization(query, LOOKBACK, reader="x")
    assert reading.outcome is Outcome.OK and reading.value == pytest.approx(0.4)
    assert batched.shared.fetches == 0


def test_a_grouped_query_error_reaches_every_placement_once(
    batched: BatchedMetricsReader,
) -> None:
    # A label value Prometheus refuses in a regex matcher: the shared query itself fails.
    query = 'avg(batched_probe{ns="x", app=~"("})'
    first = batched.utilization(query, LOOKBACK, reader="one")
    second = batched.utilization(query, LOOKBACK, reader="two")
    assert first.outcome is Outcome.ERROR and second.outcome is Outcome.ERROR
    assert batched.shared.fetches == 1
