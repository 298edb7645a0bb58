from __future__ import annotations

import re

from prometheus_client import generate_latest

from placement import __version__
from placement.adapters.telemetry import Telemetry
from placement.core.api import Phase


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


def test_process_metrics_and_build_info_are_exported() -> None:
    text = _text(Telemetry())
    assert "process_resident_memory_bytes " in text  # the RSS the README talks about
    assert "process_cpu_seconds_total " in text
    assert "python_info{" in text
    assert f'placement_build_info{{version="{__version__}"}} 1.0' in text


def test_no_created_series() -> None:
    telemetry = Telemetry()
    telemetry.actuated("restore")
    telemetry.decided("ml", "a", action="Stay", reason="StayRealtime", savings=1, currency="USD")
    with telemetry.reconciling():
        pass
    samples = [line for line in _text(telemetry).splitlines() if not line.startswith("#")]
    assert samples and not [line for line in samples if re.match(r"\w+_created[{ ]", line)]


def test_the_phase_gauge_marks_one_phase_per_placement_and_goes_with_it() -> None:
    telemetry = Telemetry()
    for phase in ("Realtime", "Batch"):
        telemetry.decided(
            "ml", "nightly", action="Wait", reason="MovedToBatch", savings=2.0, currency="USD",
            phase=phase,
        )  # fmt: skip
    text = _text(telemetry)
    assert 'placement_phase{namespace="ml",phase="Batch",placement="nightly"} 1.0' in text
    assert 'placement_phase{namespace="ml",phase="Realtime",placement="nightly"} 0.0' in text
    assert text.count('placement_phase{namespace="ml"') == len(Phase)  # every phase, once
    telemetry.forget("ml", "nightly")
    assert "placement_phase{" not in _text(telemetry)


def test_refused_status_writes_are_counted_by_code() -> None:
    telemetry = Telemetry()
    telemetry.status_write_failed("422")
    telemetry.status_write_failed("422")
    assert 'placement_status_write_failures_total{code="422"} 2.0' in _text(telemetry)
