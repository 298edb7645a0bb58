"""The Prometheus adapter against a real Prometheus: every way a reading can go wrong has its
own outcome, and none of them is a number the operator could act on."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import Gauge

from placement.adapters.prometheus import MetricsReader, Outcome
from placement.localenv.prometheus import Exporter, LocalPrometheus, write_openmetrics

LOOKBACK = timedelta(minutes=1)


@pytest.fixture(scope="module")
def reader(prometheus: LocalPrometheus) -> MetricsReader:
    return MetricsReader(prometheus.url, timeout=5)


@pytest.fixture(scope="module")
def probe(exporter: Exporter) -> Gauge:
    return exporter.gauge("reader_probe", "values the reader tests set", ["case"])


def _serve(prometheus: LocalPrometheus, probe: Gauge, case: str, value: float) -> str:
    probe.labels(case).set(value)
    selector = f'reader_probe{{case="{case}"}}'
    # Wait until a scrape holds the value and the lookback average covers it.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if prometheus.query(f"avg_over_time(({selector})[1m:])"):
            break
        time.sleep(0.2)
    return selector


def test_one_fresh_value_in_range_is_ok(
    reader: MetricsReader, prometheus: LocalPrometheus, probe: Gauge
) -> None:
    reading = reader.utilization(_serve(prometheus, probe, "ok", 0.42), LOOKBACK)
    assert reading.outcome is Outcome.OK
    assert reading.value == pytest.approx(0.42)


def test_a_selector_that_matches_nothing_is_empty(reader: MetricsReader) -> None:
    reading = reader.utilization('reader_probe{case="no-such-series"}', LOOKBACK)
    assert reading.outcome is Outcome.EMPTY
    assert reading.value is None


def test_several_series_are_refused_with_a_hint_to_aggregate(
    reader: MetricsReader, prometheus: LocalPrometheus, probe: Gauge
) -> None:
    _serve(prometheus, probe, "many-a", 0.2)
    _serve(prometheus, probe, "many-b", 0.3)
    reading = reader.utilization('reader_probe{case=~"many-.*"}', LOOKBACK)
    assert reading.outcome is Outcome.SEVERAL_SERIES
    assert "2 series" in reading.detail and "avg()" in reading.detail
    assert reading.value is None


def test_nan_is_not_a_number(
    reader: MetricsReader, prometheus: LocalPrometheus, probe: Gauge
) -> None:
    reading = reader.utilization(_serve(prometheus, probe, "nan", float("nan")), LOOKBACK)
    assert reading.outcome is Outcome.NOT_A_NUMBER
    assert reading.value is None


def test_utilization_above_one_and_negative_queue_depth_are_out_of_range(
    reader: MetricsReader, prometheus: LocalPrometheus, probe: Gauge
) -> None:
    high = reader.utilization(_serve(prometheus, probe, "high", 1.7), LOOKBACK)
    assert high.outcome is Outcome.OUT_OF_RANGE
    assert "outside [0, 1]" in high.detail
    negative = reader.queue_depth(_serve(prometheus, probe, "negative", -3), LOOKBACK)
    assert negative.outcome is Outcome.OUT_OF_RANGE
    assert not high.ok and not negative.ok


def test_invalid_promql_is_an_error_with_prometheus_words(reader: MetricsReader) -> None:
    reading = reader.utilization("sum(reader_probe", LOOKBACK)
    assert reading.outcome is Outcome.ERROR
    assert "parse error" in reading.detail


def test_an_unreachable_prometheus_is_an_error_without_credentials() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on `port` any more.
    reader = MetricsReader(f"http://operator:s3cret@127.0.0.1:{port}", timeout=2)
    reading = reader.utilization("up", LOOKBACK)
    assert reading.outcome is Outcome.ERROR
    assert "s3cret" not in reading.detail and "s3cret" not in reading.describe()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A listener that accepts connections and never answers: a Prometheus stuck past any
    timeout, which a real one cannot be made into on demand."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_a_prometheus_slower_than_the_timeout_is_a_timeout(silent_server: int) -> None:
    reader = MetricsReader(f"http://127.0.0.1:{silent_server}", timeout=1)
    started = time.monotonic()
    reading = reader.utilization("up", LOOKBACK)
    assert reading.outcome is Outcome.TIMEOUT
    assert time.monotonic() - started < 5
    assert "1s" in reading.detail


def test_a_series_that_stopped_reporting_is_stale(tmp_path: Path) -> None:
    # Samples every 15 s for 20 minutes, the last one 10 minutes ago: within a 1h lookback,
    # but past Prometheus' 5-minute staleness.
    now = time.time()
    samples = [({"case": "stale"}, now - 1800 + 15 * i, 0.3) for i in range(81)]
    series = write_openmetrics(tmp_path / "stale.om", "reader_probe", samples)
    with LocalPrometheus(tmp_path / "prom", backfill=[series]) as prometheus:
        reader = MetricsReader(prometheus.url, timeout=5)
        reading = reader.utilization('reader_probe{case="stale"}', timedelta(hours=1))
    assert reading.outcome is Outcome.STALE
    assert "last 5m" in reading.detail
    assert reading.value is None
