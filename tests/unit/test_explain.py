"""`placement explain` core: the operator's answer, JSON-ready."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from placement.core.api import WorkloadPlacement, WorkloadPlacementSpec
from placement.core.explain import explain
from tests.unit.factories import EXAMPLE_UTILIZATION, example_manifest

IN_WINDOW = datetime(2026, 11, 22, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(example_manifest(), id="manifest-dict"),
        pytest.param(example_manifest()["spec"], id="spec-dict"),
        pytest.param(WorkloadPlacement.model_validate(example_manifest()), id="model"),
        pytest.param(
            WorkloadPlacementSpec.model_validate(example_manifest()["spec"]), id="spec-model"
        ),
    ],
)
def test_explain_the_design_example(source: object) -> None:
    result = explain(source, 4, EXAMPLE_UTILIZATION, 12.0, IN_WINDOW)
    assert json.loads(json.dumps(result)) == result  # JSON-ready as is
    assert result["action"] == "MoveToBatch"
    assert result["reason"] == "MovedToBatch"
    assert result["savingsPerDay"] == 41.2
    assert result["breakdown"] == {
        "capacityAvoided": 98.4,
        "batchProcessing": 43.1,
        "dataStaging": 4.1,
        "retries": 2.0,
        "operations": 8.0,
        "missedWindowRisk": 0.0,
    }
    assert result["message"] == (
        "saves 41.20 USD/day = capacity avoided 98.40 - batch 43.10 - staging 4.10"
        " - retries 2.00 - operations 8.00 - missed windows 0.00; deployment/summarizer 4 -> 0;"
        " planned hold 2026-11-21 05:00 - 2026-11-22 05:00 UTC (1d): forecast 43.10"
        " replica-hours, 22.55 batch pod-hours at the high quantile, window capacity 25.60"
        " pod-hours (8 pods x 4h x 0.8); backlog not watched (no metrics.demand or"
        " metrics.queueDepth); job summarizer-20261122-0100 created"
    )
    assert result["plannedHold"] == {
        "from": "2026-11-21T05:00:00+00:00",
        "until": "2026-11-22T05:00:00+00:00",
        "hours": 24.0,
        "forecastWorkReplicaHours": 43.1,
        "forecastBatchPodHours": 22.55,
        "windowCapacityPodHours": 25.6,
        "forecast": "lookback average: no history",
    }
    assert result["inputs"]["replicas"] == 4
    assert result["inputs"]["utilization"] == EXAMPLE_UTILIZATION
    assert result["inputs"]["queueDepth"] == 12.0
    assert result["inputs"]["heldHoursPerDay"] == 24.0
    assert result["window"]["open"] is True


def test_explain_says_when_the_deployment_is_held_only_part_of_the_day() -> None:
    manifest = example_manifest()
    manifest["spec"]["latency"]["acceptableDelay"] = "8h"
    result = explain(manifest, 4, EXAMPLE_UTILIZATION, None, IN_WINDOW)
    assert result["inputs"]["heldHoursPerDay"] == 8.0
    assert result["savingsPerDay"] == 5.67
    assert result["breakdown"]["capacityAvoided"] == 32.8
    assert result["message"].startswith("saves 5.67 USD/day (held 8h a day) = ")


def test_explain_plans_the_quiet_hours_that_fit_when_the_whole_day_does_not() -> None:
    # 1 pod: 0.94 batch pod-hours arrive per hour, the window holds 3.2 of them. In
    # Recommend mode the recommendation carries the plan: 3h before the window's end.
    manifest = example_manifest()
    manifest["spec"]["mode"] = "Recommend"
    manifest["spec"]["batch"]["jobTemplate"]["spec"]["parallelism"] = 1
    manifest["spec"]["costs"].update(dataStagingPerRun=0, operationsPerDay=0)
    manifest["spec"]["costs"]["batchEfficiency"] = 4
    result = explain(manifest, 4, EXAMPLE_UTILIZATION, None, IN_WINDOW)
    assert result["reason"] == "BatchRecommended"
    assert result["plannedHold"]["from"] == "2026-11-21T23:00:00+00:00"
    assert result["plannedHold"]["hours"] == 6.0
    assert result["inputs"]["heldHoursPerDay"] == 6.0
    assert "planned hold 2026-11-21 23:00 - 2026-11-22 05:00 UTC (6h)" in result["message"]


def test_explain_rejects_a_name_too_long_for_a_job_label() -> None:
    manifest = example_manifest()
    manifest["metadata"]["name"] = "x" * 64
    with pytest.raises(ValueError, match=r"metadata\.name"):
        explain(manifest, 4, EXAMPLE_UTILIZATION, None, IN_WINDOW)


def test_explain_without_metrics() -> None:
    result = explain(example_manifest(), 4, None, None, IN_WINDOW)
    assert result["reason"] == "MetricsUnavailable"
    assert result["savingsPerDay"] is None
    assert result["breakdown"] is None


def test_explain_rejects_a_bad_spec_naming_the_field() -> None:
    manifest = example_manifest()
    manifest["spec"]["costs"]["retryRate"] = 1.5
    with pytest.raises(ValueError, match="retryRate"):
        explain(manifest, 4, 0.5, None, IN_WINDOW)
