"""The operator's own Prometheus metrics, served on /metrics.

One registry per operator (not prometheus_client's global one), so several operators in one
process, as in tests, never collide. Series per placement are removed when it goes, so a
long-running operator does not keep the names of placements deleted months ago.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

PREFIX = "placement"


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.decisions = Counter(
            f"{PREFIX}_decisions_total",
            "Evaluations by the action decided and its reason.",
            ["action", "reason"],
            registry=self.registry,
        )
        self.savings = Gauge(
            f"{PREFIX}_estimated_savings_per_day",
            "Estimated savings of moving to batch, in the placement's currency per day "
            "(negative: batch would cost more). Absent while it cannot be computed.",
            ["namespace", "placement", "currency"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            f"{PREFIX}_reconcile_duration_seconds",
            "Wall time of one evaluation of one placement (reads, decision, writes).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.query_errors = Counter(
            f"{PREFIX}_prometheus_query_errors_total",
            "PromQL queries that gave no usable number, by outcome (empty, stale, error...).",
            ["outcome"],
            registry=self.registry,
        )
        self.actuations = Counter(
            f"{PREFIX}_actuations_total",
            "Writes that change a workload: scale_down, restore, job_created, job_deleted.",
            ["kind"],
            registry=self.registry,
        )
        self.status_write_failures = Counter(
            f"{PREFIX}_status_write_failures_total",
            "Status writes the API server refused (the placement is still evaluated), by "
            "HTTP status code, or 'unserializable'.",
            ["code"],
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self._currencies: dict[tuple[str, str], str] = {}

    @contextmanager
    def reconciling(self) -> Iterator[None]:
        started = perf_counter()
        try:
            yield
        finally:
            self.reconcile_seconds.observe(perf_counter() - started)

    def decided(
        self,
        namespace: str,
        placement: str,
        *,
        action: str,
        reason: str,
        savings: float | None,
        currency: str,
    ) -> None:
        self.decisions.labels(action=action, reason=reason).inc()
        key = (namespace, placement)
        with self._lock:
            previous = self._currencies.get(key)
            if previous is not None and (savings is None or previous != currency):
                self.savings.remove(namespace, placement, previous)
                del self._currencies[key]
            if savings is not None:
                self.savings.labels(namespace, placement, currency).set(savings)
                self._currencies[key] = currency

    def forget(self, namespace: str, placement: str) -> None:
        with self._lock:
            currency = self._currencies.pop((namespace, placement), None)
            if currency is not None:
                self.savings.remove(namespace, placement, currency)

    def query_failed(self, outcome: str) -> None:
        self.query_errors.labels(outcome=outcome).inc()

    def actuated(self, kind: str) -> None:
        self.actuations.labels(kind=kind).inc()

    def status_write_failed(self, code: str) -> None:
        self.status_write_failures.labels(code=code).inc()

    def serve(self, address: str, port: int) -> Any:
        """Serve /metrics from a daemon thread; returns the server (for shutdown in tests)."""
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return server
