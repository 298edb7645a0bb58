"""What the operator sends to Prometheus: extra headers, a bearer token or basic auth, and a
CA bundle, with no credential in what it shows. A tiny HTTP server stands in for Prometheus
here; tests/integration/test_prometheus_auth.py runs the real one behind basic auth and TLS."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from placement.adapters.prometheus import MetricsReader, Outcome
from placement.runtime.config import OperatorConfig

TOKEN = "t0ken-never-logged"


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers))
        body = json.dumps(
            {"status": "success", "data": {"resultType": "vector", "result": []}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_prometheus() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _reader(config: OperatorConfig) -> MetricsReader:
    # As the operator's startup builds it (handlers.configure).
    return MetricsReader(
        config.prometheus_url,
        timeout=2,
        headers=config.prometheus_request_headers(),
        basic_auth=config.prometheus_basic_auth(),
        ca_file=config.prometheus_ca_file,
    )


def test_bearer_token_and_extra_headers_reach_prometheus(
    fake_prometheus: tuple[str, list[dict[str, str]]],
) -> None:
    url, seen = fake_prometheus
    config = OperatorConfig(
        prometheus_url=url,
        prometheus_bearer_token=TOKEN,
        prometheus_headers={"X-Scope-OrgID": "team-a"},
    )
    reading = _reader(config).utilization("up", timedelta(minutes=5))
    assert reading.outcome is Outcome.EMPTY  # answered: the query went through
    assert seen and all(h["Authorization"] == f"Bearer {TOKEN}" for h in seen)
    assert all(h["X-Scope-OrgID"] == "team-a" for h in seen)
    assert TOKEN not in repr(_reader(config)) and TOKEN not in repr(config)


def test_basic_auth_reaches_prometheus(
    fake_prometheus: tuple[str, list[dict[str, str]]],
) -> None:
    url, seen = fake_prometheus
    config = OperatorConfig(
        prometheus_url=url,
        prometheus_basic_auth_username="reader",
        prometheus_basic_auth_password=TOKEN,
    )
    _reader(config).utilization("up", timedelta(minutes=5))
    expected = "Basic " + base64.b64encode(f"reader:{TOKEN}".encode()).decode()
    assert seen and all(h["Authorization"] == expected for h in seen)


def test_the_headers_given_are_not_changed_by_the_reader() -> None:
    headers = {"X-Scope-OrgID": "team-a"}
    MetricsReader("http://127.0.0.1:1", headers=headers)
    assert headers == {"X-Scope-OrgID": "team-a"}
