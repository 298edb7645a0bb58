"""Batched reads stay inside the placement's namespace whatever escapes its PromQL holds.

A fake Prometheus answers from a table of series with Prometheus's semantics for what these
tests use: equality matchers (decoded by the PromQL parser, as Prometheus decodes them) and
`by (...)` aggregation. Subqueries and functions pass values through unchanged."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import promql_parser as promql
import pytest

from placement.adapters.grouping import Series
from placement.adapters.prometheus import BatchedMetricsReader, MetricsReader, Outcome, QueryLimits
from placement.core.tenancy import scope_to_namespace

LOOKBACK = timedelta(minutes=1)
OWN, OTHER = 0.2, 0.7317


class FakePrometheus(MetricsReader):
    def __init__(self, series: list[tuple[dict[str, str], float]]) -> None:
        super().__init__("http://prometheus.invalid")
        self.series = series
        self.queries: list[str] = []

    def instant(self, query: str) -> list[Series]:
        self.queries.append(query)
        return evaluate(query, self.series)


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
    """/api/v1/query answering what `answer(query)` says, counting what was asked."""

    def __init__(self) -> None:
        self.url = ""
        self.queries: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.answer: Callable[[str], Answer] = lambda query: _vector([])

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)["query"][0]
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


def test_the_request_is_the_clients_own_with_its_headers(endpoint: FakeEndpoint) -> None:
    # Auth, tenant and CA settings live on the client; the streamed request must carry them.
    endpoint.answer = lambda query: _vector([({}, 0.5)])
    reader = MetricsReader(endpoint.url, headers={"X-Scope-OrgID": "t1"})
    assert reader.instant("x")
    assert endpoint.headers[-1].get("X-Scope-OrgID") == "t1"
