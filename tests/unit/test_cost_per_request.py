"""Cost per 1,000 requests (or 1M tokens), measured now and forecast for the chosen mode, and
the async terms in `placement explain`."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from placement.core.api import Phase
from placement.core.explain import explain
from placement.core.perrequest import cost_per_request
from placement.runtime.cli import main
from tests.unit.factories import make_spec, spec_dict

MIDDAY = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
IN_WINDOW = datetime(2026, 11, 22, 1, 30, tzinfo=UTC)


def _async_spec_dict(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "latency.acceptableDelay": "10m",
        "async": {"queue": "sum(queue_depth)", "scaleUpTime": "2m"},
        "costs.queuePerDay": 1.0,
        "metrics.requests": "sum(rate(requests_total[5m]))",
    }
    values.update(changes)
    return spec_dict(**values)


def test_measured_and_forecast_per_thousand_requests() -> None:
    costs = make_spec().costs  # 1.025 per replica-hour
    result = cost_per_request(
        costs,
        requests_unit="Requests",
        requests_per_second=2.0,
        current_replicas=4,
        replicas=4,
        mode=Phase.BATCH,
        savings_per_day=41.2,
    )
    assert result is not None
    assert result.measured == pytest.approx(4 * 1.025 / 7200 * 1000)  # 0.5694
    assert result.forecast == pytest.approx((98.4 - 41.2) / 172800 * 1000)  # 0.3310
    assert result.format("USD") == ("cost per 1,000 requests 0.5694 USD now, 0.331 USD in Batch")


def test_tokens_are_priced_per_million_and_realtime_forecasts_todays_fleet() -> None:
    costs = make_spec().costs
    result = cost_per_request(
        costs,
        requests_unit="Tokens",
        requests_per_second=500.0,
        current_replicas=4,
        replicas=4,
        mode=Phase.REALTIME,
        savings_per_day=None,
    )
    assert result is not None and result.unit == "1M tokens"
    assert result.measured == pytest.approx(result.forecast or 0)
    assert result.measured == pytest.approx(4 * 1.025 / (500 * 3600) * 1e6)


@pytest.mark.parametrize("rate", [None, -1.0, math.nan, math.inf])
def test_no_usable_rate_no_figure(rate: float | None) -> None:
    result = cost_per_request(
        make_spec().costs,
        requests_unit="Requests",
        requests_per_second=rate,
        current_replicas=4,
        replicas=4,
        mode=Phase.REALTIME,
        savings_per_day=None,
    )
    assert result is None


def test_no_requests_served_now_has_no_cost_per_request() -> None:
    result = cost_per_request(
        make_spec().costs,
        requests_unit="Requests",
        requests_per_second=0.0,
        current_replicas=0,
        replicas=4,
        mode=Phase.ASYNC,
        savings_per_day=64.8,
    )
    assert result is not None and result.measured is None and result.forecast is None
    assert result.format("USD") == "cost per 1,000 requests unknown now"


def test_explain_shows_the_async_terms_and_the_cost_per_request() -> None:
    result = explain(_async_spec_dict(), 4, 0.15, None, MIDDAY, requests=2.0, async_queue=12.0)
    assert json.loads(json.dumps(result)) == result
    assert (result["action"], result["reason"]) == ("MoveToAsync", "MovedToAsync")
    assert result["savingsPerDay"] == 64.8
    assert result["asyncBreakdown"]["capacityAvoided"] == 73.8
    assert result["asyncBreakdown"]["expectedReplicas"] == 1.0
    assert result["costPerRequest"] == {
        "unit": "1,000 requests",
        "requestsPerSecond": 2.0,
        "measured": 0.569444,
        "forecast": 0.194444,
        "mode": "Async",
    }
    assert "cost per 1,000 requests 0.5694 USD now, 0.1944 USD in Async" in result["message"]
    without = explain(
        _async_spec_dict(), 4, 0.15, None, MIDDAY, async_queue=12.0, keda_installed=False
    )
    assert without["reason"] == "AsyncNeedsKeda" and without["phase"] == "Realtime"


def test_the_worksheet_lists_the_async_terms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = {
        "apiVersion": "placement.runplacement.io/v1alpha1",
        "kind": "WorkloadPlacement",
        "metadata": {"name": "summarizer"},
        "spec": _async_spec_dict(),
    }
    path = tmp_path / "async.yaml"
    path.write_text(yaml.safe_dump(manifest))
    argv = ["explain", str(path), "--replicas", "4", "--utilization", "0.15"]
    argv += ["--async-queue", "12", "--requests", "2", "--now", "2026-11-22T12:00:00Z"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("MovedToAsync: async saves 64.80 USD/day")
    assert "= async savings                  64.80 USD/day" in out
    assert "cost per 1,000 requests: 0.5694 USD now, 0.1944 USD in Async" in out
