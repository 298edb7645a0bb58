"""The operator's own Prometheus metrics, served on /metrics.

One registry per operator (not prometheus_client's global one), so several operators in one
process, as in tests, never collide. Series per placement are removed when it goes, so a
long-running operator does not keep the names of placements deleted months ago.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from time import perf_counter
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from placement import __version__
from placement.core.api import Phase

PREFIX = "placement"
PHASES = tuple(str(phase) for phase in Phase)

# One `_created` series per counter and histogram doubles what is stored for nothing a
# dashboard uses (process-wide: the operator's only metrics are these).
disable_created_metrics()  # type: ignore[no-untyped-call]


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        # What each placement's gauges show: (phase, savings, currency).
        self._shown: dict[tuple[str, str], Shown] = {}
        # process_resident_memory_bytes, CPU, open fds; python_info; GC: the process-wide
        # collectors read the process, so every registry may show them.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        self.build_info = Gauge(
            f"{PREFIX}_build_info",
            "Always 1; the operator's version as a label.",
            ["version"],
            registry=self.registry,
        )
        self.build_info.labels(version=__version__).set(1)
        self.phase = PerPlacementGauge(
            f"{PREFIX}_phase",
            "1 for the phase a placement is in now, 0 for the others.",
            "phase",
            _phase_samples,
            self,
        )
        self.decisions = Counter(
            f"{PREFIX}_decisions_total",
            "Evaluations by the action decided and its reason.",
            ["action", "reason"],
            registry=self.registry,
        )
        self.savings = PerPlacementGauge(
            f"{PREFIX}_estimated_savings_per_day",
            "Estimated savings of moving to batch, in the placement's currency per day "
            "(negative: batch would cost more). Absent while it cannot be computed.",
            "currency",
            _savings_samples,
            self,
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
        self.metric_reads = Counter(
            f"{PREFIX}_metric_reads_total",
            "Evaluations' Prometheus reads, by where they were answered: memory (shared "
            "answers, on the event loop) or thread (a worker thread that may query "
            "Prometheus).",
            ["answered"],
            registry=self.registry,
        )
        self.history_reads = Counter(
            f"{PREFIX}_history_reads_total",
            "Range queries for placements' load histories, by outcome (ok, error, timeout, "
            "too-large): one per query shape, namespace and history refresh.",
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

        self.daemon_wakeups = Counter(
            f"{PREFIX}_daemon_wakeups_total",
            "Times a placement was looked at again between evaluations (by the scheduler, or "
            "its daemon with --peering), by what it found: due (it evaluated) or not-due "
            "(it waits again).",
            ["found"],
            registry=self.registry,
        )
        self.batch_resizes = Counter(
            f"{PREFIX}_prometheus_batch_resizes_total",
            "Times a query shape's batches across namespaces were halved (an answer took "
            "more than half the timeout) or doubled back (batched mode).",
            ["direction"],
            registry=self.registry,
        )
        # By whether the placement was due: the children resolved once, not at every wakeup.
        self.woke = {
            True: self.daemon_wakeups.labels(found="due"),
            False: self.daemon_wakeups.labels(found="not-due"),
        }

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
        phase: str | None = None,
    ) -> None:
        self.decisions.labels(action=action, reason=reason).inc()
        key = (namespace, placement)
        with self._lock:
            if phase is None:  # not decided this time: the phase shown stays
                phase = (self._shown.get(key) or (None,))[0]
            self._shown[key] = (phase, savings, currency)

    def forget(self, namespace: str, placement: str) -> None:
        with self._lock:
            self._shown.pop((namespace, placement), None)

    def query_failed(self, outcome: str) -> None:
        self.query_errors.labels(outcome=outcome).inc()

    def read_from_memory(self, answered: bool) -> None:
        self.metric_reads.labels(answered="memory" if answered else "thread").inc()

    def batches_resized(self, direction: str) -> None:
        self.batch_resizes.labels(direction=direction).inc()

    def history_read(self, outcome: str) -> None:
        self.history_reads.labels(outcome=outcome).inc()

    def actuated(self, kind: str) -> None:
        self.actuations.labels(kind=kind).inc()

    def status_write_failed(self, code: str) -> None:
        self.status_write_failures.labels(code=code).inc()

    def serve(self, address: str, port: int) -> Any:
        """Serve /metrics from a daemon thread; returns the server (for shutdown in tests)."""
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return server


# (phase, estimated savings per day, currency) of a placement
Shown = tuple[str | None, float | None, str]


class PerPlacementGauge(Collector):
    """A gauge with a series per placement (and a third label), made at each scrape from the
    one tuple `Telemetry` keeps per placement. As Gauge children (six per placement: one per
    phase, one for the savings, each with its own lock and value) they were 2.6 KB of the
    operator's memory per placement (bench/scale.py --tracemalloc)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        label: str,
        samples: Callable[[Shown], Iterable[tuple[str, float]]],
        telemetry: Telemetry,
    ) -> None:
        self.name, self.documentation = name, documentation
        self.labelnames = ("namespace", "placement", label)
        self._samples = samples
        self._telemetry = telemetry
        telemetry.registry.register(self)

    def family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def describe(self) -> Iterator[Metric]:
        return iter([self.family()])

    def collect(self) -> Iterator[Metric]:
        family = self.family()
        with self._telemetry._lock:
            shown = list(self._telemetry._shown.items())
        for (namespace, placement), state in shown:
            for label, value in self._samples(state):
                family.add_metric([namespace, placement, label], value)
        return iter([family])


def _phase_samples(shown: Shown) -> Iterable[tuple[str, float]]:
    phase = shown[0]
    return () if phase is None else [(each, 1.0 if each == phase else 0.0) for each in PHASES]


def _savings_samples(shown: Shown) -> Iterable[tuple[str, float]]:
    _, savings, currency = shown
    return () if savings is None else [(currency, savings)]
