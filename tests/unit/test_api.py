"""The WorkloadPlacement models: defaults, aliases, and errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from placement.core.api import (
    Action,
    FallbackAction,
    Mode,
    Phase,
    ProductRisk,
    WorkloadPlacement,
    WorkloadPlacementSpec,
    WorkloadPlacementStatus,
)
from tests.unit.factories import DELETE, example_manifest, make_spec, spec_dict


def test_example_parses_with_typed_fields() -> None:
    placement = WorkloadPlacement.model_validate(example_manifest())
    spec = placement.spec
    assert placement.name == "summarizer"
    assert spec.mode is Mode.ENFORCE
    assert spec.target.deployment == "summarizer"
    assert spec.latency.acceptable_delay.timedelta.total_seconds() == 24 * 3600
    assert spec.batch.window.start_time.hour == 1
    assert spec.batch.job_template.spec.parallelism == 8
    assert spec.costs.realtime_replica_hourly == 1.025


def test_defaults() -> None:
    minimal = spec_dict(
        **{
            "owner": DELETE,
            "mode": DELETE,
            "productRisk": DELETE,
            "target.warmReplicas": DELETE,
            "latency.userVisible": DELETE,
            "batch.window.timeZone": DELETE,
            "costs": {"realtimeReplicaHourly": 1, "batchPodHourly": 1, "batchEfficiency": 1},
        }
    )
    spec = WorkloadPlacementSpec.model_validate(minimal)
    assert spec.owner == ""
    assert spec.mode is Mode.RECOMMEND
    assert spec.product_risk is ProductRisk.MEDIUM
    assert spec.target.warm_replicas == 0
    assert spec.latency.user_visible is False
    assert spec.batch.window.time_zone == "UTC"
    assert spec.batch.queue_name is None
    assert spec.fallback.action is FallbackAction.RESTORE_REALTIME
    assert spec.costs.currency == "USD"
    assert spec.costs.data_staging_per_run == 0
    assert spec.costs.operations_per_day == 0
    assert spec.costs.retry_rate == 0
    assert spec.costs.max_parallel_pods is None
    assert spec.costs.savings_margin == 0
    assert spec.metrics.lookback == "1h"
    assert spec.metrics.queue_depth is None
    assert spec.evaluation_interval == "5m"


def test_round_trip_by_alias_is_lossless() -> None:
    manifest = example_manifest()
    manifest["spec"]["batch"]["jobTemplate"]["spec"]["backoffLimit"] = 2
    manifest["spec"]["batch"]["jobTemplate"]["spec"]["template"]["spec"]["nodeSelector"] = {
        "gpu": "h100"
    }
    placement = WorkloadPlacement.model_validate(manifest)
    dumped = placement.model_dump(by_alias=True, mode="json", exclude_none=True)
    again = WorkloadPlacement.model_validate(dumped)
    assert again == placement
    job_spec = dumped["spec"]["batch"]["jobTemplate"]["spec"]
    assert job_spec["backoffLimit"] == 2  # the open parts of the Job pass through
    assert job_spec["template"]["spec"]["nodeSelector"] == {"gpu": "h100"}
    assert dumped["spec"]["latency"]["acceptableDelay"] == "24h"


def test_python_names_are_refused_as_the_api_server_refuses_them() -> None:
    """The API server knows only the camelCase fields: `warm_replicas` is an unknown field
    (kubectl's strict validation) or dropped (warmReplicas then defaults to 0). Before, the
    models read it too, so `placement explain` decided on a spec the cluster never holds."""
    with pytest.raises(ValidationError) as error:
        make_spec(**{"target": {"deployment": "x", "warm_replicas": 2}})
    (detail,) = error.value.errors()
    assert detail["loc"] == ("target", "warm_replicas")
    assert detail["type"] == "extra_forbidden"
    assert make_spec(**{"target": {"deployment": "x", "warmReplicas": 2}}).target.warm_replicas == 2


def _error_locations(changes: dict[str, Any]) -> list[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as error:
        WorkloadPlacementSpec.model_validate(spec_dict(**changes))
    return [tuple(detail["loc"]) for detail in error.value.errors()]


@pytest.mark.parametrize(
    ("changes", "location"),
    [
        ({"mode": "Auto"}, ("mode",)),
        ({"productRisk": "Extreme"}, ("productRisk",)),
        ({"target.deployment": "Not_A_Name"}, ("target", "deployment")),
        ({"target.deployment": DELETE}, ("target", "deployment")),
        ({"target.warmReplicas": -1}, ("target", "warmReplicas")),
        ({"latency.acceptableDelay": "8 hours"}, ("latency", "acceptableDelay")),
        ({"latency.acceptableDelay": DELETE}, ("latency", "acceptableDelay")),
        ({"batch.window.start": "25:00"}, ("batch", "window", "start")),
        ({"batch.window.end": "5:00"}, ("batch", "window", "end")),
        ({"batch.window.timeZone": "Mars/Olympus"}, ("batch", "window", "timeZone")),
        ({"batch.window.end": "01:00"}, ("batch", "window")),
        ({"batch.retryWindow": "soon"}, ("batch", "retryWindow")),
        (
            {"batch.jobTemplate.spec.template.spec.containers": []},
            ("batch", "jobTemplate", "spec", "template", "spec", "containers"),
        ),
        (
            {"batch.jobTemplate.spec.template.spec.restartPolicy": "Always"},
            ("batch", "jobTemplate", "spec", "template", "spec", "restartPolicy"),
        ),
        (
            {"batch.jobTemplate.spec.parallelism": 0},
            ("batch", "jobTemplate", "spec", "parallelism"),
        ),
        ({"fallback.action": "Panic"}, ("fallback", "action")),
        ({"costs.currency": "usd"}, ("costs", "currency")),
        ({"costs.realtimeReplicaHourly": 0}, ("costs", "realtimeReplicaHourly")),
        ({"costs.batchPodHourly": -1}, ("costs", "batchPodHourly")),
        ({"costs.batchEfficiency": 0}, ("costs", "batchEfficiency")),
        ({"costs.dataStagingPerRun": -0.01}, ("costs", "dataStagingPerRun")),
        ({"costs.operationsPerDay": -1}, ("costs", "operationsPerDay")),
        ({"costs.retryRate": 1}, ("costs", "retryRate")),
        ({"costs.retryRate": -0.1}, ("costs", "retryRate")),
        ({"costs.maxParallelPods": 0}, ("costs", "maxParallelPods")),
        ({"costs.savingsMargin": -5}, ("costs", "savingsMargin")),
        ({"metrics.utilization": ""}, ("metrics", "utilization")),
        ({"metrics.utilization": "x" * 4097}, ("metrics", "utilization")),
        ({"metrics.lookback": "0m"}, ("metrics", "lookback")),
        ({"evaluationInterval": "0s"}, ("evaluationInterval",)),
        ({"owner": "x" * 254}, ("owner",)),
        ({"unknownField": 1}, ("unknownField",)),
        ({"costs.unknownField": 1}, ("costs", "unknownField")),
    ],
)
def test_invalid_spec_names_the_field(changes: dict[str, Any], location: tuple[str, ...]) -> None:
    assert location in _error_locations(changes)


def test_window_rule_message() -> None:
    with pytest.raises(ValidationError, match=r"start and batch\.window\.end must differ"):
        make_spec(**{"batch.window.end": "01:00"})


@pytest.mark.parametrize(
    ("name", "valid"),
    [("a" * 63, True), ("a" * 64, False), ("", True)],  # no name yet: generateName, explain
)
def test_placement_name_must_fit_a_job_label(name: str, valid: bool) -> None:
    # Jobs carry placement.runplacement.io/placement=<name>; label values are <= 63 chars.
    manifest = example_manifest()
    manifest["metadata"]["name"] = name
    if valid:
        assert WorkloadPlacement.model_validate(manifest).name == name
    else:
        with pytest.raises(ValidationError, match=r"metadata\.name must be at most 63 characters"):
            WorkloadPlacement.model_validate(manifest)


def test_queue_name_must_agree_with_the_kueue_label() -> None:
    label = {"labels": {"kueue.x-k8s.io/queue-name": "gpu-batch"}}
    agreeing = make_spec(**{"batch.queueName": "gpu-batch", "batch.jobTemplate.metadata": label})
    assert agreeing.batch.queue_name == "gpu-batch"
    with pytest.raises(ValidationError, match="queueName and jobTemplate label"):
        make_spec(**{"batch.queueName": "other", "batch.jobTemplate.metadata": label})


def test_window_may_cross_midnight() -> None:
    spec = make_spec(**{"batch.window": {"start": "22:00", "end": "06:00"}})
    assert spec.batch.window.end_time < spec.batch.window.start_time


def test_empty_owner_is_valid() -> None:
    assert make_spec(owner="").owner == ""


def test_status_tolerates_unknown_fields_from_other_versions() -> None:
    status = WorkloadPlacementStatus.model_validate(
        {"phase": "Batch", "kopf": {"progress": {}}, "batch": {"missedWindows": 2, "new": 1}}
    )
    assert status.phase is Phase.BATCH
    assert status.batch.missed_windows == 2


def test_status_decision_parses() -> None:
    status = WorkloadPlacementStatus.model_validate(
        {
            "phase": "Realtime",
            "decision": {
                "action": "Stay",
                "reason": "SavingsNegative",
                "message": "SavingsNegative: loses 1.00 USD/day",
                "evaluatedAt": "2026-11-22T01:00:00Z",
                "savingsPerDay": -1.0,
            },
        }
    )
    assert status.decision is not None
    assert status.decision.action is Action.STAY


@pytest.mark.parametrize(
    "changes",
    [
        {"owner": "ML platform team"},  # inner spaces
        {"owner": "Équipe données 東京"},  # any script, as long as it is printable
        {"metrics.utilization": 'avg(x{path="/a#b"})'},  # `#` inside a string literal
        {"metrics.queueDepth": "sum(queue_depth{q=`#1`})"},
        {"latency.acceptableDelay": "7d"},
        {"latency.acceptableDelay": "0s"},
        {"batch.retryWindow": "1d"},
        {"batch.retryWindow": "23h59m59s"},
        {"metrics.lookback": "1m"},
        {"metrics.lookback": "30d"},
        {"evaluationInterval": "1d"},
        {"batch.window.timeZone": "Etc/GMT-14"},  # the one that exists
        {"batch.window.timeZone": "America/Argentina/Buenos_Aires"},
        {"costs.batchPodHourly": 1e-6},
        {"costs.maxParallelPods": 100_000},
        {"batch.jobTemplate.spec.parallelism": 2**31 - 1},
        {"batch.jobTemplate.spec.activeDeadlineSeconds": 2**63 - 1},
        {"batch.jobTemplate.metadata": {"labels": {"app.kubernetes.io/name": "x", "a": ""}}},
    ],
)
def test_values_at_the_edge_of_the_bounds_are_accepted(changes: dict[str, Any]) -> None:
    make_spec(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"latency.acceptableDelay": "7d1s"}, "must be at most 7d"),
        ({"batch.retryWindow": "1d1s"}, "must be at most 1d"),
        ({"metrics.lookback": "59s"}, "must be at least 1m"),
        ({"metrics.lookback": "30d1s"}, "must be at most 30d"),
        ({"batch.window.timeZone": "Factory"}, "must be an IANA time zone name"),
        ({"owner": "team\u200bml"}, "should match pattern"),
        ({"metrics.utilization": "\t \n"}, "must not be blank"),
    ],
)
def test_bounds_are_refused_with_what_they_are(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_spec(**changes)


def test_the_containers_share_one_character_budget() -> None:
    # Each variable is within its own bound; together they exceed what the Job may carry.
    env = [{"name": f"V{i}", "value": "v" * 4000} for i in range(5)]
    containers = [{"name": "batch", "image": "example/batch:1.0", "env": env}]
    with pytest.raises(ValidationError, match="together must be at most 16384 characters"):
        make_spec(**{"batch.jobTemplate.spec.template.spec.containers": containers})
    make_spec(
        **{"batch.jobTemplate.spec.template.spec.containers": [{**containers[0], "env": env[:4]}]}
    )


@pytest.mark.parametrize(
    "field",
    ["realtimeReplicaHourly", "batchPodHourly", "batchEfficiency", "operationsPerDay", "retryRate"],
)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_number_that_is_not_finite_is_refused_as_such(field: str, value: float) -> None:
    """Before, `.nan` was refused as "less than or equal to 1000000000" (NaN fails every
    bound), which sent the reader looking for a number too big."""
    with pytest.raises(ValidationError) as raised:
        make_spec(**{f"costs.{field}": value})
    [error] = raised.value.errors()
    assert error["loc"] == ("costs", field)
    assert error["msg"] == "Input should be a finite number"


def test_a_yaml_nan_in_a_cost_is_named_a_finite_number_by_explain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from placement.runtime.cli import main

    text = (Path(__file__).parents[2] / "examples" / "nightly-enrichment.yaml").read_text()
    path = tmp_path / "nan.yaml"
    path.write_text(text.replace("retryRate: 0.05", "retryRate: .nan"))
    assert main(["explain", str(path), "--replicas", "6", "--utilization", "0.15"]) == 1
    err = capsys.readouterr().err
    assert "spec.costs.retryRate: Input should be a finite number" in err
