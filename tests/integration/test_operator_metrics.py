"""The operator's own /metrics, scraped from the running `placement run` process."""

from __future__ import annotations

import urllib.request

from prometheus_client import Gauge
from prometheus_client.parser import text_string_to_metric_families

from placement import __version__
from placement.localenv.operator_process import OperatorProcess
from placement.localenv.prometheus import LocalPrometheus
from tests.integration.harness import Placements, averaged_utilization, placement
from tests.integration.wait import until


def _samples(operator: OperatorProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(operator.metrics_url, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(operator: OperatorProcess, name: str, **labels: str) -> float | None:
    return _samples(operator).get((name, frozenset(labels.items())))


def test_decisions_savings_actuations_and_query_errors_are_exported(
    operator: OperatorProcess,
    placements: Placements,
    prometheus: LocalPrometheus,
    utilization: Gauge,
) -> None:
    ns = placements.namespace
    scale_downs = _value(operator, "placement_actuations_total", kind="scale_down") or 0.0
    empty = _value(operator, "placement_prometheus_query_errors_total", outcome="empty") or 0.0

    placements.deployment("ranker", 4)
    utilization.labels(ns, "ranker").set(0.2)
    prometheus.wait_for_value(averaged_utilization(ns, "ranker"), 0.2)
    placements.apply(placement("ranker", ns, deployment="ranker"))
    placements.deployment("unmeasured", 4)
    placements.apply(placement("unmeasured", ns, deployment="unmeasured"))

    status = placements.wait_for_reason("ranker", "BatchSucceeded", timeout=90)
    placements.wait_for_reason("unmeasured", "MetricsUnavailable")
    savings = until(
        lambda: _value(
            operator,
            "placement_estimated_savings_per_day",
            namespace=ns,
            placement="ranker",
            currency="USD",
        ),
        lambda value: value is not None,
        what="savings gauge for ranker",
    )
    assert savings == status["decision"]["savingsPerDay"] == 358.92
    assert _value(operator, "placement_actuations_total", kind="scale_down") == scale_downs + 1
    assert (_value(operator, "placement_actuations_total", kind="job_created") or 0) >= 1
    assert _value(
        operator, "placement_decisions_total", action="MoveToBatch", reason="MovedToBatch"
    )
    assert (
        _value(operator, "placement_prometheus_query_errors_total", outcome="empty") or 0
    ) > empty
    assert (_value(operator, "placement_reconcile_duration_seconds_count") or 0) > 0
    assert _value(operator, "placement_phase", namespace=ns, placement="ranker", phase="Batch") == 1
    assert (
        _value(operator, "placement_phase", namespace=ns, placement="ranker", phase="Realtime") == 0
    )
    assert _value(operator, "placement_build_info", version=__version__) == 1
    samples = _samples(operator)
    assert samples[("process_resident_memory_bytes", frozenset())] > 0
    assert not [name for name, _ in samples if name.endswith("_created")]

    # A deleted placement leaves no series behind.
    placements.delete("ranker")
    until(
        lambda: _value(
            operator,
            "placement_estimated_savings_per_day",
            namespace=ns,
            placement="ranker",
            currency="USD",
        ),
        lambda value: value is None,
        what="savings gauge for ranker removed",
    )
    assert (
        _value(operator, "placement_phase", namespace=ns, placement="ranker", phase="Batch") is None
    )
