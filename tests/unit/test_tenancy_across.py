"""One query per shape across namespaces, and tenancy kept airtight: a placement gets only the
series whose namespace label is its own, and a tenant whose series break a bound or make
Prometheus refuse the shared query costs the others no reading (they ask as without batching
across namespaces)."""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import promql_parser as promql
import pytest

from placement.adapters.grouping import NAMESPACE, Series, group_query, is_namespace_name
from placement.adapters.prometheus import (
    BatchedMetricsReader,
    MetricsReader,
    Outcome,
    QueryFailed,
    QueryLimits,
)
from placement.adapters.sharing import NamespaceBatches
from placement.core.tenancy import scope_to_namespace

T = TypeVar("T")

LOOKBACK = timedelta(minutes=1)
Row = tuple[dict[str, str], float]


@functools.cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _matches(matcher: promql.Matcher, value: str) -> bool:
    op = str(matcher.op)
    if op == "MatchOp.Equal":
        return value == matcher.value
    if op == "MatchOp.NotEqual":
        return value != matcher.value
    found = _regex(matcher.value).fullmatch(value) is not None  # Prometheus anchors regexes
    return found if op == "MatchOp.Re" else not found


def evaluate(query: str, table: list[Row]) -> list[Series]:
    """A Prometheus for one selector under at most one sum/avg (functions of a constant
    series keep its value): every matcher operator, `by` grouping."""
    tree = promql.parse(query)
    selectors: list[promql.VectorSelector] = []
    aggregations: list[promql.AggregateExpr] = []

    def visit(node: promql.Expr) -> None:
        if isinstance(node, promql.VectorSelector):
            selectors.append(node)
        if isinstance(node, promql.AggregateExpr):
            aggregations.append(node)

    promql.walk(tree, pre_visit=visit)
    (selector,) = selectors
    rows = [
        (labels, value)
        for labels, value in table
        if labels["__name__"] == selector.name
        and all(_matches(m, labels.get(m.name, "")) for m in selector.matchers.matchers)
    ]
    if not aggregations:
        return [{"metric": labels, "value": [0, str(value)]} for labels, value in rows]
    (aggregation,) = aggregations
    by = list(aggregation.modifier.labels) if aggregation.modifier else []
    groups: dict[tuple[tuple[str, str], ...], list[float]] = defaultdict(list)
    for labels, value in rows:
        groups[tuple((k, labels[k]) for k in by if k in labels)].append(value)
    average = str(aggregation.op) == "avg"
    return [
        {"metric": dict(key), "value": [0, str(sum(v) / len(v) if average else sum(v))]}
        for key, v in groups.items()
    ]


class FakePrometheus(MetricsReader):
    """Answers as Prometheus would, within the series bound; `refuse` and `slow` decide
    which queries get an error or a timeout instead."""

    def __init__(
        self, table: list[Row], *, max_series: int = 1000, max_batch_series: int | None = None
    ) -> None:
        limits = QueryLimits(
            max_series=max_series,
            max_batch_series=max_series if max_batch_series is None else max_batch_series,
        )
        # Its answer time is this machine's, not a Prometheus's: never taken for slow.
        super().__init__("http://prometheus.invalid", limits=limits, timeout=3600)
        self.table = table
        self.queries: list[str] = []
        self.refuse = lambda query: False
        self.slow = lambda query: False

    def instant_kept(
        self, query: str, keep: Callable[[list[Series]], T], *, across: bool = False
    ) -> T:
        self.queries.append(query)
        if self.slow(query):
            raise QueryFailed(Outcome.TIMEOUT, "no answer in 5s")
        if self.refuse(query):
            # Prometheus's words quote the series the query touched: every tenant's.
            quoted = ", ".join(str(labels) for labels, _ in self.table)
            raise QueryFailed(Outcome.ERROR, f"HTTP 422 {quoted}", from_prometheus=True)
        result = evaluate(query, self.table)
        if across and len(result) > self.limits.max_batch_series:
            raise self._too_many_series(
                (self.limits.max_batch_series, "PLACEMENT_PROMETHEUS_MAX_BATCH_SERIES")
            )
        if not across and len(result) > self.limits.max_series:
            raise self._too_many_series()
        return keep(result)


def util(namespace: str, deployment: str, value: float) -> Row:
    return {"__name__": "vllm_util", NAMESPACE: namespace, "deployment": deployment}, value


@functools.cache
def expression(namespace: str, deployment: str) -> str:
    return scope_to_namespace(
        f'avg(vllm_util{{deployment="{deployment}"}})', namespace, field="spec.metrics.utilization"
    )


def value_of(namespace: str) -> float:
    """A different value per namespace: a reading shows whose series it came from."""
    return round(0.001 * (1 + sum(map(ord, namespace)) % 997), 6)


def fleet(namespaces: list[str], deployments: tuple[str, ...] = ("web",)) -> list[Row]:
    return [util(ns, d, value_of(ns)) for ns in namespaces for d in deployments]


def one_pass(
    batched: BatchedMetricsReader, placements: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[Outcome, float | None, str]]:
    readings = {}
    for ns, deployment in placements:
        reading = batched.utilization(
            expression(ns, deployment), LOOKBACK, reader=f"{ns}/{deployment}"
        )
        readings[(ns, deployment)] = (reading.outcome, reading.value, reading.detail)
    return readings


def queries_of_a_steady_pass(
    prometheus: FakePrometheus, namespaces: int, deployments: tuple[str, ...] = ("web",)
) -> int:
    spaces = [f"team-{i:03d}" for i in range(namespaces)]
    prometheus.table = fleet(spaces, deployments)
    batched = BatchedMetricsReader(prometheus, max_age=60)
    placements = [(ns, d) for ns in spaces for d in deployments]
    one_pass(batched, placements)  # every namespace asks once: the batches are packed
    prometheus.queries.clear()
    readings = one_pass(batched, placements)
    assert all(
        outcome is Outcome.OK and value == pytest.approx(value_of(ns))
        for (ns, _), (outcome, value, _) in readings.items()
    )
    return len(prometheus.queries)


def test_queries_per_pass_stay_two_per_shape_from_1_to_200_namespaces() -> None:
    prometheus = FakePrometheus([])
    assert [queries_of_a_steady_pass(prometheus, n) for n in (1, 50, 200)] == [2, 2, 2]


def test_queries_per_pass_stay_two_per_shape_from_1_000_to_10_000_placements() -> None:
    # The defaults: a query across namespaces may answer 20,000 series (the batch is packed
    # to 15,000), so 50 placements of a shape in each of 20 to 200 namespaces share one pair.
    prometheus = FakePrometheus([], max_batch_series=QueryLimits().max_batch_series)
    deployments = tuple(f"model-{i:02d}" for i in range(50))
    counts = [queries_of_a_steady_pass(prometheus, n, deployments) for n in (20, 200)]
    assert counts == [2, 2]


def test_a_namespace_over_its_own_bound_reads_its_own_query_even_when_a_batch_could_hold_it() -> (
    None
):
    # 30 series of the shape in "big": under the batch bound (1,000), over its own (20). Its
    # placements get what its own query gives (over the bound), the others their readings,
    # and from the next pass on "big" asks alone.
    quiet = [f"quiet-{i}" for i in range(3)]
    table = [*fleet(quiet), *(util("big", f"w{i}", 0.5) for i in range(30))]
    prometheus = FakePrometheus(table, max_series=20, max_batch_series=1000)
    batched = BatchedMetricsReader(prometheus, max_age=60)
    placements = [(ns, "web") for ns in quiet] + [("big", "w0")]
    one_pass(batched, placements)  # every namespace asks once: the batches are packed
    readings = one_pass(batched, placements)
    assert all(readings[(ns, "web")][:2] == (Outcome.OK, value_of(ns)) for ns in quiet)
    outcome, _, detail = readings[("big", "w0")]
    assert outcome is Outcome.TOO_LARGE and "PLACEMENT_PROMETHEUS_MAX_SERIES" in detail
    shape = group_query(expression("big", "w0")).shape
    assert ("big",) in batched.batches.batches(shape)


def test_past_the_series_bound_the_queries_grow_by_one_per_batch_of_namespaces() -> None:
    # 40 series per answer at most: a batch is packed to 30 (two placements per namespace),
    # so 15 namespaces per query: 200 namespaces are 14 batches of the current samples and of
    # the lookback average each, where one query per namespace would be 400.
    prometheus = FakePrometheus([], max_series=40)
    assert queries_of_a_steady_pass(prometheus, 200, ("web", "api")) == 2 * 14


def test_each_placement_gets_what_its_namespaces_own_query_gives() -> None:
    spaces = [f"tenant-{i}" for i in range(50)]
    prometheus = FakePrometheus(fleet(spaces, ("web", "api")))
    alone = FakePrometheus(prometheus.table)
    batched = BatchedMetricsReader(prometheus, max_age=60)
    placements = [(ns, d) for ns in spaces for d in ("web", "api", "absent")]
    for _ in range(2):
        readings = one_pass(batched, placements)
    for (ns, deployment), (outcome, value, _) in readings.items():
        own = alone.utilization(expression(ns, deployment), LOOKBACK)
        assert (outcome, value) == (own.outcome, own.value)
    assert all(NAMESPACE + "=~" in query for query in prometheus.queries[-2:])


@pytest.mark.parametrize(
    "deployment", ["web|api", ".*", "web.*", "(web)", "api|.+", "[a-z]+", "^web$"]
)
def test_a_key_value_with_regex_metacharacters_matches_only_itself(deployment: str) -> None:
    # Key values are compared as strings when the answer is split, never put into a regex.
    table = [*fleet(["a", "b"], ("web", "api")), util("a", deployment, 0.9)]
    prometheus = FakePrometheus(table)
    batched = BatchedMetricsReader(prometheus, max_age=60)
    readings = one_pass(batched, [("b", "web"), ("a", deployment), ("a", "web")])
    assert readings[("a", deployment)][:2] == (Outcome.OK, 0.9)
    assert readings[("a", "web")][:2] == (Outcome.OK, value_of("a"))
    assert any(f"{NAMESPACE}=~" in query for query in prometheus.queries)
    assert all(deployment not in query for query in prometheus.queries)


def test_the_same_workload_name_in_another_namespace_is_never_read() -> None:
    prometheus = FakePrometheus([util("victim", "web", 0.25), util("hostile", "web", 0.75)])
    batched = BatchedMetricsReader(prometheus, max_age=60)
    readings = one_pass(batched, [("hostile", "web"), ("victim", "web")] * 2)
    assert readings[("victim", "web")][:2] == (Outcome.OK, 0.25)
    assert readings[("hostile", "web")][:2] == (Outcome.OK, 0.75)
    assert prometheus.queries[-1].count("victim|hostile") + prometheus.queries[-1].count(
        "hostile|victim"
    )


def test_a_series_of_a_namespace_outside_the_batch_reaches_nobody() -> None:
    # Should an answer hold a series of a namespace it did not ask for, it belongs to no
    # placement: the split is by the namespace label, never by position.
    prometheus = FakePrometheus(fleet(["a", "b"]))
    original = prometheus.instant_kept

    def with_a_stranger(
        query: str, keep: Callable[[list[Series]], T], *, across: bool = False
    ) -> T:
        stranger = {"namespace": "c", "deployment": "web"}
        return original(
            query,
            lambda answer: keep([*answer, {"metric": stranger, "value": [0, "0.99"]}]),
            across=across,
        )

    prometheus.instant_kept = with_a_stranger  # type: ignore[method-assign]
    batched = BatchedMetricsReader(prometheus, max_age=60)
    readings = one_pass(batched, [("a", "web"), ("b", "web")] * 2)
    assert readings[("a", "web")][:2] == (Outcome.OK, value_of("a"))
    assert readings[("b", "web")][:2] == (Outcome.OK, value_of("b"))


@pytest.mark.parametrize(
    "extra",
    [
        'namespace!="b"',
        'namespace=~".*"',
        'namespace=~"a|b"',
        'namespace!~"a"',  # reads nothing on its own: nothing across either
        'deployment!="web"',
    ],
)
def test_an_unscoped_query_with_more_namespace_matchers_reads_what_it_reads_alone(
    extra: str,
) -> None:
    # With scoping turned off such matchers reach the reader; each is a test of one series,
    # so within namespace a the query across namespaces selects what a's own query selects.
    prometheus = FakePrometheus(fleet(["a", "b", "c"]))
    alone = FakePrometheus(prometheus.table)
    batched = BatchedMetricsReader(prometheus, max_age=60)
    mine = f'avg(vllm_util{{namespace="a",{extra},deployment="web"}})'
    others = [("b", "web"), ("c", "web")]
    for _ in range(2):
        one_pass(batched, others)
        reading = batched.utilization(mine, LOOKBACK, reader="a/p")
    own = alone.utilization(mine, LOOKBACK)
    assert (reading.outcome, reading.value) == (own.outcome, own.value)


def test_an_unscoped_query_of_another_namespace_is_not_read_across() -> None:
    # A placement of namespace a whose (unscoped) query names namespace b reads b's own shared
    # query, as before; it never joins a batch in b's name.
    prometheus = FakePrometheus(fleet(["a", "b"]))
    batched = BatchedMetricsReader(prometheus, max_age=60)
    for _ in range(2):
        one_pass(batched, [("a", "web"), ("b", "web")])
        reading = batched.utilization(expression("b", "web"), LOOKBACK, reader="a/p")
        assert reading.value == value_of("b")
    assert batched.batches.batches(group_query(expression("b", "web")).shape) == [("a", "b")]
    assert any('namespace="b"' in query for query in prometheus.queries)


@pytest.mark.parametrize("namespace", [".*", "a|b", "a.b", "A", "(a)", "a-", "", "x" * 64])
def test_a_namespace_that_is_not_a_namespace_name_is_never_put_in_a_regex(
    namespace: str,
) -> None:
    assert not is_namespace_name(namespace)
    grouping = group_query(f'sum(util{{namespace="{namespace}",deployment="web"}})')
    if grouping is not None:
        assert grouping.segments == ()
        with pytest.raises(ValueError, match="not shared across"):
            grouping.across([namespace, "b"])
    prometheus = FakePrometheus([util(namespace, "web", 0.5), *fleet(["a", "b"])])
    batched = BatchedMetricsReader(prometheus, max_age=60)
    query = f'avg(vllm_util{{namespace="{namespace}",deployment="web"}})'
    for _ in range(2):
        one_pass(batched, [("a", "web"), ("b", "web")])
        batched.utilization(query, LOOKBACK, reader=f"{namespace}/p")
    listed = [
        m.value.split("|")
        for q in prometheus.queries
        for m in _namespace_matchers(q)
        if str(m.op) == "MatchOp.Re"
    ]
    assert listed and all(namespace not in names for names in listed)


def _namespace_matchers(query: str) -> list[promql.Matcher]:
    found: list[promql.Matcher] = []

    def visit(node: promql.Expr) -> None:
        if isinstance(node, promql.VectorSelector):
            found.extend(m for m in node.matchers.matchers if m.name == NAMESPACE)

    promql.walk(promql.parse(query), pre_visit=visit)
    return found


def test_across_refuses_names_that_are_not_namespace_names() -> None:
    grouping = group_query('sum(util{namespace="a",deployment="web"})')
    assert grouping is not None
    assert grouping.across(["a", "b-2"]) == (
        'sum by (deployment, namespace) (util{namespace=~"a|b-2"})'
    )
    for names in (["a", ".*"], ["a", "b|c"], ["a", 'b"}'], []):
        with pytest.raises(ValueError):
            grouping.across(names)


def test_a_noisy_tenant_over_the_bound_costs_the_others_no_reading() -> None:
    # The noisy namespace has 60 series of the shape, over the 50-series bound: the query
    # across namespaces fails, everyone of its batch asks their namespace's own query, the
    # noisy tenant's readings say its own namespace is over the bound (as before), and the
    # next pass batches the others without it.
    quiet = [f"quiet-{i}" for i in range(5)]
    table = [*fleet(quiet), *(util("noisy", f"w{i}", 0.5) for i in range(60))]
    prometheus = FakePrometheus(table, max_series=50)
    batched = BatchedMetricsReader(prometheus, max_age=60)
    placements = [(ns, "web") for ns in ["noisy", *quiet]]
    first = one_pass(batched, placements)
    for ns in quiet:
        assert first[(ns, "web")][:2] == (Outcome.OK, value_of(ns))
        assert "noisy" not in first[(ns, "web")][2]
    outcome, _, detail = first[("noisy", "web")]
    assert outcome is Outcome.TOO_LARGE and "namespace noisy" in detail
    shape = group_query(expression("noisy", "web")).shape
    assert batched.batches.batches(shape) == [("noisy",), tuple(quiet)]
    prometheus.queries.clear()
    second = one_pass(batched, placements)
    assert all(second[(ns, "web")][:2] == (Outcome.OK, value_of(ns)) for ns in quiet)
    # noisy's own two (its current samples are over the bound: no average asked) + the batch's.
    assert len(prometheus.queries) == 1 + 2
    assert sum("quiet-0|quiet-1" in q for q in prometheus.queries) == 2


def test_a_refused_query_across_namespaces_shows_no_tenant_another_tenants_series() -> None:
    prometheus = FakePrometheus(fleet(["a", "b", "c"]))
    prometheus.refuse = lambda query: "=~" in query
    batched = BatchedMetricsReader(prometheus, max_age=60)
    placements = [("a", "web"), ("b", "web"), ("c", "web")]
    for _ in range(2):
        readings = one_pass(batched, placements)
        for ns in ("a", "b", "c"):
            outcome, value, detail = readings[(ns, "web")]
            assert (outcome, value) == (Outcome.OK, value_of(ns))
            assert all(other not in detail for other in ("a", "b", "c") if other != ns)
        prometheus.queries.clear()
    one_pass(batched, placements)
    assert not any("=~" in query for query in prometheus.queries)  # held off


def test_a_query_across_namespaces_that_times_out_splits_its_batch_and_no_other() -> None:
    prometheus = FakePrometheus(fleet(["a", "b"]))
    prometheus.slow = lambda query: "=~" in query and "avg" in query
    batched = BatchedMetricsReader(prometheus, max_age=60)
    readings = one_pass(batched, [("a", "web"), ("b", "web")] * 3)
    assert readings[("a", "web")][:2] == (Outcome.OK, value_of("a"))
    assert readings[("b", "web")][:2] == (Outcome.OK, value_of("b"))
    assert sum("=~" in query for query in prometheus.queries) == 1
    # Halved: one namespace each, so no query across for this shape any more ...
    assert batched.batches.batches(next(iter(batched.batches._shapes))) == [("a",), ("b",)]
    # ... while another shape (a sum) of the same namespaces is still read across them.
    for ns in ("a", "b", "a", "b"):
        queue = batched.queue_depth(
            f'sum(vllm_util{{namespace="{ns}",deployment="web"}})', LOOKBACK, reader=f"{ns}/q"
        )
        assert queue.outcome is Outcome.OK
    assert any("=~" in query and "sum" in query for query in prometheus.queries)


def test_a_failed_batch_is_tried_again_after_the_hold() -> None:
    now = [0.0]
    prometheus = FakePrometheus(fleet(["a", "b"]))
    prometheus.refuse = lambda query: "=~" in query
    batches = NamespaceBatches(capacity=100, hold=600, clock=lambda: now[0])
    batched = BatchedMetricsReader(prometheus, max_age=60, batches=batches)
    one_pass(batched, [("a", "web"), ("b", "web")] * 2)
    prometheus.refuse = lambda query: False
    prometheus.queries.clear()
    one_pass(batched, [("a", "web"), ("b", "web")])
    assert not any("=~" in query for query in prometheus.queries)
    now[0] = 601.0
    one_pass(batched, [("a", "web"), ("b", "web")])
    assert any("a|b" in query for query in prometheus.queries)


def test_a_shape_without_aggregation_keeps_each_series_and_counts_them_all() -> None:
    # Two pods' series of one workload: several series, as on its own; both count toward
    # the batch's bound.
    table = [*fleet(["a", "b"])]
    table.append(({**util("a", "web", 0.3)[0], "pod": "web-2"}, 0.3))
    prometheus = FakePrometheus(table)
    alone = FakePrometheus(table)
    batched = BatchedMetricsReader(prometheus, max_age=60)
    for _ in range(2):
        for ns in ("a", "b"):
            query = f'vllm_util{{namespace="{ns}",deployment="web"}}'
            reading = batched.utilization(query, LOOKBACK, reader=f"{ns}/web")
            own = alone.utilization(query, LOOKBACK)
            assert (reading.outcome, reading.value) == (own.outcome, own.value)
    assert reading.outcome is Outcome.OK and reading.value == value_of("b")
    assert 'vllm_util{namespace=~"a|b"}' in prometheus.queries[-1]
    grouping = group_query('vllm_util{namespace="a",deployment="web"}')
    assert grouping is not None
    assert batched.batches._shapes[grouping.shape].namespaces["a"].series == 2


def test_the_answers_of_a_batch_packed_anew_are_dropped_and_the_readings_stay() -> None:
    # A bulk apply: each new namespace joins the last batch, which is then a new batch with a
    # new query. The superseded batch's answers are dropped at once (at 2,000 placements
    # they were 48 series kept per placement), and every reading is its own query's.
    spaces = [f"tenant-{i}" for i in range(6)]
    prometheus = FakePrometheus(fleet(spaces))
    alone = FakePrometheus(prometheus.table)
    batched = BatchedMetricsReader(prometheus, max_age=60)
    for joined in range(1, len(spaces) + 1):
        placements = [(ns, "web") for ns in spaces[:joined]]
        for _ in range(2):
            readings = one_pass(batched, placements)
        for (ns, deployment), (outcome, value, _) in readings.items():
            own = alone.utilization(expression(ns, deployment), LOOKBACK)
            assert (outcome, value) == (own.outcome, own.value)
        # Of the answers across namespaces, the current batch's two (the current samples and
        # the average) are all that is kept.
        across = [key for key in batched.shared._entries if NAMESPACE + "=~" in str(key)]
        assert len(across) == (2 if joined > 1 else 0)
    shape = group_query(expression(spaces[0], "web")).shape
    assert batched.batches.batches(shape) == [tuple(spaces)]
