"""Builders for the pure-core tests: the docs/design.md example placement and variations."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from placement.core.api import WorkloadPlacementSpec

# The docs/design.md example: 4 replicas at 1.025/h, useful utilization 0.44896 ->
# "saves 41.20 USD/day = capacity avoided 98.40 - batch 43.10 - staging 4.10 - retries 2.00
#  - operations 8.00 - missed windows 0.00" (retries 43.10 * 0.0464 = 2.00). acceptableDelay
# 24h holds the Deployment all day, which is what docs/design.md's formula assumes (24 held hours).
EXAMPLE_UTILIZATION = 0.44896


def example_manifest() -> dict[str, Any]:
    return {
        "apiVersion": "placement.runplacement.io/v1alpha1",
        "kind": "WorkloadPlacement",
        "metadata": {"name": "summarizer", "namespace": "ml"},
        "spec": {
            "owner": "team-ml",
            "mode": "Enforce",
            "productRisk": "Medium",
            "target": {"deployment": "summarizer", "warmReplicas": 0},
            "latency": {"userVisible": False, "acceptableDelay": "24h"},
            "batch": {
                # 01:00-05:00 in UTC keeps the arithmetic of most tests obvious.
                "window": {"start": "01:00", "end": "05:00", "timeZone": "UTC"},
                "retryWindow": "1h",
                "jobTemplate": {
                    "spec": {
                        "parallelism": 8,
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [{"name": "summarize", "image": "example/batch:1.0"}],
                            }
                        },
                    }
                },
            },
            "costs": {
                "currency": "USD",
                "realtimeReplicaHourly": 1.025,
                "batchPodHourly": 2.0,
                "batchEfficiency": 2.0,
                "dataStagingPerRun": 4.10,
                "operationsPerDay": 8.0,
                "retryRate": 0.0464,
            },
            "metrics": {"utilization": "avg_over_time(summarizer:useful_utilization[1h])"},
        },
    }


DELETE = object()  # as a value in spec_dict(...): remove that key


def _set_path(document: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = document
    for key in parents:
        node = node.setdefault(key, {})
    if value is DELETE:
        node.pop(leaf, None)
    else:
        node[leaf] = value


def spec_dict(**changes: Any) -> dict[str, Any]:
    """The example spec with dotted-path changes: spec_dict(**{"costs.retryRate": 0.1})."""
    spec: dict[str, Any] = copy.deepcopy(example_manifest()["spec"])
    for path, value in changes.items():
        _set_path(spec, path, value)
    return spec


def make_spec(**changes: Any) -> WorkloadPlacementSpec:
    return WorkloadPlacementSpec.model_validate(spec_dict(**changes))


def ramped_load(moment: datetime) -> float:
    """A day of utilization with a quiet morning and a busy evening: 0.1 from 05:00 to 13:00,
    0.9 from 17:00 to 01:00, ramps of four hours between."""
    hour = moment.hour + moment.minute / 60
    if 5 <= hour < 13:
        return 0.1
    if 13 <= hour < 17:
        return 0.1 + 0.2 * (hour - 13)
    if hour >= 17 or hour < 1:
        return 0.9
    return 0.9 - 0.2 * (hour - 1)
