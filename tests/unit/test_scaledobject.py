"""The ScaledObject an async placement hands its Deployment to: what KEDA will do with it."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from placement.core.labels import PLACEMENT_LABEL
from placement.core.scaledobject import (
    cooldown_period,
    polling_interval,
    scaled_object_manifest,
    scaled_object_name,
)
from placement.core.tenancy import scope_to_namespace

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PROMETHEUS = "http://prometheus.monitoring:9090"


def manifest(**changes: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "placement": "summarizer",
        "namespace": "ml",
        "deployment": "summarizer",
        "query": 'sum(queue_depth{namespace="ml"})',
        "queue_per_replica": 10.0,
        "min_replicas": 0,
        "max_replicas": 4,
        "acceptable_delay": timedelta(minutes=5),
        "prometheus_url": PROMETHEUS,
    }
    return scaled_object_manifest(**(arguments | changes))


def test_the_scaled_object_scales_the_deployment_between_warm_and_original_replicas() -> None:
    scaled = manifest(min_replicas=1, max_replicas=6)
    assert scaled["apiVersion"] == "keda.sh/v1alpha1" and scaled["kind"] == "ScaledObject"
    assert scaled["metadata"] == {
        "name": "placement-summarizer",
        "namespace": "ml",
        "labels": {PLACEMENT_LABEL: "summarizer"},
    }
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "summarizer",
    }
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 6)
    # Prometheus failing: the original replicas, never fewer.
    assert spec["fallback"] == {"failureThreshold": 3, "replicas": 6}
    assert spec["advanced"] == {"restoreToOriginalReplicaCount": True}
    [trigger] = spec["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"] == {
        "serverAddress": PROMETHEUS,
        "query": 'sum(queue_depth{namespace="ml"})',
        "threshold": "10",
        "activationThreshold": "0",
    }


def test_warm_replicas_zero_is_scale_to_zero() -> None:
    assert manifest(min_replicas=0)["spec"]["minReplicaCount"] == 0


def test_counts_keda_would_refuse_are_brought_within_its_bounds() -> None:
    spec = manifest(min_replicas=3, max_replicas=2)["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (3, 3)
    spec = manifest(min_replicas=-1, max_replicas=0)["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 1)


def test_the_trigger_carries_the_query_scoped_to_the_placements_namespace() -> None:
    written = "sum(inference_queue_depth)"
    scoped = scope_to_namespace(written, "ml", field="spec.async.queue")
    query = manifest(query=scoped)["spec"]["triggers"][0]["metadata"]["query"]
    assert query == scoped
    assert 'namespace="ml"' in query and query != written


@pytest.mark.parametrize(
    ("per_replica", "threshold"),
    [(10.0, "10"), (2.5, "2.5"), (1e6, "1000000"), (0.001, "0.001")],
)
def test_the_threshold_is_queue_per_replica_as_plain_decimal(
    per_replica: float, threshold: str
) -> None:
    metadata = manifest(queue_per_replica=per_replica)["spec"]["triggers"][0]["metadata"]
    assert metadata["threshold"] == threshold


@pytest.mark.parametrize("per_replica", [0.0, -1.0, float("nan"), float("inf")])
def test_a_queue_per_replica_keda_cannot_use_is_refused_by_name(per_replica: float) -> None:
    with pytest.raises(ValueError, match=r"async\.queuePerReplica"):
        manifest(queue_per_replica=per_replica)


@pytest.mark.parametrize(
    ("delay", "polling", "cooldown"),
    [
        (timedelta(seconds=20), 5, 30),  # both at their floors
        (timedelta(minutes=5), 30, 300),
        (timedelta(seconds=95), 10, 95),  # 9.5 s rounds up to whole seconds
        (timedelta(hours=2), 60, 3600),  # both at their ceilings
        (timedelta(days=7), 60, 3600),
    ],
)
def test_polling_and_cooldown_follow_acceptable_delay(
    delay: timedelta, polling: int, cooldown: int
) -> None:
    assert polling_interval(delay) == timedelta(seconds=polling)
    assert cooldown_period(delay) == timedelta(seconds=cooldown)
    spec = manifest(acceptable_delay=delay)["spec"]
    assert (spec["pollingInterval"], spec["cooldownPeriod"]) == (polling, cooldown)


def test_names_are_dns_labels_deterministic_and_distinct() -> None:
    long_a = "a" * 60 + "xyz"
    long_b = "a" * 60 + "xyw"
    names = [scaled_object_name(n) for n in ("summarizer", long_a, long_b, "team.summarizer")]
    assert names[0] == "placement-summarizer"
    for name in names:
        assert len(name) <= 63 and DNS_LABEL.match(name), name
    assert len(set(names)) == len(names)
    assert scaled_object_name(long_a) == scaled_object_name(long_a)
    assert scaled_object_name("team.summarizer").startswith("placement-team-summarizer-")
