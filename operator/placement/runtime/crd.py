"""Generate the WorkloadPlacement CRD from the pydantic models in `placement.core.api`.

kopf does not generate CRDs, and a hand-written copy drifts; so the models are the source and
this module turns their JSON schema into a Kubernetes *structural* schema: `$defs` inlined,
`Optional[X]` as a non-required X, no `title`, `exclusiveMinimum: n` as OpenAPI v3.0's
`minimum: n` + `exclusiveMinimum: true`, and open objects as
`x-kubernetes-preserve-unknown-fields` (only inside the job template, never on spec itself).
Descriptions, enums, bounds, patterns and CEL rules are kept.

    python -m placement.runtime.crd > crds/workloadplacements.placement.runplacement.io.yaml
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel

from placement.core.api import (
    GROUP,
    KIND,
    NAME_MAX_LENGTH,
    PLACEMENT_CEL,
    PLURAL,
    QUALIFIED_NAME_MAX_LENGTH,
    QUALIFIED_NAME_PATTERN,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    WorkloadPlacementSpec,
    WorkloadPlacementStatus,
)

CRD_NAME = f"{PLURAL}.{GROUP}"
CRD_FILE = f"crds/{CRD_NAME}.yaml"
HEADER = (
    "# Generated from operator/placement/core/api.py by `python -m placement.runtime.crd`; "
    "do not edit.\n"
)

Schema = dict[str, Any]

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Savings/Day", "type": "number", "jsonPath": ".status.decision.savingsPerDay"},
    {"name": "Owner", "type": "string", "jsonPath": ".spec.owner"},
    {"name": "Reason", "type": "string", "jsonPath": ".status.decision.reason", "priority": 1},
    {"name": "Target", "type": "string", "jsonPath": ".spec.target.deployment", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

# What a map key must be, said in words (a structural schema has no propertyNames: keys are
# checked by CEL).
_KEY_MESSAGES = {
    QUALIFIED_NAME_PATTERN: "keys must be label keys: an optional DNS subdomain prefix and "
    "'/', then at most 63 characters (letters, digits, '-', '_', '.'), alphanumeric at both ends",
}
# Status values the operator may add to in a later release (reasons, phases, actions,
# condition types): open strings in the CRD, so an older CRD, which `helm upgrade` never
# replaces, still accepts a newer operator's status. The operator uses its enums inside.
STATUS_ENUM_MAX_LENGTH = 128

# Keys listed first in every schema node, so the YAML reads top-down.
_LEADING_KEYS = ("type", "description")


class UnsupportedSchemaError(ValueError):
    """The models produced a JSON schema construct with no structural equivalent."""


def structural_schema(model: type[BaseModel]) -> Schema:
    """The model's validation JSON schema (by alias), rewritten as a structural schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions: Mapping[str, Schema] = raw.pop("$defs", {})
    return _convert(raw, definitions)


def _convert(node: Schema, definitions: Mapping[str, Schema]) -> Schema:
    node = _keys_as_cel(_inline(node, definitions))
    result: Schema = {}
    for key, value in node.items():
        if key == "title" or (key == "default" and value is None):
            continue
        if key == "properties":
            result[key] = {name: _convert(child, definitions) for name, child in value.items()}
        elif key == "items":
            result[key] = _convert(value, definitions)
        elif key == "additionalProperties":
            if value is True:
                result["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                result[key] = _convert(value, definitions)
            # False: a structural schema prunes unknown fields anyway, and forbids
            # additionalProperties next to properties.
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            # JSON Schema 2020-12 numeric form -> OpenAPI v3.0 boolean form.
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            result[bound] = value
            result[key] = True
        elif key in ("const", "oneOf", "not", "$ref", "allOf", "anyOf"):
            raise UnsupportedSchemaError(f"no structural form for {key!r} in {node!r}")
        else:
            result[key] = value
    return _ordered(result)


def _keys_as_cel(node: Schema) -> Schema:
    """A map whose keys have a schema (pydantic: patternProperties and propertyNames) as a
    structural map: additionalProperties for the values, a CEL rule for the keys."""
    if "patternProperties" not in node:
        return node
    node = dict(node)
    ((pattern, values),) = node.pop("patternProperties").items()
    names = node.pop("propertyNames", {})
    node["additionalProperties"] = values
    check = f"k.matches(r'{pattern}')"
    if "maxLength" in names:
        check = f"size(k) <= {names['maxLength']} && {check}"
    rule = {
        "rule": f"self.all(k, {check})",
        "message": _KEY_MESSAGES.get(pattern, f"every key must match {pattern}"),
    }
    node["x-kubernetes-validations"] = [*node.get("x-kubernetes-validations", []), rule]
    return node


def _open_enums(node: Schema) -> Schema:
    """Every `enum` under node replaced by a bounded string (see STATUS_ENUM_MAX_LENGTH)."""
    result: Schema = {}
    for key, value in node.items():
        if key == "enum":
            result.setdefault("maxLength", STATUS_ENUM_MAX_LENGTH)
        elif key in ("properties",):
            result[key] = {name: _open_enums(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            result[key] = _open_enums(value)
        else:
            result[key] = value
    return result


def _inline(node: Schema, definitions: Mapping[str, Schema]) -> Schema:
    """Replace $ref / single allOf / anyOf-with-null by the schema they point to.

    Keys next to the reference (description, default) win over the referenced definition's,
    so a field's description replaces the model's docstring.
    """
    siblings = dict(node)
    if "$ref" in siblings:
        target = definitions[siblings.pop("$ref").removeprefix("#/$defs/")]
    elif "allOf" in siblings and len(siblings["allOf"]) == 1:
        target = siblings.pop("allOf")[0]
    elif "anyOf" in siblings:
        options = [o for o in siblings.pop("anyOf") if o != {"type": "null"}]
        if len(options) != 1:
            raise UnsupportedSchemaError(f"anyOf with several types: {node!r}")
        target = options[0]
    else:
        return siblings
    return _inline({**_inline(target, definitions), **siblings}, definitions)


def _ordered(node: Schema) -> Schema:
    leading = {key: node[key] for key in _LEADING_KEYS if key in node}
    return leading | {key: value for key, value in node.items() if key not in leading}


def _conditions_as_map_list(status: Schema) -> Schema:
    # Server-side apply and strategic merges then treat conditions as keyed by type.
    conditions = status["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return status


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition (apiextensions.k8s.io/v1) as a plain dict."""
    spec = structural_schema(WorkloadPlacementSpec)
    status = _open_enums(_conditions_as_map_list(structural_schema(WorkloadPlacementStatus)))
    root: Schema = {
        "type": "object",
        "description": "WorkloadPlacement decides, per inference workload, whether its work "
        "stays on a realtime Deployment or moves to batch Jobs in a daily window, and shows "
        "every term of the savings.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "API version of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            # The API server owns ObjectMeta: only `name` and `generateName` may be described
            # here. `name` is declared so the root CEL rule can point its error at it.
            "metadata": {
                "type": "object",
                "properties": {
                    "name": {
                        "type": "string",
                        "description": "Name of the placement; at most "
                        f"{NAME_MAX_LENGTH} characters, as it labels the placement's Jobs.",
                    }
                },
            },
            "spec": spec,
            "status": status,
        },
        # WorkloadPlacement's own rules (metadata.name length): the root is the only node
        # whose CEL may read metadata.
        **PLACEMENT_CEL,
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["placement"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


# A CEL budget over a whole node (placement.core.api's *_BUDGET_CEL): its message says the cap.
_BUDGET_MESSAGE = re.compile(r"together must be at most (\d+) characters")
# JSON text of a number or a timestamp at most: -1.2345678901234567e-308, 2026-01-01T00:00:00Z.
_NUMBER_BYTES = 24
_DATE_TIME_BYTES = 40


def worst_case_json_bytes(node: Schema, bytes_per_character: int = 4) -> int:
    """The longest JSON text of a value the schema admits, from its bounds (maxLength,
    maxItems, maxProperties, enums) and CEL budgets; a character is up to 4 UTF-8 bytes.

    Fields kept by x-kubernetes-preserve-unknown-fields are not counted (no schema bounds
    them): the operator bounds the job template they live in (MAX_JOB_TEMPLATE_BYTES).
    """
    full = _worst(node, bytes_per_character)
    caps = [
        int(found.group(1))
        for rule in node.get("x-kubernetes-validations", [])
        if (found := _BUDGET_MESSAGE.search(rule["message"]))
    ]
    if not caps:
        return full
    # Under a budget the characters are shared: the structure, plus the budget's characters.
    return min(full, _worst(node, 0) + min(caps) * bytes_per_character)


def _worst(node: Schema, per_character: int) -> int:
    kind = node.get("type")
    if kind == "string":
        if "enum" in node:
            return 2 + max(len(str(value)) for value in node["enum"])
        if node.get("format") == "date-time":
            return _DATE_TIME_BYTES
        return 2 + int(node["maxLength"]) * per_character
    if kind in ("integer", "number"):
        return _NUMBER_BYTES
    if kind == "boolean":
        return len("false")
    if kind == "array":
        item = worst_case_json_bytes(node["items"], per_character)
        return 2 + int(node["maxItems"]) * (item + 1)
    if kind == "object":
        total = 2
        for name, child in node.get("properties", {}).items():
            total += len(name) + 4 + worst_case_json_bytes(child, per_character)
        values = node.get("additionalProperties")
        if isinstance(values, dict):
            key = 2 + QUALIFIED_NAME_MAX_LENGTH * per_character
            value = worst_case_json_bytes(values, per_character)
            total += int(node["maxProperties"]) * (key + 2 + value)
        return total
    raise UnsupportedSchemaError(f"no worst case for {node!r}")


class _NoAliasDumper(yaml.SafeDumper):
    """Writes a node shared by two places twice: anchors and aliases (`&id001`, `*id001`)
    are refused or misread by some tools that read CRDs, and hard for people to read."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_crd_yaml() -> str:
    """The CRD as YAML, byte-for-byte stable for the same models (checked in under crds/)."""
    body = yaml.dump(
        build_crd(),
        Dumper=_NoAliasDumper,
        sort_keys=False,
        default_flow_style=False,
        width=100,
    )
    return HEADER + body


def main() -> int:
    sys.stdout.write(render_crd_yaml())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
