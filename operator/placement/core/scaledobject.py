"""The KEDA ScaledObject the operator owns for a placement in async. Pure.

A minimal version so the async plan can be built and tested; the KEDA adapter's branch
replaces it (same signature). Polling and cooldown follow acceptableDelay: KEDA must notice a
queue well within it (pollingInterval a tenth of it, 5s to 60s), and an empty queue scales the
fleet down after half of it (cooldownPeriod, 30s to 5m).
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

from placement.core.labels import PLACEMENT_LABEL

NAME_PREFIX = "placement-"
NAME_MAX = 63  # KEDA copies the name into a label value
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def scaled_object_name(placement: str) -> str:
    """'placement-<placement>', a valid DNS label: a longer or dotted name is cut and given a
    short hash of the full one (the same rule as the KEDA adapter's version of this module)."""
    name = NAME_PREFIX + placement
    cleaned = _NOT_DNS.sub("-", name.lower())
    if cleaned == name and len(name) <= NAME_MAX:
        return name
    digest = hashlib.sha256(placement.encode()).hexdigest()[:8]
    return f"{cleaned[: NAME_MAX - len(digest) - 1].rstrip('-')}-{digest}"


def _seconds(value: timedelta, fraction: float, low: int, high: int) -> int:
    return int(min(max(value.total_seconds() * fraction, low), high))


def scaled_object_manifest(
    *,
    placement: str,
    namespace: str,
    deployment: str,
    query: str,
    queue_per_replica: float,
    min_replicas: int,
    max_replicas: int,
    acceptable_delay: timedelta,
    prometheus_url: str,
) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {
            "name": scaled_object_name(placement),
            "namespace": namespace,
            "labels": {PLACEMENT_LABEL: placement},
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicaCount": min_replicas,
            "maxReplicaCount": max(max_replicas, min_replicas),
            "pollingInterval": _seconds(acceptable_delay, 0.1, 5, 60),
            "cooldownPeriod": _seconds(acceptable_delay, 0.5, 30, 300),
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": prometheus_url,
                        "query": query,
                        "threshold": f"{queue_per_replica:g}",
                    },
                }
            ],
        },
    }
