"""One observation reads every query the spec declares, and only those: demand, requests and
async.queue beside utilization, and the load history of demand (else utilization)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from placement.adapters.fakecluster import FakeCluster
from placement.adapters.observe import observe
from placement.core.observation import LoadHistory, Outcome, Reading
from placement.core.tenancy import scoped_spec
from tests.unit.factories import make_spec

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


@dataclass
class RecordingMetrics:
    asked: list[tuple[str, str]] = field(default_factory=list)
    history_asked: list[tuple[str, timedelta, str, str]] = field(default_factory=list)

    def _reading(self, name: str, expression: str) -> Reading:
        self.asked.append((name, expression))
        return Reading(name, expression, Outcome.OK, 1.5, sampled_at=NOW)

    def utilization(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        return self._reading("utilization", expression)

    def queue_depth(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        return self._reading("queueDepth", expression)

    def demand(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        return self._reading("demand", expression)

    def requests(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        return self._reading("requests", expression)

    def async_queue(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        return self._reading("async.queue", expression)

    def history(
        self, expression: str, span: timedelta, *, source: str, reader: str = ""
    ) -> LoadHistory | None:
        self.history_asked.append((expression, span, source, reader))
        return LoadHistory(source, timedelta(minutes=5), ((NOW, 0.5),), NOW)


def _observe(**changes: Any) -> tuple[RecordingMetrics, Any]:
    cluster = FakeCluster()
    cluster.add("summarizer", 4)
    metrics = RecordingMetrics()
    spec = scoped_spec(make_spec(**changes), "ml")
    observation = observe(cluster, metrics, spec, namespace="ml", placement="p")
    return metrics, observation


def test_only_the_declared_queries_are_read_and_the_history_is_of_utilization() -> None:
    metrics, observation = _observe()
    assert [name for name, _ in metrics.asked] == ["utilization"]
    assert (observation.demand, observation.requests, observation.async_queue) == (None,) * 3
    (asked,) = metrics.history_asked
    assert asked[1:] == (timedelta(days=14), "utilization", "ml/p")
    assert asked[0] == dict(metrics.asked)["utilization"]
    assert observation.history is not None and observation.history.source == "utilization"


def test_demand_requests_and_the_async_queue_are_read_scoped_and_demand_is_the_history() -> None:
    metrics, observation = _observe(
        **{
            "metrics.demand": "sum(rate(tokens_total[5m]))",
            "metrics.requests": "sum(rate(requests_total[5m]))",
            "metrics.history": "21d",
            "async.queue": "sum(queue_items)",
        }
    )
    assert dict(metrics.asked) == {
        "utilization": 'avg_over_time(summarizer:useful_utilization{namespace="ml"}[1h])',
        "demand": 'sum(rate(tokens_total{namespace="ml"}[5m]))',
        "requests": 'sum(rate(requests_total{namespace="ml"}[5m]))',
        "async.queue": 'sum(queue_items{namespace="ml"})',
    }
    for reading in (observation.demand, observation.requests, observation.async_queue):
        assert reading is not None and reading.ok and reading.value == 1.5
    assert metrics.history_asked == [
        ('sum(rate(tokens_total{namespace="ml"}[5m]))', timedelta(days=21), "demand", "ml/p")
    ]
    assert observation.history is not None and observation.history.source == "demand"


def test_nothing_is_queried_without_the_target() -> None:
    metrics = RecordingMetrics()
    spec = make_spec(**{"metrics.demand": "sum(x)"})
    observation = observe(FakeCluster(), metrics, spec, namespace="ml", placement="p")
    assert metrics.asked == [] and metrics.history_asked == []
    assert observation.history is None
