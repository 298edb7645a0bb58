"""The generated CRD: committed copy in sync, structural, and as strict as the models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from placement.core import api
from placement.runtime.crd import CRD_FILE, build_crd, render_crd_yaml, worst_case_json_bytes

REPO = Path(__file__).resolve().parents[2]
Node = dict[str, Any]


@pytest.fixture(scope="module")
def crd() -> Node:
    return build_crd()


@pytest.fixture(scope="module")
def root(crd: Node) -> Node:
    schema: Node = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _walk(node: Node, path: str = "") -> Iterator[tuple[str, Node]]:
    """Every schema node with its dotted path."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_committed_crd_matches_the_models() -> None:
    committed = (REPO / CRD_FILE).read_text()
    assert render_crd_yaml() == committed, (
        "crds/ drifted from operator/placement/core/api.py: run "
        f"`python -m placement.runtime.crd > {CRD_FILE}` and commit the result"
    )


def test_rendering_is_deterministic() -> None:
    assert render_crd_yaml() == render_crd_yaml()
    assert yaml.safe_load(render_crd_yaml()) == build_crd()


def test_names_and_scope(crd: Node) -> None:
    assert crd["metadata"]["name"] == "workloadplacements.placement.runplacement.io"
    spec = crd["spec"]
    assert spec["group"] == "placement.runplacement.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "WorkloadPlacement"
    assert spec["names"]["plural"] == "workloadplacements"
    assert spec["names"]["shortNames"] == ["wp"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}


def test_printer_columns(crd: Node) -> None:
    columns = {c["name"].upper(): c for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns["MODE"]["jsonPath"] == ".spec.mode"
    assert columns["PHASE"]["jsonPath"] == ".status.phase"
    assert columns["SAVINGS/DAY"]["jsonPath"] == ".status.decision.savingsPerDay"
    assert columns["SAVINGS/DAY"]["type"] == "number"
    assert columns["OWNER"]["jsonPath"] == ".spec.owner"
    assert columns["AGE"] == {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
    }


def test_schema_is_structural(root: Node) -> None:
    forbidden = {"$ref", "$defs", "anyOf", "allOf", "oneOf", "not", "const", "title"}
    for path, node in _walk(root):
        assert not forbidden & node.keys(), f"{path}: {forbidden & node.keys()}"
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        if "properties" in node:
            assert node.get("additionalProperties") is None, path
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            if bound in node:
                assert node[bound] is True, f"{path}: OpenAPI v3.0 wants a boolean {bound}"
        if "default" in node:
            assert node["default"] is not None, path


def test_every_field_has_a_description(root: Node) -> None:
    for path, node in _walk(root):
        if path in ("", ".metadata") or path.endswith(("[]", "{}")):
            continue  # the API server owns metadata; list items and map values are described
        assert node.get("description"), f"{path} has no description (kubectl explain)"


def test_open_objects_only_inside_the_job_template(root: Node) -> None:
    spec = root["properties"]["spec"]
    assert "x-kubernetes-preserve-unknown-fields" not in spec
    open_paths = [
        path for path, node in _walk(root) if node.get("x-kubernetes-preserve-unknown-fields")
    ]
    assert open_paths, "the Job and pod specs should pass unknown fields through"
    for path in open_paths:
        assert path.startswith(".spec.batch.jobTemplate.spec"), path


def test_strings_and_lists_are_bounded_for_cel_cost(root: Node) -> None:
    for path, node in _walk(root["properties"]["spec"], ".spec"):
        if path.endswith(".annotations{}"):
            continue  # values may be large, and no CEL rule reads them
        if node.get("type") == "string" and "enum" not in node and node.get("format") is None:
            assert "maxLength" in node, path
        if node.get("type") == "array":
            assert "maxItems" in node, path


def test_defaults_and_bounds(root: Node) -> None:
    spec = root["properties"]["spec"]["properties"]
    assert spec["mode"]["default"] == "Recommend"
    assert spec["mode"]["enum"] == ["Recommend", "Enforce"]
    assert spec["productRisk"]["default"] == "Medium"
    assert spec["evaluationInterval"]["default"] == "5m"
    costs = spec["costs"]["properties"]
    assert costs["retryRate"] == {
        "type": "number",
        "description": costs["retryRate"]["description"],
        "default": 0,
        "minimum": 0,
        "maximum": 1,
        "exclusiveMaximum": True,
    }
    # Bounded on both sides so the formula stays finite (found by tests/unit/test_fuzz.py).
    assert (costs["batchEfficiency"]["minimum"], costs["batchEfficiency"]["maximum"]) == (1e-6, 1e6)
    assert "exclusiveMinimum" not in costs["batchEfficiency"]
    assert costs["realtimeReplicaHourly"]["maximum"] == 1e9
    assert costs["operationsPerDay"]["maximum"] == 1e12
    assert set(spec["costs"]["required"]) == {
        "realtimeReplicaHourly",
        "batchPodHourly",
        "batchEfficiency",
    }
    assert root["properties"]["spec"]["required"] == [
        "target",
        "latency",
        "batch",
        "costs",
        "metrics",
    ]
    pod_spec = spec["batch"]["properties"]["jobTemplate"]["properties"]["spec"]["properties"][
        "template"
    ]["properties"]["spec"]
    assert pod_spec["required"] == ["containers"]
    assert pod_spec["properties"]["containers"]["minItems"] == 1


def test_optional_fields_are_just_not_required(root: Node) -> None:
    batch = root["properties"]["spec"]["properties"]["batch"]
    assert "queueName" not in batch["required"]
    assert batch["properties"]["queueName"]["type"] == "string"


def _cel_rules(node: Node) -> list[str]:
    return [rule["rule"] for rule in node.get("x-kubernetes-validations", [])]


def test_cross_field_rules_are_cel_too(root: Node) -> None:
    spec = root["properties"]["spec"]["properties"]
    assert _cel_rules(spec["batch"]["properties"]["window"]) == ["self.start != self.end"]
    assert any("queueName" in rule for rule in _cel_rules(spec["batch"]))
    interval_rules = spec["evaluationInterval"]["x-kubernetes-validations"]
    assert interval_rules[0]["rule"] == "self.matches('[1-9]')"
    assert [rule["message"] for rule in interval_rules] == [
        "must be longer than 0s",
        "must be at most 1d",
    ]
    lookback_rules = spec["metrics"]["properties"]["lookback"]["x-kubernetes-validations"]
    assert [rule["message"] for rule in lookback_rules] == [
        "must be at least 1m",
        "must be at most 30d",
    ]
    for _, node in _walk(root):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["message"], "every CEL rule says what is wrong"


def _models_with_cross_field_rules() -> list[type[BaseModel]]:
    return [
        value
        for value in vars(api).values()
        if isinstance(value, type)
        and issubclass(value, BaseModel)
        and value.__module__ == api.__name__
        and value.__pydantic_decorators__.model_validators
    ]


def test_cross_field_rules_were_found() -> None:
    names = {model.__name__ for model in _models_with_cross_field_rules()}
    assert {"BatchWindow", "BatchSpec", "WorkloadPlacement"} <= names


def _crd_rules(root: Node) -> list[str]:
    return [rule for _, node in _walk(root) for rule in _cel_rules(node)]


@pytest.mark.parametrize(
    "model", _models_with_cross_field_rules(), ids=lambda model: model.__name__
)
def test_every_model_validator_has_a_cel_twin(model: type[BaseModel], root: Node) -> None:
    # A rule only pydantic knows lets `kubectl apply` accept what the operator then rejects.
    rules = _cel_rules(model.model_json_schema(by_alias=True))
    assert rules, f"{model.__name__} has no CEL rule"
    missing = set(rules) - set(_crd_rules(root))
    assert not missing, f"{model.__name__}'s rules {missing} are not in the CRD"


def test_placement_names_that_cannot_label_a_job_are_refused(root: Node) -> None:
    # Only the root may read metadata in CEL; the message names the field.
    (rule,) = root["x-kubernetes-validations"]
    assert rule["rule"] == "size(self.metadata.name) <= 63"
    assert rule["message"].startswith("metadata.name must be at most 63 characters")
    assert rule["fieldPath"] == ".metadata.name"
    # The API server owns metadata: only name (or generateName) may be described, and the
    # fieldPath must resolve to a declared property.
    metadata = root["properties"]["metadata"]
    assert set(metadata["properties"]) == {"name"}
    assert metadata["properties"]["name"]["type"] == "string"


def test_status_is_structural_with_keyed_conditions(root: Node) -> None:
    status = root["properties"]["status"]
    assert "x-kubernetes-preserve-unknown-fields" not in status
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert status["properties"]["history"]["maxItems"] == api.HISTORY_LIMIT
    decision = status["properties"]["decision"]["properties"]
    assert set(decision["breakdown"]["properties"]) == {
        "capacityAvoided",
        "batchProcessing",
        "dataStaging",
        "retries",
        "operations",
        "missedWindowRisk",
    }
    assert decision["evaluatedAt"]["format"] == "date-time"


def test_ready_column_shows_the_ready_condition(crd: Node) -> None:
    columns = {c["name"]: c for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


def test_the_committed_crd_has_no_yaml_anchors_or_aliases() -> None:
    committed = (REPO / CRD_FILE).read_text()
    for event in yaml.parse(committed):
        assert getattr(event, "anchor", None) is None, f"anchor or alias at {event.start_mark}"


def test_status_values_a_newer_operator_may_add_are_open_strings(root: Node) -> None:
    # `helm upgrade` never upgrades a CRD: an enum of reasons or phases would refuse the
    # status of an operator that added one.
    status = root["properties"]["status"]
    for path, node in _walk(status, ".status"):
        assert "enum" not in node, path
    properties = status["properties"]
    for node in (
        properties["phase"],
        properties["decision"]["properties"]["reason"],
        properties["decision"]["properties"]["action"],
        properties["history"]["items"]["properties"]["reason"],
        properties["conditions"]["items"]["properties"]["type"],
    ):
        assert node["type"] == "string" and node["maxLength"] <= 128


def test_time_zones_are_checked_against_tzdata_at_apply(root: Node) -> None:
    zone = root["properties"]["spec"]["properties"]["batch"]["properties"]["window"]["properties"][
        "timeZone"
    ]
    (rule,) = zone["x-kubernetes-validations"]
    assert "'Europe/Berlin'" in rule["rule"] and "'UTC'" in rule["rule"]
    for not_a_place in ("Factory", "localtime", "posixrules", "Etc/GMT+14"):
        assert f"'{not_a_place}'" not in rule["rule"]


def test_job_integer_fields_are_bounded_like_the_job_api(root: Node) -> None:
    job_spec = root["properties"]["spec"]["properties"]["batch"]["properties"]["jobTemplate"][
        "properties"
    ]["spec"]["properties"]
    for name in ("parallelism", "completions", "backoffLimit", "ttlSecondsAfterFinished"):
        assert job_spec[name]["maximum"] == 2**31 - 1, name
    assert job_spec["activeDeadlineSeconds"]["maximum"] == 2**63 - 1


def test_the_largest_spec_the_crd_declares_stays_far_below_etcds_object_limit(root: Node) -> None:
    # kopf once copied the spec into an annotation (all annotations: 256 KB at most); it now
    # keeps a digest (placement.runtime.diffbase). The declared fields stay bounded anyway, well
    # under etcd's 1.5 MiB request limit with room for status.
    spec = root["properties"]["spec"]
    ascii_text = worst_case_json_bytes(spec, bytes_per_character=1)
    utf8_text = worst_case_json_bytes(spec, bytes_per_character=4)
    assert ascii_text <= 96 * 1024, ascii_text
    assert utf8_text <= 512 * 1024, utf8_text
    template = spec["properties"]["batch"]["properties"]["jobTemplate"]
    # What the CRD declares of the template fits the operator's own bound on the template.
    assert worst_case_json_bytes(template, bytes_per_character=1) <= api.MAX_JOB_TEMPLATE_BYTES


def test_worst_case_counts_budgets_not_the_product_of_bounds() -> None:
    words: Node = {"type": "array", "maxItems": 100, "items": {"type": "string", "maxLength": 100}}
    assert worst_case_json_bytes(words, bytes_per_character=1) == 2 + 100 * (2 + 100 + 1)
    budget = {"rule": "...", "message": "words together must be at most 50 characters"}
    capped = {**words, "x-kubernetes-validations": [budget]}
    assert worst_case_json_bytes(capped, bytes_per_character=1) == 2 + 100 * 3 + 50
