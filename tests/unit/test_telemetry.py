from __future__ import annotations

from prometheus_client import generate_latest

from placement.telemetry import Telemetry


def _text(telemetry: Telemetry) -> str:
    return generate_latest(telemetry.registry).decode()


def test_savings_follow_the_latest_decision_and_go_with_the_placement() -> None:
    telemetry = Telemetry()
    telemetry.decided(
        "ml", "nightly", action="Stay", reason="SavingsNegative", savings=-9.78, currency="USD"
    )
    telemetry.decided(
        "ml", "nightly", action="MoveToBatch", reason="MovedToBatch", savings=469.95, currency="EUR"
    )
    text = _text(telemetry)
    assert 'placement_estimated_savings_per_day{currency="EUR",namespace="ml",' in text
    assert 'currency="USD"' not in text  # a changed currency leaves no stale series
    assert 'placement_decisions_total{action="MoveToBatch",reason="MovedToBatch"} 1.0' in text

    telemetry.decided(
        "ml", "nightly", action="None", reason="MetricsUnavailable", savings=None, currency="EUR"
    )
    assert "placement_estimated_savings_per_day{" not in _text(telemetry)

    telemetry.decided(
        "ml", "nightly", action="Stay", reason="StayRealtime", savings=1.5, currency="EUR"
    )
    telemetry.forget("ml", "nightly")
    telemetry.forget("ml", "nightly")  # twice: deletion handlers may run again
    assert "placement_estimated_savings_per_day{" not in _text(telemetry)


def test_two_operators_in_one_process_keep_separate_counts() -> None:
    first, second = Telemetry(), Telemetry()
    first.actuated("scale_down")
    first.query_failed("timeout")
    with first.reconciling():
        pass
    assert 'placement_actuations_total{kind="scale_down"} 1.0' in _text(first)
    assert 'placement_prometheus_query_errors_total{outcome="timeout"} 1.0' in _text(first)
    assert "placement_reconcile_duration_seconds_count 1.0" in _text(first)
    assert 'kind="scale_down"' not in _text(second)


def test_refused_status_writes_are_counted_by_code() -> None:
    telemetry = Telemetry()
    telemetry.status_write_failed("422")
    telemetry.status_write_failed("422")
    assert 'placement_status_write_failures_total{code="422"} 2.0' in _text(telemetry)
