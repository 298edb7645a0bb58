"""Batched reads against a real Prometheus: placements of one shape and namespace share one
query per pass, each gets what its own query would have returned, and nothing of another
namespace: escapes read as Prometheus reads them, answers bounded before they are parsed."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from prometheus_client import Gauge

from placement.adapters.grouping import group_query
from placement.adapters.prometheus import (
    BatchedMetricsReader,
    MetricsReader,
    Outcome,
    QueryLimits,
    Reading,
    averaged,
)
from placement.core.tenancy import ScopeError, refuse_unbounded, scope_to_namespace
from placement.localenv.prometheus import Exporter, LocalPrometheus

LOOKBACK = timedelta(minutes=1)


@pytest.fixture(scope="module")
def fleet(exporter: Exporter) -> Gauge:
    return exporter.gauge(
        "batched_probe", "values the batched reader tests set", ["namespace", "app"]
    )


@pytest.fixture(scope="module")
def twin(exporter: Exporter) -> Gauge:
    return exporter.gauge("batched_twin", "a second name for some probes", ["namespace", "app"])


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
    selector = f'batched_probe{{namespace="{ns}"}}'
    while len(prometheus.query(f"avg_over_time(({selector})[1m:])")) < len(values):
        assert time.monotonic() < deadline, f"{selector} not averaged after 30s"
        time.sleep(0.2)


def _query(ns: str, app: str) -> str:
    return f'avg(batched_probe{{namespace="{ns}", app="{app}"}})'


def _same(a: Reading, b: Reading) -> bool:
    return (a.outcome, a.value) == (b.outcome, b.value)


def test_one_shape_is_two_queries_per_pass_with_each_placements_own_answer(
    prometheus: LocalPrometheus,
    fleet: Gauge,
    per_placement: MetricsReader,
    batched: BatchedMetricsReader,
) -> None:
    ns = f"b{uuid.uuid4().hex[:10]}"
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
    ns = f"b{uuid.uuid4().hex[:10]}"
    _serve(prometheus, fleet, ns, {"high": 1.7, "nan": float("nan"), "ok": 0.3})
    for app, outcome in [
        ("high", Outcome.OUT_OF_RANGE),
        ("nan", Outcome.NOT_A_NUMBER),
        ("absent", Outcome.EMPTY),
    ]:
        reading = batched.utilization(_query(ns, app), LOOKBACK, reader=app)
        assert reading.outcome is outcome, reading
        assert _same(reading, per_placement.utilization(_query(ns, app), LOOKBACK))
    several = f'batched_probe{{namespace="{ns}"}}'  # both series of the namespace
    reading = batched.utilization(several, LOOKBACK, reader="several")
    assert reading.outcome is Outcome.SEVERAL_SERIES
    assert _same(reading, per_placement.utilization(several, LOOKBACK))


def test_a_placement_whose_series_is_newer_than_the_shared_result_gets_it(
    prometheus: LocalPrometheus, fleet: Gauge, batched: BatchedMetricsReader
) -> None:
    ns = f"b{uuid.uuid4().hex[:10]}"
    _serve(prometheus, fleet, ns, {"first": 0.2})
    assert batched.utilization(_query(ns, "first"), LOOKBACK, reader="first").ok
    _serve(prometheus, fleet, ns, {"first": 0.2, "late": 0.6})
    reading = batched.utilization(_query(ns, "late"), LOOKBACK, reader="late")
    assert reading.outcome is Outcome.OK and reading.value == pytest.approx(0.6)


def test_a_query_that_cannot_be_grouped_is_asked_on_its_own(
    prometheus: LocalPrometheus, fleet: Gauge, batched: BatchedMetricsReader
) -> None:
    ns = f"b{uuid.uuid4().hex[:10]}"
    _serve(prometheus, fleet, ns, {"a": 0.2, "b": 0.4})
    query = f'max(batched_probe{{namespace="{ns}"}}) by (namespace)'
    reading = batched.utilization(query, LOOKBACK, reader="x")
    assert reading.outcome is Outcome.OK and reading.value == pytest.approx(0.4)
    assert batched.shared.fetches == 0


def test_a_shared_query_prometheus_refuses_is_answered_by_each_placements_own_query(
    prometheus: LocalPrometheus, fleet: Gauge, twin: Gauge, batched: BatchedMetricsReader
) -> None:
    # `two` exists under both names: the shared rate() over both names has two series with
    # one label set once the name is dropped, and Prometheus refuses it. `one` alone is fine.
    ns = f"b{uuid.uuid4().hex[:10]}"
    _serve(prometheus, fleet, ns, {"one": 0.2, "two": 0.4})
    twin.labels(ns, "two").set(0.4)
    prometheus.wait_for_value(f'count(batched_twin{{namespace="{ns}"}})', 1)

    def query(app: str) -> str:
        names = '__name__=~"batched_probe|batched_twin"'
        return f'avg(rate({{{names},namespace="{ns}",app="{app}"}}[1m]))'

    grouping = group_query(query("one"))
    assert grouping is not None
    deadline = time.monotonic() + 30
    while _answers(prometheus, grouping.query) or not prometheus.query(
        averaged(query("one"), LOOKBACK)
    ):
        assert time.monotonic() < deadline, "no refused shared query and averaged own after 30s"
        time.sleep(0.2)

    one = batched.utilization(query("one"), LOOKBACK, reader="one")
    assert one.outcome is Outcome.OK and one.value == pytest.approx(0.0)
    assert batched.shared.fetches >= 1  # the shared query was asked, and refused
    two = batched.utilization(query("two"), LOOKBACK, reader="two")
    assert two.outcome is Outcome.ERROR
    assert "same labelset" in two.detail


def _answers(prometheus: LocalPrometheus, query: str) -> bool:
    try:
        prometheus.query(query)
    except OSError:  # urllib's HTTPError: 422 from Prometheus
        return False
    return True


# -- tenancy: escapes and bounds ------------------------------------------------------------

# Pairs of namespaces where the second is the first with a character written as its escape
# and the backslash dropped: what today's batched split keyed on.
ESCAPES = [
    ("tenant-a", "tenant-141", r"tenant-\141"),
    ("tenant-a", "tenant-x61", r"tenant-\x61"),
    ("tenant-a", "tenant-u0061", r"tenant-\u0061"),
    ("team-0", "team-060", r"team-\060"),
]


@pytest.mark.parametrize(("own", "other", "written"), ESCAPES)
@pytest.mark.parametrize("scoped", [True, False], ids=["scoped", "unscoped"])
def test_an_escaped_namespace_reads_only_its_own_series_in_batched_mode(
    prometheus: LocalPrometheus,
    fleet: Gauge,
    batched: BatchedMetricsReader,
    own: str,
    other: str,
    written: str,
    scoped: bool,
) -> None:
    app = f"esc-{uuid.uuid4().hex[:6]}"
    for namespace, value in ((own, 0.2), (other, 0.7317)):
        fleet.labels(namespace, app).set(value)
        prometheus.wait_for_value(
            averaged(f'sum(batched_probe{{namespace="{namespace}",app="{app}"}})', LOOKBACK),
            value,
        )
    expression = f'sum(batched_probe{{namespace="{written}",app="{app}"}})'
    if scoped:  # as the operator runs it by default
        expression = scope_to_namespace(expression, own, field="spec.metrics.utilization")

    reading = batched.utilization(expression, LOOKBACK, reader=f"{own}/{app}")

    assert reading.outcome is Outcome.OK, reading
    assert reading.value == pytest.approx(0.2)
    assert batched.shared.fetches == 2  # it was batched


@pytest.mark.parametrize(
    "selector", ['{__name__=~".+"}', '{job=~".+"}', '{__name__=~".+",app!="x"}']
)
def test_a_selector_for_every_series_is_refused_before_it_runs(
    prometheus: LocalPrometheus, fleet: Gauge, selector: str
) -> None:
    ns = f"b{uuid.uuid4().hex[:10]}"
    _serve(prometheus, fleet, ns, {"a": 0.1, "b": 0.2, "c": 0.3})
    # Even confined to the namespace it would read every series there.
    scoped = scope_to_namespace(selector, ns, field="spec.metrics.utilization")
    assert len(prometheus.query(scoped)) >= 3
    with pytest.raises(ScopeError, match=r"^spec\.metrics\.utilization: selector .* names no"):
        refuse_unbounded(selector, field="spec.metrics.utilization")


@pytest.mark.parametrize("mode", ["per-placement", "batched"])
def test_an_answer_over_the_series_bound_is_refused_naming_the_bound(
    prometheus: LocalPrometheus, fleet: Gauge, mode: str
) -> None:
    ns = f"b{uuid.uuid4().hex[:10]}"
    _serve(prometheus, fleet, ns, {f"big-{i}": 0.1 for i in range(30)})
    reader = MetricsReader(prometheus.url, timeout=5, limits=QueryLimits(max_series=20))
    metrics = reader if mode == "per-placement" else BatchedMetricsReader(reader, max_age=60)
    # Per placement: its own answer has 30 series; batched: the shared one, split by app.
    expression = (
        f'batched_probe{{namespace="{ns}",app=~"big-.*"}}'
        if mode == "per-placement"
        else f'avg(batched_probe{{namespace="{ns}",app="big-0"}})'
    )
    reading = metrics.utilization(expression, LOOKBACK, reader="r")
    assert reading.outcome is Outcome.TOO_LARGE
    assert "more than 20 series" in reading.detail
    assert "PLACEMENT_PROMETHEUS_MAX_SERIES" in reading.detail
    assert "big-1" not in reading.describe()


def test_an_answer_over_the_byte_bound_is_refused_naming_the_bound(
    prometheus: LocalPrometheus, fleet: Gauge
) -> None:
    ns = f"b{uuid.uuid4().hex[:10]}"
    _serve(prometheus, fleet, ns, {f"wide-{i}-{'x' * 200}": 0.1 for i in range(30)})
    reader = MetricsReader(prometheus.url, timeout=5, limits=QueryLimits(max_bytes=4096))
    reading = reader.utilization(f'batched_probe{{namespace="{ns}"}}', LOOKBACK)
    assert reading.outcome is Outcome.TOO_LARGE
    assert "larger than 4096 bytes" in reading.detail
    # The same answer, under the default bounds, is read (and is several series).
    several = MetricsReader(prometheus.url, timeout=5).utilization(
        f'batched_probe{{namespace="{ns}"}}', LOOKBACK
    )
    assert several.outcome is Outcome.SEVERAL_SERIES
