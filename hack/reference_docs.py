"""Render the generated parts of docs/reference.md from the code, or check they are current.

    python hack/reference_docs.py           # rewrite the generated blocks in docs/reference.md
    python hack/reference_docs.py --check   # exit 1 if they drifted (tests/unit runs this)

Each block sits between `<!-- BEGIN GENERATED: name -->` and `<!-- END GENERATED: name -->`;
everything outside the blocks is written by hand. Sources: the CRD built from the pydantic
models (crd.build_crd), the Event reasons (reasons.Reason, with the table below, which must
name every member), the operator's metrics (telemetry.Telemetry), the chart's values.yaml
(its `# --` comments) and `placement <command> --help`.
"""

# ruff: noqa: E501  (the Event table is prose, one entry a line)
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from placement.adapters.telemetry import PerPlacementGauge, Telemetry  # noqa: E402
from placement.core.reasons import Reason  # noqa: E402
from placement.runtime import cli, crd  # noqa: E402

REFERENCE = ROOT / "docs" / "reference.md"
VALUES = ROOT / "charts" / "placement-operator" / "values.yaml"

# Every Event reason: its Event type and what it means. A test fails when a Reason is missing.
EVENTS: dict[Reason, tuple[str, str]] = {
    Reason.STAY_REALTIME: (
        "Normal",
        "`latency.userVisible` is true: a user waits on every answer, so the work stays realtime whatever batch would save.",
    ),
    Reason.OWNER_MISSING: (
        "Normal",
        "`spec.owner` is empty: nobody owns the batch path, so the operator never acts.",
    ),
    Reason.DELAY_NOT_TOLERATED: (
        "Normal",
        "The wait until the batch window ends is longer than `latency.acceptableDelay` (now; it moves later in the day).",
    ),
    Reason.SAVINGS_NEGATIVE: (
        "Normal",
        "Savings are at or below `costs.savingsMargin` (or below 0 while in batch): batch does not pay.",
    ),
    Reason.WINDOW_TOO_SHORT: (
        "Normal",
        "Even the shortest hold's forecast batch pod-hours do not fit the window on the pods that may run in parallel (with the 0.8 margin, 0.9 on steady load), or the hold taken no longer fits the whole window.",
    ),
    Reason.HOLD_PLANNED: (
        "Normal",
        "Batch pays, but the planned hold (`status.batch.plannedHold`) holds fewer hours than `acceptableDelay` allows, because a longer hold's forecast work would not fit the window or would save less: realtime until it starts (Enforce only; a recommendation is not flipped by the hour).",
    ),
    Reason.BATCH_RECOMMENDED: (
        "Normal",
        "Batch pays and every gate passes, but `mode` is Recommend or `productRisk` is High: decided and recorded, nothing changed.",
    ),
    Reason.MOVED_TO_BATCH: (
        "Normal",
        "Enforce: the Deployment was scaled to `target.warmReplicas` (the window's Job created first when inside the window).",
    ),
    Reason.BATCH_JOB_CREATED: (
        "Normal",
        "The window's Job was created while the Deployment was already held.",
    ),
    Reason.BATCH_SUCCEEDED: ("Normal", "The window's Job succeeded."),
    Reason.BATCH_JOB_FAILED: (
        "Warning",
        "The window's Job failed; it may still be retried until `batch.retryWindow` has passed, then the fallback runs.",
    ),
    Reason.BATCH_WINDOW_MISSED: (
        "Warning",
        "The window ended without a successful Job; with `fallback.action: Alert` this is the fallback (replicas left as they are).",
    ),
    Reason.KUEUE_NOT_ADMITTED: (
        "Warning",
        "The window ended with its Job still suspended: Kueue did not admit it from `batch.queueName` (no quota, or the queue is stopped); the fallback runs as for a missed window, and with `RestoreRealtime` the suspended Job is deleted so Kueue cannot start it late on work realtime serves.",
    ),
    Reason.BACKLOG_WILL_MISS_WINDOW: (
        "Warning",
        "Held, and the backlog projected from `metrics.demand` and `metrics.queueDepth` (work waiting plus work still arriving, as batch pod-hours) no longer fits the window (arrivals counted from the planned hold's start; not projected between two holds, when the plan ends the hold instead): realtime restored before the window is missed (phase Fallback until the window ends); with `fallback.action: Alert` only this Warning. The message has the numbers.",
    ),
    Reason.FALLBACK_RESTORED: (
        "Warning",
        "`fallback.action: RestoreRealtime`: the original replicas were restored after a failed Job or a missed window; phase Fallback until the next window.",
    ),
    Reason.RESTORED: (
        "Normal",
        "The original replicas were given back: a planned hold ended with its window and the next one starts later (the message says `the planned hold ended` and when the next starts; a next hold that starts right away is held on into without a restore), a gate now says realtime, the placement was deleted or retargeted.",
    ),
    Reason.METRICS_UNAVAILABLE: (
        "Warning",
        "The utilization query gave no usable number (empty, several series, NaN, out of range, stale, error, timeout): nothing is scaled.",
    ),
    Reason.TARGET_MISSING: (
        "Warning",
        "The target Deployment does not exist: phase Blocked, nothing touched.",
    ),
    Reason.CONFLICTING_AUTOSCALER: (
        "Warning",
        "An HPA, a KEDA ScaledObject, another placement or its leftover hold annotations also scale the Deployment: phase Blocked, nothing scaled. Also a ScaledObject with the name the placement's would have that is not its own (no or another placement label), whatever it scales: never applied over; already async, the replicas are given back.",
    ),
    Reason.BATCH_JOB_REJECTED: (
        "Warning",
        "The API server refused the window's Job (or its server-side dry run): the replicas stay where they are, phase Blocked.",
    ),
    Reason.MANUAL_OVERRIDE: (
        "Warning",
        "The held Deployment was changed outside the operator: phase Blocked, no further writes until the spec changes.",
    ),
    Reason.INVALID_SPEC: (
        "Warning",
        "What only the operator can check is wrong (an unknown time zone, a query naming another namespace): phase Blocked, nothing done.",
    ),
    Reason.RECOVERED: (
        "Normal",
        "After a restart, a hold was found in the Deployment's annotations but not in status; the operator continues from it.",
    ),
    Reason.MOVED_TO_ASYNC: (
        "Normal",
        "Async pays most and every gate passes: the original replicas are recorded on the Deployment and a KEDA ScaledObject `placement-<name>` now scales it between warmReplicas and them on the queue (`spec.async.queue`). Also kept while in async.",
    ),
    Reason.ASYNC_RECOMMENDED: (
        "Normal",
        "Async pays most and every gate passes, but `mode` is Recommend or `productRisk` is High: decided and recorded, nothing changed.",
    ),
    Reason.ASYNC_NEEDS_KEDA: (
        "Normal",
        "Async would pay, but KEDA's ScaledObject CRD is not served in the cluster: the placement stays realtime (or batch, if that pays).",
    ),
    Reason.LEFT_ASYNC: (
        "Normal",
        "The operator's ScaledObject was deleted and the recorded replicas restored: a gate failed, async lost money, or mode Recommend / productRisk High; the message names which.",
    ),
    Reason.SCALE_UP_TOO_SLOW: (
        "Normal",
        "Async would pay, but `latency.acceptableDelay` is not longer than `spec.async.scaleUpTime`: a request arriving at an empty fleet would wait too long.",
    ),
    Reason.ASYNC_QUEUE_UNAVAILABLE: (
        "Warning",
        "Async would pay, but `spec.async.queue` returned no usable sample (to move, a sample is needed; in async, an empty result counts as an empty queue, a failed query leaves async).",
    ),
    Reason.SCALED_OBJECT_REJECTED: (
        "Warning",
        "The API server or KEDA's admission webhook refused the ScaledObject. Moving: the hold is given back and nothing scaled, phase Blocked. Already async: the ScaledObject in place goes on; with none in place, the recorded replicas are given back (nothing else would scale the Deployment up from where KEDA left it), phase Blocked.",
    ),
}


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _type_of(node: dict[str, Any]) -> str:
    kind = str(node.get("type", "object"))
    if kind == "array":
        kind = f"[]{_type_of(node.get('items', {}))}"
    if "enum" in node:
        kind = " \\| ".join(f"`{value}`" for value in node["enum"])
    return kind


def _bounds(node: dict[str, Any]) -> str:
    parts = []
    for key, symbol in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
        ("minLength", "length >="),
        ("maxLength", "length <="),
        ("maxItems", "items <="),
    ):
        if key in node and not isinstance(node[key], bool):
            parts.append(f"{symbol} {node[key]}")
    if node.get("pattern"):
        parts.append(f"pattern `{node['pattern']}`")
    return ", ".join(parts)


def _fields(node: dict[str, Any], path: str, required: bool, rows: list[str]) -> None:
    default = node.get("default")
    rows.append(
        f"| `{path}` | {_type_of(node)} | {'yes' if required else ''} | "
        f"{'' if default is None else '`' + json.dumps(default) + '`'} | "
        f"{_cell(_bounds(node))} | {_cell(str(node.get('description', '')))} |"
    )
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return  # a Kubernetes type (jobTemplate): see its own API reference
    children = node.get("properties") or node.get("items", {}).get("properties") or {}
    needed = set(node.get("required") or node.get("items", {}).get("required") or [])
    suffix = "[]" if node.get("type") == "array" else ""
    for name, child in children.items():
        _fields(child, f"{path}{suffix}.{name}", name in needed, rows)


def crd_fields() -> str:
    schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rows = [
        "| field | type | required | default | bounds | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for part in ("spec", "status"):
        _fields(schema["properties"][part], part, part == "spec", rows)
    return "\n".join(rows)


def events() -> str:
    missing = set(Reason) - set(EVENTS)
    if missing:
        raise SystemExit(f"hack/reference_docs.py: describe the reasons {sorted(missing)}")
    rows = ["| reason | type | meaning |", "|---|---|---|"]
    rows += [
        f"| `{reason}` | {kind} | {_cell(meaning)} |" for reason, (kind, meaning) in EVENTS.items()
    ]
    return "\n".join(rows)


def metrics() -> str:
    from prometheus_client.metrics import MetricWrapperBase

    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for wrapper in vars(Telemetry()).values():
        if isinstance(wrapper, PerPlacementGauge):
            labels = ", ".join(f"`{label}`" for label in wrapper.labelnames)
            rows.append(f"| `{wrapper.name}` | gauge | {labels} | {_cell(wrapper.documentation)} |")
            continue
        if not isinstance(wrapper, MetricWrapperBase):
            continue
        name = wrapper._name + ("_total" if wrapper._type == "counter" else "")
        labels = ", ".join(f"`{label}`" for label in wrapper._labelnames)
        rows.append(f"| `{name}` | {wrapper._type} | {labels} | {_cell(wrapper._documentation)} |")
    return "\n".join(rows)


def _documented_values(text: str) -> list[tuple[str, str]]:
    """(key path, description) for every key with a `# --` comment above it, in file order."""
    found: list[tuple[str, str]] = []
    path: list[str] = []
    comment: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            comment = [stripped[4:].strip()]
            continue
        if stripped.startswith("#") and comment is not None:
            comment.append(stripped.lstrip("#").strip())
            continue
        if stripped.startswith("#") or not stripped:
            comment = None
            continue
        match = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
        if match is None:
            comment = None
            continue
        path = [*path[: len(match.group(1)) // 2], match.group(2)]
        if comment is not None:
            found.append((".".join(path), " ".join(comment)))
        comment = None
    return found


def helm_values() -> str:
    text = VALUES.read_text()
    values = yaml.safe_load(text)
    rows = ["| value | default | meaning |", "|---|---|---|"]
    for key, description in _documented_values(text):
        node: Any = values
        for part in key.split("."):
            node = node[part]
        default = json.dumps(node)
        rows.append(f"| `{key}` | `{_cell(default)}` | {_cell(description)} |")
    return "\n".join(rows)


def cli_help() -> str:
    os.environ["COLUMNS"] = "100"
    blocks = []
    for command in (
        ["run"],
        ["explain"],
        ["replay"],
        ["series", "from-trace"],
        ["series", "from-prometheus"],
        ["crd"],
    ):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            cli.main([*command, "--help"])
        blocks.append(
            f"### placement {' '.join(command)}\n\n```text\n{out.getvalue().rstrip()}\n```"
        )
    return "\n\n".join(blocks)


SECTIONS = {
    "crd-fields": crd_fields,
    "events": events,
    "metrics": metrics,
    "helm-values": helm_values,
    "cli": cli_help,
}


def render(document: str) -> str:
    for name, build in SECTIONS.items():
        begin, end = f"<!-- BEGIN GENERATED: {name} -->", f"<!-- END GENERATED: {name} -->"
        if begin not in document or end not in document:
            raise SystemExit(f"{REFERENCE}: the markers of section {name!r} are missing")
        head, rest = document.split(begin, 1)
        _, tail = rest.split(end, 1)
        document = f"{head}{begin}\n{build()}\n{end}{tail}"
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/reference.md drifted")
    args = parser.parse_args(argv)
    current = REFERENCE.read_text()
    rendered = render(current)
    if args.check:
        if rendered != current:
            print("docs/reference.md drifted from the code: run `make docs`", file=sys.stderr)
            return 1
        return 0
    REFERENCE.write_text(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
