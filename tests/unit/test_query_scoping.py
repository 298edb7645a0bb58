"""Batched reads stay inside the placement's namespace whatever escapes its PromQL holds.

A fake Prometheus answers from a table of series with Prometheus's semantics for what these
tests use: equality matchers (decoded by the PromQL parser, as Prometheus decodes them) and
`by (...)` aggregation. Subqueries and functions pass values through unchanged."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar
from urllib.parse import parse_qs, urlparse

import promql_parser as promql
import pytest

from placement.adapters.grouping import Series
from placement.adapters.prometheus import (
    MAX_HISTORY_SAMPLES,
    BatchedMetricsReader,
    MetricsReader,
    Outcome,
    QueryLimits,
    history_range,
)
from placement.adapters.sharing import RefreshedResults
from placement.core.observation import LoadHistory
from placement.core.tenancy import scope_to_namespace

T = TypeVar("T")

LOOKBACK = timedelta(minutes=1)
OWN, OTHER = 0.2, 0.7317


class FakePrometheus(MetricsReader):
    def __init__(self, series: list[tuple[dict[str, str], float]]) -> None:
        super().__init__("http://prometheus.invalid")
        self.series = series
        self.queries: list[str] = []

    def instant_kept(
        self, query: str, keep: Callable[[list[Series]], T], *, across: bool = False
    ) -> T:
        self.queries.append(query)
        return keep(evaluate(query, self.series))


def evaluate(query: str, table: list[tuple[dict[str, str], float]]) -> list[Series]:
    tree = promql.parse(query)
    selectors: list[promql.VectorSelector] = []
    groupings: list[list[str]] = []

    def visit(node: promql.Expr) -> None:
        if isinstance(node, promql.VectorSelector):
            selectors.append(node)
        if isinstance(node, promql.AggregateExpr):
            groupings.append(list(node.modifier.labels) if node.modifier else [])

    promql.walk(tree, pre_visit=visit)
    (selector,) = selectors
    equal = {m.name: m.value for m in selector.matchers.matchers if m.op == promql.MatchOp.Equal}
    rows = [
        (labels, value)
        for labels, value in table
        if labels["__name__"] == selector.name
        and all(labels.get(k, "") == v for k, v in equal.items())
    ]
    if not groupings:
        return [{"metric": labels, "value": [0, str(value)]} for labels, value in rows]
    sums: dict[tuple[tuple[str, str], ...], float] = defaultdict(float)
    for labels, value in rows:
        sums[tuple((k, labels.get(k, "")) for k in groupings[0] if k in labels)] += value
    return [{"metric": dict(key), "value": [0, str(value)]} for key, value in sums.items()]


def _tenants(own: str, other: str) -> list[tuple[dict[str, str], float]]:
    return [
        ({"__name__": "vllm_util", "namespace": own, "deployment": "web"}, OWN),
        ({"__name__": "vllm_util", "namespace": other, "deployment": "web"}, OTHER),
    ]


@pytest.mark.parametrize(
    ("own", "other", "written"),
    [
        ("tenant-a", "tenant-141", r"tenant-\141"),
        ("tenant-a", "tenant-x61", r"tenant-\x61"),
        ("tenant-a", "tenant-u0061", r"tenant-\u0061"),
        ("team-0", "team-060", r"team-\060"),
    ],
)
def test_an_escaped_namespace_reads_only_its_own_series_in_batched_mode(
    own: str, other: str, written: str
) -> None:
    prometheus = FakePrometheus(_tenants(own, other))
    batched = BatchedMetricsReader(prometheus, max_age=60)
    expression = f'sum(vllm_util{{namespace="{written}",deployment="web"}})'
    scoped = scope_to_namespace(expression, own, field="spec.metrics.utilization")

    reading = batched.utilization(scoped, LOOKBACK, reader=f"{own}/p")

    assert reading.outcome is Outcome.OK, reading
    assert reading.value == pytest.approx(OWN)
    for query in prometheus.queries:
        assert all(row[0]["namespace"] == own for row in _matching(query, prometheus.series))


@pytest.mark.parametrize("written", [r"w\145b", r"w\x65b", r"w\u0065b"])
def test_an_escaped_key_label_reads_its_own_series(written: str) -> None:
    prometheus = FakePrometheus(_tenants("tenant-a", "tenant-b"))
    batched = BatchedMetricsReader(prometheus, max_age=60)
    expression = f'sum(vllm_util{{namespace="tenant-a",deployment="{written}"}})'

    reading = batched.utilization(expression, LOOKBACK, reader="tenant-a/p")

    assert reading.outcome is Outcome.OK, reading
    assert reading.value == pytest.approx(OWN)


def _matching(
    query: str, table: list[tuple[dict[str, str], float]]
) -> list[tuple[dict[str, str], float]]:
    """The rows of `table` a query's selector matches (its namespace restriction included)."""
    tree = promql.parse(query)
    selectors: list[promql.VectorSelector] = []
    promql.walk(
        tree,
        pre_visit=lambda n: selectors.append(n) if isinstance(n, promql.VectorSelector) else None,
    )
    found = []
    for labels, value in table:
        for selector in selectors:
            equal = [m for m in selector.matchers.matchers if m.op == promql.MatchOp.Equal]
            if all(labels.get(m.name, "") == m.value for m in equal):
                found.append((labels, value))
    return found


@pytest.mark.parametrize("written", [r"tenant-\141", r"tenant-\x61", r"tenant-\u0061"])
def test_grouping_alone_keeps_an_unscoped_escaped_namespace_to_itself(written: str) -> None:
    # With scoping turned off the expression reaches the batched reader as written.
    prometheus = FakePrometheus(_tenants("tenant-a", written.replace("\\", "")))
    batched = BatchedMetricsReader(prometheus, max_age=60)
    expression = f'sum(vllm_util{{namespace="{written}",deployment="web"}})'

    reading = batched.utilization(expression, LOOKBACK, reader="tenant-a/p")

    assert reading.outcome is Outcome.OK, reading
    assert reading.value == pytest.approx(OWN)
    assert prometheus.queries
    assert all('namespace="tenant-a"' in query for query in prometheus.queries)


# -- bounds and errors, against a fake Prometheus HTTP endpoint -----------------------------


Answer = tuple[int, bytes, dict[str, str]]


@pytest.fixture
def endpoint() -> Iterator[FakeEndpoint]:
    fake = FakeEndpoint()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()


class FakeEndpoint:
    """/api/v1/query and query_range answering what `answer(query)` says, counting what was
    asked (`params`: the last request's, for a range answer's grid)."""

    def __init__(self) -> None:
        self.url = ""
        self.queries: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.params: list[dict[str, str]] = []
        self.answer: Callable[[str], Answer] = lambda query: _vector([])

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                params = {key: values[0] for key, values in parse_qs(url.query).items()}
                query = params["query"]
                fake.paths.append(url.path)
                fake.params.append(params)
                fake.queries.append(query)
                fake.headers.append(dict(self.headers))
                status, body, headers = fake.answer(query)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Transfer-Encoding" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if headers.get("Transfer-Encoding") == "chunked":
                        for start in range(0, len(body), 4096):
                            chunk = body[start : start + 4096]
                            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the reader stopped at its bound

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def _vector(series: list[tuple[dict[str, str], float]], **headers: str) -> Answer:
    result = [{"metric": labels, "value": [1, str(value)]} for labels, value in series]
    body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})
    return 200, body.encode(), headers


def _error(status: int, error: str) -> Answer:
    body = json.dumps({"status": "error", "errorType": "execution", "error": error})
    return status, body.encode(), {}


def _many(count: int, secret: str = "other") -> list[tuple[dict[str, str], float]]:
    return [({"deployment": f"{secret}-{i}"}, 0.5) for i in range(count)]


def test_an_answer_at_the_series_bound_is_read(endpoint: FakeEndpoint) -> None:
    endpoint.answer = lambda query: _vector(_many(4))
    reader = MetricsReader(endpoint.url, limits=QueryLimits(max_series=4))
    assert len(reader.instant("x")) == 4


def test_an_answer_over_the_series_bound_is_refused_naming_the_bound(
    endpoint: FakeEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint.answer = lambda query: _vector(_many(5))

    def unparsed(*args: object, **kwargs: object) -> object:
        raise AssertionError("parsed although over the bound")

    monkeypatch.setattr("placement.adapters.prometheus.json.loads", unparsed)
    reader = MetricsReader(endpoint.url, limits=QueryLimits(max_series=4))
    reading = reader.utilization('x{namespace="a"}', LOOKBACK)
    assert reading.outcome is Outcome.TOO_LARGE
    assert "more than 4 series" in reading.detail
    assert "PLACEMENT_PROMETHEUS_MAX_SERIES" in reading.detail
    assert "other-" not in reading.describe()


@pytest.mark.parametrize("chunked", [False, True])
def test_an_answer_over_the_byte_bound_is_refused_before_it_is_read_whole(
    endpoint: FakeEndpoint, chunked: bool
) -> None:
    headers = {"Transfer-Encoding": "chunked"} if chunked else {}
    # 50 series whose label values make the body about 2 MB.
    big = [({"deployment": f"d{i}", "pad": "x" * 40_000}, 0.1) for i in range(50)]
    endpoint.answer = lambda query: _vector(big, **headers)
    reader = MetricsReader(endpoint.url, limits=QueryLimits(max_bytes=64 * 1024))
    reading = reader.utilization("x", LOOKBACK)
    assert reading.outcome is Outcome.TOO_LARGE
    assert "larger than 65536 bytes" in reading.detail
    assert "PLACEMENT_PROMETHEUS_MAX_BYTES" in reading.detail


def test_a_shared_query_over_the_bound_fails_for_its_placements_without_other_labels(
    endpoint: FakeEndpoint,
) -> None:
    endpoint.answer = lambda query: _vector(_many(50, secret="secret"))
    reader = MetricsReader(endpoint.url, limits=QueryLimits(max_series=10))
    batched = BatchedMetricsReader(reader, max_age=60)
    for app in ("one", "two"):
        query = f'sum(x{{namespace="team-a",deployment="{app}"}})'
        reading = batched.utilization(query, LOOKBACK, reader=app)
        assert reading.outcome is Outcome.TOO_LARGE
        assert "more than 10 series" in reading.detail and "namespace team-a" in reading.detail
        assert "secret" not in reading.describe()
    assert len(endpoint.queries) == 1  # one shared query, its failure shared


def test_a_shared_query_refused_by_prometheus_reports_the_placements_own_answer(
    endpoint: FakeEndpoint,
) -> None:
    def answer(query: str) -> Answer:
        if 'deployment="mine"' not in query:  # the shared query
            return _error(422, 'found duplicate series for {deployment="their-secret"}')
        return _vector([({}, 0.25)])

    endpoint.answer = answer
    batched = BatchedMetricsReader(MetricsReader(endpoint.url), max_age=60)
    reading = batched.utilization(
        'sum(x{namespace="team-a",deployment="mine"})', LOOKBACK, reader="mine"
    )
    assert reading.outcome is Outcome.OK and reading.value == pytest.approx(0.25)
    assert "their-secret" not in reading.describe()


def test_a_shared_query_error_reaches_a_placement_as_its_own_querys_error(
    endpoint: FakeEndpoint,
) -> None:
    def answer(query: str) -> Answer:
        if 'deployment="mine"' not in query:
            return _error(422, 'many-to-many matching: [{deployment="their-secret"}]')
        return _error(422, 'many-to-many matching: [{deployment="mine"}]')

    endpoint.answer = answer
    batched = BatchedMetricsReader(MetricsReader(endpoint.url), max_age=60)
    reading = batched.utilization(
        'sum(x{namespace="team-a",deployment="mine"})', LOOKBACK, reader="mine"
    )
    assert reading.outcome is Outcome.ERROR
    assert 'deployment="mine"' in reading.detail
    assert "their-secret" not in reading.describe()


def test_a_prometheus_error_keeps_prometheus_words(endpoint: FakeEndpoint) -> None:
    endpoint.answer = lambda query: (
        400,
        json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"}).encode(),
        {},
    )
    reading = MetricsReader(endpoint.url).utilization("x", LOOKBACK)
    assert reading.outcome is Outcome.ERROR
    assert reading.detail == "HTTP 400 bad_data: parse error"


def test_one_answer_is_decoded_and_made_what_is_kept_at_a_time(endpoint: FakeEndpoint) -> None:
    # Decoded, an answer is about 8 times its body: the reader threads each held one (a
    # batch's 10,000 series, 8 MB) at the bulk apply. The requests still go in parallel.
    endpoint.answer = lambda query: _vector([({"deployment": query}, 0.5)])
    reader = MetricsReader(endpoint.url)
    inside = threading.Semaphore(0)
    let_go = threading.Event()
    kept: list[str] = []

    def keep(result: list[Series]) -> str:
        inside.release()
        let_go.wait(10)
        return str(result[0]["metric"])

    threads = [
        threading.Thread(target=lambda q=q: kept.append(reader.instant_kept(q, keep)))
        for q in ("a", "b")
    ]
    for thread in threads:
        thread.start()
    assert inside.acquire(timeout=10)
    assert not inside.acquire(timeout=0.5)  # the other answer waits to be decoded
    assert len(endpoint.queries) == 2  # but was asked already
    let_go.set()
    for thread in threads:
        thread.join(10)
    assert sorted(kept) == ["{'deployment': 'a'}", "{'deployment': 'b'}"]


def test_the_request_is_the_clients_own_with_its_headers(endpoint: FakeEndpoint) -> None:
    # Auth, tenant and CA settings live on the client; the streamed request must carry them.
    endpoint.answer = lambda query: _vector([({}, 0.5)])
    reader = MetricsReader(endpoint.url, headers={"X-Scope-OrgID": "t1"})
    assert reader.instant("x")
    assert endpoint.headers[-1].get("X-Scope-OrgID") == "t1"


# -- demand, requests, async.queue and the load history: batched, bounded, in the namespace -

NEW_READINGS = ["demand", "requests", "async_queue"]


@pytest.mark.parametrize("method", NEW_READINGS)
@pytest.mark.parametrize(
    ("own", "other", "written"),
    [("tenant-a", "tenant-141", r"tenant-\141"), ("tenant-a", "tenant-u0061", r"tenant-\u0061")],
)
def test_each_new_reading_of_an_escaped_namespace_reads_only_its_own_series(
    method: str, own: str, other: str, written: str
) -> None:
    prometheus = FakePrometheus(_tenants(own, other))
    batched = BatchedMetricsReader(prometheus, max_age=60)
    expression = f'sum(vllm_util{{namespace="{written}",deployment="web"}})'
    scoped = scope_to_namespace(expression, own, field="spec.metrics.demand")

    reading = getattr(batched, method)(scoped, LOOKBACK, reader=f"{own}/p")

    assert reading.outcome is Outcome.OK, reading
    assert reading.value == pytest.approx(OWN)
    assert prometheus.queries
    for query in prometheus.queries:
        assert all(row[0]["namespace"] == own for row in _matching(query, prometheus.series))


@pytest.mark.parametrize("method", NEW_READINGS)
def test_a_new_reading_is_two_shared_queries_per_pass_and_may_exceed_one(method: str) -> None:
    rows = [
        ({"__name__": "tokens", "namespace": "team-a", "deployment": f"d{i}"}, 100.0 * i)
        for i in range(1, 6)
    ]
    prometheus = FakePrometheus(rows)
    batched = BatchedMetricsReader(prometheus, max_age=60)
    for i in range(1, 6):
        query = f'sum(tokens{{namespace="team-a",deployment="d{i}"}})'
        reading = getattr(batched, method)(query, LOOKBACK, reader=f"team-a/p{i}")
        assert reading.outcome is Outcome.OK and reading.value == pytest.approx(100.0 * i)
    assert len(prometheus.queries) == 2  # current samples and lookback average, shared


def test_a_negative_demand_is_out_of_range() -> None:
    rows = [({"__name__": "tokens", "namespace": "team-a", "deployment": "web"}, -3.0)]
    reading = BatchedMetricsReader(FakePrometheus(rows), max_age=60).demand(
        'sum(tokens{namespace="team-a",deployment="web"})', LOOKBACK, reader="team-a/p"
    )
    assert reading.outcome is Outcome.OUT_OF_RANGE


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


NOW = datetime(2026, 11, 30, 17, 42, 11, tzinfo=UTC)
SPAN = timedelta(days=14)


def _history_reader(
    url: str, clock: Clock, outcomes: list[str] | None = None, **limits: int
) -> MetricsReader:
    told = outcomes if outcomes is not None else []
    reader = MetricsReader(
        url, limits=QueryLimits(**limits), wall_clock=lambda: NOW, history_read=told.append
    )
    reader.histories = RefreshedResults(refresh=3600, retry=300, keep=86400, clock=clock)
    return reader


def _matrix(
    endpoint: FakeEndpoint, series: list[tuple[dict[str, str], Callable[[int], float]]]
) -> Answer:
    """A range answer on the grid the request asked for: `value(i)` at its i-th instant."""
    params = endpoint.params[-1]
    start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
    points = round((end - start) / step) + 1
    result = [
        {"metric": labels, "values": [[start + i * step, str(value(i))] for i in range(points)]}
        for labels, value in series
    ]
    body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})
    return 200, body.encode(), {}


def _constant(value: float) -> Callable[[int], float]:
    return lambda index: value


def _fleet(endpoint: FakeEndpoint, apps: list[str]) -> Callable[[str], Answer]:
    def answer(query: str) -> Answer:
        grouped = "by (deployment)" in query
        return _matrix(
            endpoint,
            [
                ({"deployment": app} if grouped else {}, _constant(0.1 * n))
                for n, app in enumerate(apps, start=1)
                if grouped or f'deployment="{app}"' in query
            ],
        )

    return answer


def _demand(namespace: str, app: str) -> str:
    return f'sum(rate(tokens_total{{namespace="{namespace}",deployment="{app}"}}[5m]))'


def test_placements_of_one_shape_share_one_range_query_per_namespace_and_refresh(
    endpoint: FakeEndpoint,
) -> None:
    apps = ["a", "b", "c"]
    endpoint.answer = _fleet(endpoint, apps)
    clock = Clock()
    batched = BatchedMetricsReader(_history_reader(endpoint.url, clock), max_age=60)

    def read_all(namespace: str) -> list[LoadHistory | None]:
        return [
            batched.history(
                _demand(namespace, app), SPAN, source="demand", reader=f"{namespace}/{app}"
            )
            for app in apps
        ]

    histories = read_all("team-a")
    assert len(endpoint.queries) == 1 and endpoint.paths == ["/api/v1/query_range"]
    assert endpoint.queries[0] == (
        'sum by (deployment) (rate(tokens_total{namespace="team-a"}[5m]))'
    )
    for n, history in enumerate(histories, start=1):
        assert history is not None and history.source == "demand"
        # Kept as hour means, 14 days and the hour of the grid's end; the newest hours as read.
        assert history.step == timedelta(hours=1) and history.fetched_at == NOW
        assert len(history.samples) == 14 * 24 + 1
        assert history.as_read().step == timedelta(minutes=5)
        assert all(value == pytest.approx(0.1 * n) for _, value in history.samples)
        moments = [moment for moment, _ in history.samples]
        assert moments == sorted(moments) and moments[-1] <= NOW
    params = endpoint.params[0]
    assert float(params["end"]) % 300 == 0  # aligned: every refresh asks for the same grid
    assert float(params["end"]) - float(params["start"]) == SPAN.total_seconds()

    clock.now = 3599  # every cycle within the hour: no range query
    for _ in range(3):
        read_all("team-a")
    assert len(endpoint.queries) == 1

    read_all("team-b")  # another namespace: its own query, its own series only
    assert len(endpoint.queries) == 2 and 'namespace="team-b"' in endpoint.queries[1]

    clock.now = 3600 + 1  # the refresh: one query again for the whole group
    read_all("team-a")
    assert len(endpoint.queries) == 3


def test_a_changed_query_or_range_is_read_at_once(endpoint: FakeEndpoint) -> None:
    endpoint.answer = _fleet(endpoint, ["a"])
    batched = BatchedMetricsReader(_history_reader(endpoint.url, Clock()), max_age=60)
    batched.history(_demand("team-a", "a"), SPAN, source="demand", reader="team-a/a")
    batched.history(_demand("team-a", "a"), timedelta(days=7), source="demand", reader="team-a/a")
    changed = 'avg(tokens_total{namespace="team-a",deployment="a"})'
    batched.history(changed, SPAN, source="utilization", reader="team-a/a")
    assert len(endpoint.queries) == 3


@pytest.mark.parametrize("days", [1, 14, 35, 60])
def test_the_history_step_keeps_every_series_under_prometheus_point_limit(days: int) -> None:
    start, end, step = history_range(timedelta(days=days), NOW)
    assert round((end - start) / step) + 1 <= MAX_HISTORY_SAMPLES
    assert step == timedelta(minutes=5) or days > 35


@pytest.mark.parametrize("written", [r"tenant-\141", r"tenant-\x61", r"tenant-\u0061"])
def test_the_shared_range_query_reads_only_the_placements_namespace(
    endpoint: FakeEndpoint, written: str
) -> None:
    endpoint.answer = _fleet(endpoint, ["web"])
    batched = BatchedMetricsReader(_history_reader(endpoint.url, Clock()), max_age=60)
    expression = scope_to_namespace(
        f'sum(vllm_util{{namespace="{written}",deployment="web"}})',
        "tenant-a",
        field="spec.metrics.demand",
    )
    assert batched.history(expression, SPAN, source="demand", reader="tenant-a/p") is not None
    (query,) = endpoint.queries
    selectors: list[promql.VectorSelector] = []
    promql.walk(
        promql.parse(query),
        pre_visit=lambda n: selectors.append(n) if isinstance(n, promql.VectorSelector) else None,
    )
    for selector in selectors:
        namespaces = [m for m in selector.matchers.matchers if m.name == "namespace"]
        assert [(m.op, m.value) for m in namespaces] == [(promql.MatchOp.Equal, "tenant-a")]


def test_a_shared_range_answer_over_the_bound_becomes_each_placements_own_query(
    endpoint: FakeEndpoint,
) -> None:
    # 30 deployments of 14 days at 5 minutes: about 2.5 MB, over a 1 MB history bound.
    apps = [f"app-{i}" for i in range(30)]
    endpoint.answer = _fleet(endpoint, apps)
    clock = Clock()
    outcomes: list[str] = []
    reader = _history_reader(endpoint.url, clock, outcomes, max_history_bytes=1 << 20)
    batched = BatchedMetricsReader(reader, max_age=60)
    for app in apps[:3]:
        history = batched.history(
            _demand("team-a", app), SPAN, source="demand", reader=f"team-a/{app}"
        )
        assert history is not None and len(history.samples) == 14 * 24 + 1
    assert len(endpoint.queries) == 1 + 3  # the refused shared one, then each its own
    assert outcomes == ["too-large", "ok", "ok", "ok"]  # what the operator's telemetry counts
    assert all('deployment="app-' in query for query in endpoint.queries[1:])
    clock.now = 3599
    for app in apps[:3]:
        batched.history(_demand("team-a", app), SPAN, source="demand", reader=f"team-a/{app}")
    assert len(endpoint.queries) == 4  # own answers are refreshed hourly too


def test_a_history_over_the_bound_is_none_until_the_next_refresh(endpoint: FakeEndpoint) -> None:
    endpoint.answer = _fleet(endpoint, ["a"])
    clock = Clock()
    reader = _history_reader(endpoint.url, clock, max_history_bytes=4096)
    query = _demand("team-a", "a")
    assert reader.history(query, SPAN, source="demand", reader="team-a/a") is None
    clock.now = 3599  # a too-large answer stays too large: not asked again each cycle
    assert reader.history(query, SPAN, source="demand", reader="team-a/a") is None
    assert len(endpoint.queries) == 1
    clock.now = 3600
    reader.history(query, SPAN, source="demand", reader="team-a/a")
    assert len(endpoint.queries) == 2


def test_a_history_read_that_failed_is_retried_after_five_minutes(endpoint: FakeEndpoint) -> None:
    endpoint.answer = lambda query: _error(503, "unavailable")
    clock = Clock()
    reader = _history_reader(endpoint.url, clock)
    query = _demand("team-a", "a")
    assert reader.history(query, SPAN, source="demand", reader="team-a/a") is None
    clock.now = 299
    reader.history(query, SPAN, source="demand", reader="team-a/a")
    assert len(endpoint.queries) == 1
    endpoint.answer = _fleet(endpoint, ["a"])
    clock.now = 300
    assert reader.history(query, SPAN, source="demand", reader="team-a/a") is not None
    assert len(endpoint.queries) == 2


def test_a_history_prometheus_cannot_give_is_none(endpoint: FakeEndpoint) -> None:
    endpoint.answer = lambda query: _error(503, "unavailable")
    batched = BatchedMetricsReader(_history_reader(endpoint.url, Clock()), max_age=60)
    assert batched.history(_demand("team-a", "a"), SPAN, source="demand", reader="team-a/a") is None


def test_unusable_samples_are_left_out_and_several_series_give_no_history(
    endpoint: FakeEndpoint,
) -> None:
    def values(i: int) -> float:
        return [float("nan"), -1.0, float("inf"), 0.25][i % 4]

    endpoint.answer = lambda query: _matrix(endpoint, [({}, values)])
    reader = _history_reader(endpoint.url, Clock())
    history = reader.history("sum(x)", SPAN, source="utilization", reader="team-a/a")
    assert history is not None and history.source == "utilization"
    assert {value for _, value in history.samples} == {0.25}
    assert {value for _, value in history.as_read().samples} == {0.25}
    assert len(history.samples) == 14 * 24 + 1  # every hour kept a usable sample
    assert history.zero_share == 0.0

    endpoint.answer = lambda query: _matrix(
        endpoint, [({"pod": "1"}, values), ({"pod": "2"}, values)]
    )
    assert reader.history("x", SPAN, source="utilization", reader="team-a/a") is None


def test_histories_are_parsed_one_at_a_time_and_a_reader_that_cannot_wait_gets_what_is_cached(
    endpoint: FakeEndpoint,
) -> None:
    endpoint.answer = _fleet(endpoint, ["a"])
    clock = Clock()
    reader = _history_reader(endpoint.url, clock)
    reader.timeout = 0.2
    query = _demand("team-a", "a")
    with reader._history_slot:  # another namespace's history is being read
        assert reader.history(query, SPAN, source="demand", reader="team-a/a") is None
    assert endpoint.queries == []  # it did not pile up a second answer beside the first
    reader.timeout = 10  # the wait above is short on purpose; the reads need not be (load)
    assert reader.history(query, SPAN, source="demand", reader="team-a/a") is not None
    clock.now = 3600  # due again, but the slot is busy: the hour-old history serves
    reader.timeout = 0.2
    with reader._history_slot:
        assert reader.history(query, SPAN, source="demand", reader="team-a/a") is not None
    assert len(endpoint.queries) == 1
    reader.timeout = 10
    reader.history(query, SPAN, source="demand", reader="team-a/a")
    assert len(endpoint.queries) == 2
