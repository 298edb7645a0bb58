"""Only the ScaledObject the operator made for a placement (found by its label) and the HPA
KEDA makes for that one are left out of the conflicts on the target. One that merely has the
name (placement-<name>, keda-hpa-placement-<name>) is someone else's autoscaler, whatever the
mode: the operator must not scale a Deployment it also owns."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.unit.fake_operator import AsyncOperator, FakeOperator, ScriptedMetrics

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # inside the example's 01:00-05:00 window
SO = "placement-summarizer"


def _foreign_scaled_object() -> dict[str, object]:
    return {
        "metadata": {"name": SO, "labels": {}},
        "spec": {"scaleTargetRef": {"name": "summarizer"}, "minReplicaCount": 2},
    }


@pytest.mark.parametrize("found", [f"ScaledObject/{SO}", f"HorizontalPodAutoscaler/keda-hpa-{SO}"])
def test_an_autoscaler_named_like_ours_blocks_a_placement_without_async(found: str) -> None:
    """Before, it was dropped by its name: the example moved to batch, scaling the
    Deployment 4 -> 0 under someone's autoscaler."""
    op = FakeOperator()
    if found.startswith("ScaledObject/"):
        op.cluster.scaled_objects[SO] = _foreign_scaled_object()
    op.cluster.autoscalers["summarizer"] = [found]
    op.evaluate(NOW)
    assert op.reasons() == ["ConflictingAutoscaler"]
    assert found in op.effects.events[0].message
    assert op.status["phase"] == "Blocked"
    assert op.cluster.writes == [] and op.cluster.deployments["summarizer"].replicas == 4


def test_a_labelled_scaled_object_is_not_ours_when_the_placement_has_no_async() -> None:
    """The operator makes a ScaledObject only for spec.async; one with its name and label on
    a placement without async (and no hold) is no more ours than any other."""
    op = FakeOperator()
    op.cluster.scaled_objects[SO] = {
        **_foreign_scaled_object(),
        "metadata": {"name": SO, "labels": {"placement.runplacement.io/placement": "summarizer"}},
    }
    op.cluster.autoscalers["summarizer"] = [f"ScaledObject/{SO}"]
    op.evaluate(NOW)
    assert op.reasons() == ["ConflictingAutoscaler"]
    assert op.cluster.writes == []


def test_an_hpa_named_like_kedas_blocks_an_async_placement_without_keda() -> None:
    """spec.async set, KEDA not installed: batch is decided, and before, the HPA with the name
    KEDA would give ours was dropped by that name."""
    from tests.unit.test_async_plan import _async_manifest

    manifest = _async_manifest()
    manifest["spec"]["latency"]["acceptableDelay"] = "24h"
    op = AsyncOperator(manifest=manifest, metrics=ScriptedMetrics(value=0.15), keda_installed=False)
    op.cluster.keda = False
    op.cluster.autoscalers["summarizer"] = [f"HorizontalPodAutoscaler/keda-hpa-{SO}"]
    op.evaluate(NOW)
    assert op.reasons() == ["ConflictingAutoscaler"]
    assert op.cluster.writes == [] and op.cluster.deployments["summarizer"].replicas == 4
