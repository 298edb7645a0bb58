"""Async in the plan, on the fake cluster: moving records the original replicas (the hold, at
the current count) and then applies the ScaledObject; leaving deletes it, then restores;
deleting the placement does the same; our own ScaledObject is no conflict, any other is."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from placement.adapters.observe import observe
from placement.core.cluster import Refused, Retry
from placement.core.reconcile import (
    ApplyScaledObject,
    DeleteScaledObject,
    Plan,
    Restore,
    Settings,
    TakeHold,
    admit,
    reconcile,
)
from placement.core.scaledobject import scaled_object_manifest
from tests.unit.factories import example_manifest
from tests.unit.fake_operator import NAMESPACE, AsyncOperator, ScriptedMetrics

MIDDAY = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
QUERY = 'sum(queue_depth{queue="summarize"})'
SO = "placement-summarizer"
PROMETHEUS = "http://prometheus.monitoring:9090"


def _async_manifest() -> dict[str, Any]:
    manifest = example_manifest()
    spec = manifest["spec"]
    spec["latency"]["acceptableDelay"] = "10m"
    spec["async"] = {"queue": QUERY, "scaleUpTime": "2m"}
    spec["costs"]["queuePerDay"] = 1.0
    spec["metrics"]["requests"] = "sum(rate(requests_total[5m]))"
    return manifest


def _operator(**changes: Any) -> AsyncOperator:
    return AsyncOperator(
        manifest=_async_manifest(),
        metrics=ScriptedMetrics(value=0.15),
        settings=Settings(scope_metrics=False, keda_prometheus_url=PROMETHEUS),
        **changes,
    )


def test_moving_to_async_records_the_replicas_then_applies_the_scaled_object() -> None:
    op = _operator()
    plan = op.plan(MIDDAY)
    hold, apply = plan.steps
    assert isinstance(hold, TakeHold) and (hold.replicas, hold.original) == (4, 4)
    assert isinstance(apply, ApplyScaledObject) and apply.requires == ("hold",)
    executed = op.evaluate(MIDDAY)
    assert executed.steps == (
        "TakeHold deployment/summarizer 4",
        "ApplyScaledObject placement-summarizer",
        "Event MovedToAsync",
    )
    deployment = op.cluster.deployments["summarizer"]
    assert (deployment.replicas, deployment.original_replicas) == (4, 4)  # nothing scaled yet
    manifest = op.cluster.scaled_objects[SO]
    assert manifest["metadata"]["labels"] == {"placement.runplacement.io/placement": "summarizer"}
    assert manifest["spec"]["scaleTargetRef"]["name"] == "summarizer"
    assert (manifest["spec"]["minReplicaCount"], manifest["spec"]["maxReplicaCount"]) == (0, 4)
    trigger = manifest["spec"]["triggers"][0]
    assert trigger["metadata"]["query"] == QUERY
    assert trigger["metadata"]["serverAddress"] == PROMETHEUS
    status = op.status
    assert status["phase"] == "Async" and status["originalReplicas"] == 4
    assert status["async"] == {"since": "2026-11-22T12:00:00Z", "scaledObject": SO}
    decision = status["decision"]
    assert decision["reason"] == "MovedToAsync" and decision["savingsPerDay"] == 64.8
    assert decision["asyncBreakdown"] == {
        "savingsPerDay": 64.8,
        "capacityAvoided": 73.8,
        "queue": 1.0,
        "operations": 8.0,
        "workReplicas": 0.6,
        "busyReplicas": 1,
        "idleHoursPerDay": 0.0,
        "expectedReplicas": 1.0,
    }
    # 4 replicas * 1.025 / (2 requests/s * 3600) * 1000 = 0.5694 now; in async
    # (98.40 - 64.80) / (2 * 86400) * 1000 = 0.1944.
    assert decision["costPerRequest"] == {
        "unit": "1,000 requests",
        "requestsPerSecond": 2.0,
        "measured": 0.569444,
        "forecast": 0.194444,
        "mode": "Async",
    }
    event = op.effects.events[-1]
    assert "cost per 1,000 requests 0.5694 USD now, 0.1944 USD in Async" in event.message


def test_in_async_keda_scales_and_the_operator_only_reapplies_a_missing_scaled_object() -> None:
    op = _operator()
    op.evaluate(MIDDAY)
    op.cluster.scale("summarizer", 1)  # KEDA's doing: within [0, 4]
    later = MIDDAY + timedelta(minutes=5)
    executed = op.evaluate(later)
    assert executed.steps == ()
    assert op.status["phase"] == "Async"
    del op.cluster.scaled_objects[SO]  # someone deleted it
    executed = op.evaluate(later + timedelta(minutes=5))
    assert executed.steps == ("Log", "ApplyScaledObject placement-summarizer")
    assert SO in op.cluster.scaled_objects


def test_scaled_outside_the_bounds_while_in_async_is_a_manual_override() -> None:
    op = _operator()
    op.evaluate(MIDDAY)
    op.cluster.scale("summarizer", 9)
    executed = op.evaluate(MIDDAY + timedelta(minutes=5))
    assert op.status["phase"] == "Blocked"
    assert op.reasons()[-1] == "ManualOverride"
    # KEDA stops too: the 9 replicas someone set stay.
    assert executed.steps[0] == "DeleteScaledObject placement-summarizer"
    assert op.cluster.scaled_objects == {}
    assert op.cluster.deployments["summarizer"].replicas == 9


def test_a_new_target_stops_keda_on_the_old_one_before_giving_it_back() -> None:
    op = _operator()
    op.evaluate(MIDDAY)
    op.cluster.scale("summarizer", 1)
    op.cluster.add("translator", 3)
    op.change_spec("target.deployment", "translator")
    executed = op.evaluate(MIDDAY + timedelta(minutes=5))
    assert executed.steps[:2] == (
        "DeleteScaledObject placement-summarizer",
        "Restore deployment/summarizer 4",
    )
    assert op.cluster.deployments["summarizer"].replicas == 4


def test_a_spec_change_in_async_applies_the_scaled_object_again() -> None:
    op = _operator()
    op.evaluate(MIDDAY)
    op.change_spec("latency.acceptableDelay", "30m")
    executed = op.evaluate(MIDDAY + timedelta(minutes=5))
    assert executed.steps == ("Log", "ApplyScaledObject placement-summarizer")
    assert op.cluster.scaled_objects[SO]["spec"]["pollingInterval"] == 60


def test_leaving_async_deletes_the_scaled_object_before_restoring() -> None:
    op = _operator()
    op.evaluate(MIDDAY)
    op.cluster.scale("summarizer", 1)
    op.keda_installed = False  # KEDA uninstalled
    plan = op.plan(MIDDAY + timedelta(minutes=5))
    unscale, restore = plan.steps
    assert isinstance(unscale, DeleteScaledObject) and unscale.name == SO
    assert isinstance(restore, Restore) and restore.requires == ("unscale",)
    executed = op.evaluate(MIDDAY + timedelta(minutes=5))
    assert executed.steps == (
        "DeleteScaledObject placement-summarizer",
        "Restore deployment/summarizer 4",
        "Event LeftAsync",
    )
    assert op.cluster.scaled_objects == {}
    deployment = op.cluster.deployments["summarizer"]
    assert (deployment.replicas, deployment.managed_by) == (4, None)
    assert op.status["phase"] == "Realtime" and "originalReplicas" not in op.status
    assert op.status["async"] == {}
    assert "AsyncNeedsKeda: async needs KEDA" in op.effects.events[-1].message


def test_switching_to_recommend_leaves_async() -> None:
    op = _operator()
    op.evaluate(MIDDAY)
    op.change_spec("mode", "Recommend")
    op.evaluate(MIDDAY + timedelta(minutes=5))
    assert op.reasons() == ["MovedToAsync", "LeftAsync"]
    assert op.cluster.scaled_objects == {}
    assert op.cluster.deployments["summarizer"].replicas == 4


def test_deleting_the_placement_in_async_deletes_the_scaled_object_then_restores() -> None:
    op = _operator()
    op.evaluate(MIDDAY)
    op.cluster.scale("summarizer", 2)  # KEDA's count, not a manual change
    steps = op.delete()
    assert steps[:2] == (
        "DeleteScaledObject placement-summarizer",
        "Restore deployment/summarizer 4",
    )
    assert op.cluster.scaled_objects == {}
    assert op.cluster.deployments["summarizer"].replicas == 4


def test_deleting_after_a_manual_change_in_async_keeps_what_was_set() -> None:
    op = _operator()
    op.evaluate(MIDDAY)
    op.cluster.scale("summarizer", 9)  # beyond what KEDA may set: a person
    steps = op.delete()
    assert steps[:2] == (
        "DeleteScaledObject placement-summarizer",
        "ForgetHold deployment/summarizer",
    )
    assert op.cluster.deployments["summarizer"].replicas == 9


def test_our_scaled_object_is_no_conflict_and_any_other_autoscaler_is() -> None:
    op = _operator()
    op.evaluate(MIDDAY)
    assert op.status["phase"] == "Async"
    # Listed on the target once applied: ours (read by its name and label) and KEDA's HPA.
    op.cluster.autoscalers["summarizer"] = [
        f"ScaledObject/{SO}",
        f"HorizontalPodAutoscaler/keda-hpa-{SO}",
    ]
    op.evaluate(MIDDAY + timedelta(minutes=1))
    assert op.status["phase"] == "Async"
    op.cluster.autoscalers["summarizer"].append("ScaledObject/someone-elses")
    op.evaluate(MIDDAY + timedelta(minutes=5))
    assert op.status["phase"] == "Blocked"
    assert op.reasons()[-1] == "ConflictingAutoscaler"


def test_a_leftover_scaled_object_outside_async_is_deleted() -> None:
    op = _operator(keda_installed=False)
    op.cluster.scaled_objects[SO] = scaled_object_manifest(
        placement="summarizer",
        namespace=NAMESPACE,
        deployment="summarizer",
        query=QUERY,
        queue_per_replica=10,
        min_replicas=0,
        max_replicas=4,
        acceptable_delay=timedelta(minutes=10),
        prometheus_url=PROMETHEUS,
    )
    executed = op.evaluate(MIDDAY)
    assert executed.steps[0] == "DeleteScaledObject placement-summarizer"
    assert op.reasons() == ["AsyncNeedsKeda"]


def test_a_hold_with_our_scaled_object_and_no_status_is_recovered_as_async() -> None:
    op = _operator()
    op.evaluate(MIDDAY)
    op.cluster.statuses.clear()  # the status write was lost
    op.evaluate(MIDDAY + timedelta(minutes=5))
    assert op.reasons() == ["MovedToAsync", "Recovered", "MovedToAsync"]
    assert op.status["phase"] == "Async"
    assert "continuing async" in op.effects.events[1].message


def test_a_scaled_object_delete_refused_for_good_does_not_keep_the_placement() -> None:
    op = _operator()
    op.evaluate(MIDDAY)

    def refuse(namespace: str, name: str) -> bool:
        raise Refused("403: scaledobjects.keda.sh is forbidden")

    op.cluster.delete_scaled_object = refuse  # type: ignore[method-assign]
    steps = op.delete()
    assert steps[:3] == (
        "DeleteScaledObject placement-summarizer",
        "Event Restored (refused)",
        "Restore deployment/summarizer 4",
    )
    warning = op.effects.events[-2]
    assert warning.type == "Warning" and "delete it by hand" in warning.message
    assert "403: scaledobjects.keda.sh is forbidden" in warning.message
    assert op.cluster.deployments["summarizer"].replicas == 4


def test_a_scaled_object_named_like_ours_but_not_ours_is_a_conflict_never_applied_over() -> None:
    """Someone else's ScaledObject under the placement's ScaledObject name (without its label)
    on the target: the adapters said it conflicts, reconcile took it by its name for the
    placement's own, and the move to async force-applied over it (its triggers, its counts)."""
    op = _operator()
    op.cluster.scaled_objects[SO] = {
        "metadata": {"name": SO, "labels": {}},
        "spec": {
            "scaleTargetRef": {"name": "summarizer"},
            "minReplicaCount": 2,
            "maxReplicaCount": 9,
            "triggers": [{"type": "cpu", "metadata": {"value": "60"}}],
        },
    }
    op.cluster.autoscalers = {"summarizer": [f"ScaledObject/{SO}"]}
    op.metrics.now = MIDDAY
    placement = op.placement()
    spec = admit(placement, op.settings, MIDDAY)
    assert not isinstance(spec, Plan)
    observed = observe(op.cluster, op.metrics, spec, namespace=NAMESPACE, placement=op.name)
    assert observed.scaled_object is None  # not ours: no label
    # The queue read as the async fake reads it; the ScaledObject as the adapters read it.
    observation = replace(op._with_async(observed, MIDDAY), scaled_object=None)
    plan = reconcile(placement, spec, observation, MIDDAY, op.settings)
    assert plan.steps == ()
    assert plan.report.decided is not None
    assert plan.report.decided.reason == "ConflictingAutoscaler"
    assert plan.report.event is not None
    assert f"ScaledObject/{SO} (not this placement's" in plan.report.event.message


def _refusing(op: AsyncOperator) -> list[str]:
    """KEDA's admission webhook denies every ScaledObject from now on; the names it denied."""
    denied: list[str] = []

    def apply_scaled_object(namespace: str, manifest: dict[str, Any], **_: Any) -> None:
        denied.append(manifest["metadata"]["name"])
        raise Refused('400: admission webhook "vscaledobject.kb.io" denied the request')

    def create_scaled_object(namespace: str, manifest: dict[str, Any]) -> bool:
        apply_scaled_object(namespace, manifest)
        return True

    op.cluster.apply_scaled_object = apply_scaled_object  # type: ignore[method-assign]
    op.cluster.create_scaled_object = create_scaled_object  # type: ignore[method-assign]
    return denied


def test_a_refused_scaled_object_gives_the_hold_back_and_says_why() -> None:
    """Before, the refusal escaped the evaluation: a traceback every tick, no status, and the
    Deployment left annotated as held by a ScaledObject that did not exist."""
    op = _operator()
    denied = _refusing(op)
    executed = op.evaluate(MIDDAY)
    assert denied == [SO]
    assert executed.steps[:2] == (
        "TakeHold deployment/summarizer 4",
        "ApplyScaledObject placement-summarizer",
    )
    deployment = op.cluster.deployments["summarizer"]
    assert (deployment.replicas, deployment.managed_by, deployment.original_replicas) == (
        4,
        None,
        None,
    )
    assert op.status["phase"] == "Blocked"
    assert op.reasons()[-1] == "ScaledObjectRejected"
    event = op.effects.events[-1]
    assert event.type == "Warning" and event.reason == "ScaledObjectRejected"
    assert "denied the request" in event.message and "deployment/summarizer" in event.message


def test_a_refused_reapply_while_async_keeps_the_scaled_object_in_place() -> None:
    op = _operator()
    op.evaluate(MIDDAY)
    manifest = op.cluster.scaled_objects[SO]
    later = MIDDAY + timedelta(minutes=5)
    op.manifest["spec"]["target"]["warmReplicas"] = 1  # a new spec: applied again
    op.manifest["metadata"]["generation"] = 2
    _refusing(op)
    op.evaluate(later)
    assert op.cluster.scaled_objects[SO] is manifest  # KEDA goes on with the one in place
    assert op.status["phase"] == "Async"
    assert op.reasons()[-1] == "ScaledObjectRejected"
    assert "the one in place goes on" in op.effects.events[-1].message
    warnings = len(op.effects.events)
    op.evaluate(later + timedelta(minutes=5))
    assert len(op.effects.events) == warnings  # no new Event for the same refusal


def _someone_elses(op: AsyncOperator, label: str | None) -> dict[str, Any]:
    """A ScaledObject named as the placement's would be, scaling another Deployment."""
    theirs = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {
            "name": SO,
            "labels": {} if label is None else {"placement.runplacement.io/placement": label},
        },
        "spec": {"scaleTargetRef": {"name": "ledger"}, "minReplicaCount": 2},
    }
    op.cluster.scaled_objects[SO] = theirs
    return theirs


def test_someone_elses_scaled_object_of_that_name_is_never_taken_over() -> None:
    """Before, the forced server-side apply took it over: KEDA then scaled the placement's
    Deployment with it, and deployment/ledger lost its autoscaler."""
    for label in (None, "other-placement"):
        op = _operator()
        theirs = _someone_elses(op, label)
        op.evaluate(MIDDAY)
        assert op.cluster.scaled_objects[SO] is theirs
        assert theirs["spec"]["scaleTargetRef"] == {"name": "ledger"}
        assert not any("scaledobject" in write for write in op.cluster.writes)
        deployment = op.cluster.deployments["summarizer"]
        assert (deployment.replicas, deployment.managed_by) == (4, None)
        assert op.status["phase"] == "Blocked"
        event = op.effects.events[-1]
        assert event.type == "Warning" and event.reason == "ConflictingAutoscaler"
        assert f"scaledobject/{SO} exists and is not this placement's" in event.message
        assert "deployment/summarizer left as it was" in event.message
        # Seen in the observation: blocked before any write. Before, every evaluation took
        # the hold and gave it back (two Deployment patches) while theirs stayed.
        assert op.cluster.writes == []


def test_one_that_came_after_the_observation_is_still_never_applied_over() -> None:
    """The cache may not have seen it yet: the executor's fresh read is the guard."""
    op = _operator()
    theirs = _someone_elses(op, "other-placement")
    op.cluster.cached_scaled_object_placement = lambda namespace, name: None  # type: ignore[method-assign]
    executed = op.evaluate(MIDDAY)
    assert executed.steps[:2] == (
        "TakeHold deployment/summarizer 4",
        "ApplyScaledObject placement-summarizer",
    )
    assert op.cluster.scaled_objects[SO] is theirs
    assert not any("scaledobject" in write for write in op.cluster.writes)
    assert op.cluster.deployments["summarizer"].managed_by is None
    assert op.reasons()[-1] == "ConflictingAutoscaler"


def test_in_async_a_scaled_object_replaced_by_someone_elses_gives_the_replicas_back() -> None:
    op = _operator()
    op.evaluate(MIDDAY)
    op.cluster.scale("summarizer", 0)  # KEDA's doing, then ours went and theirs came
    theirs = _someone_elses(op, None)
    op.evaluate(MIDDAY + timedelta(minutes=5))
    assert op.cluster.scaled_objects[SO] is theirs
    deployment = op.cluster.deployments["summarizer"]
    assert (deployment.replicas, deployment.managed_by) == (4, None)
    assert op.status["phase"] == "Blocked"
    assert "originalReplicas" not in op.status and "async" not in op.status
    event = op.effects.events[-1]
    assert event.reason == "ConflictingAutoscaler"
    assert "none in place: deployment/summarizer restored to 4 replicas" in event.message


def test_a_refused_apply_in_async_with_none_in_place_gives_the_replicas_back() -> None:
    """Before, the Deployment stayed where KEDA left it (here zero), with nothing left to
    scale it up, and the placement said Async."""
    op = _operator()
    op.evaluate(MIDDAY)
    op.cluster.scale("summarizer", 0)
    del op.cluster.scaled_objects[SO]  # someone deleted it
    denied = _refusing(op)
    later = MIDDAY + timedelta(minutes=5)
    executed = op.evaluate(later)
    assert denied == [SO]
    assert executed.steps == (
        "Log",
        "ApplyScaledObject placement-summarizer",
        "Event ScaledObjectRejected",
    )
    deployment = op.cluster.deployments["summarizer"]
    assert (deployment.replicas, deployment.managed_by, deployment.original_replicas) == (
        4,
        None,
        None,
    )
    assert op.status["phase"] == "Blocked"
    assert "originalReplicas" not in op.status and "async" not in op.status
    event = op.effects.events[-1]
    assert event.type == "Warning" and event.reason == "ScaledObjectRejected"
    assert "none in place: deployment/summarizer restored to 4 replicas, realtime" in (
        event.message
    )
    # Evaluated again: tried as a new move, refused, the replicas stay.
    op.evaluate(later + timedelta(minutes=5))
    assert op.cluster.deployments["summarizer"].replicas == 4
    assert op.cluster.deployments["summarizer"].managed_by is None
    assert op.status["phase"] == "Blocked"


def test_a_first_move_creates_the_scaled_object_rather_than_applying_over_one() -> None:
    op = _operator()
    op.evaluate(MIDDAY)
    assert f"create scaledobject {SO}" in op.cluster.writes
    assert f"apply scaledobject {SO}" not in op.cluster.writes
    assert op.status["phase"] == "Async"


def test_one_created_between_the_fresh_read_and_the_write_is_never_written_over() -> None:
    """Before, the read found none and the forced server-side apply took over the one that
    came just after it: KEDA then scaled the placement's Deployment with someone else's
    ScaledObject. Now the create fails with AlreadyExists, the second read finds theirs."""
    op = _operator()
    theirs = {
        "metadata": {"name": SO, "labels": {"placement.runplacement.io/placement": "other"}},
        "spec": {"scaleTargetRef": {"name": "ledger"}, "minReplicaCount": 2},
    }
    op.cluster.scaled_object_racer = theirs
    executed = op.evaluate(MIDDAY)
    assert executed.steps[:2] == (
        "TakeHold deployment/summarizer 4",
        "ApplyScaledObject placement-summarizer",
    )
    assert op.cluster.scaled_objects[SO] is theirs
    assert theirs["spec"]["scaleTargetRef"] == {"name": "ledger"}
    assert not any("scaledobject" in write for write in op.cluster.writes)
    deployment = op.cluster.deployments["summarizer"]
    assert (deployment.replicas, deployment.managed_by) == (4, None)  # the hold given back
    assert op.status["phase"] == "Blocked"
    event = op.effects.events[-1]
    assert event.reason == "ConflictingAutoscaler"
    assert "label placement.runplacement.io/placement=other" in event.message


def test_ours_created_meanwhile_by_another_worker_is_applied_as_ours() -> None:
    op = _operator()
    ours = op.plan(MIDDAY).steps[1]
    assert isinstance(ours, ApplyScaledObject)
    op.cluster.scaled_object_racer = dict(ours.manifest)
    op.evaluate(MIDDAY)
    assert f"apply scaledobject {SO}" in op.cluster.writes
    assert op.status["phase"] == "Async"


def _keda_owner(name: str) -> dict[str, Any]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": name,
            "uid": "u-1", "controller": True, "blockOwnerDeletion": True}  # fmt: skip


def test_an_hpa_with_the_name_keda_gives_ours_that_is_not_kedas_blocks_the_move() -> None:
    """Before, the ScaledObject was created and KEDA took over keda-hpa-<name>, rewriting it to
    scale the placement's target: deployment/ledger lost its autoscaler."""
    forged = [_keda_owner("someone-else")]
    for owners in ([], forged, [{**_keda_owner(SO), "controller": False}]):
        op = _operator()
        op.cluster.hpas[f"keda-hpa-{SO}"] = ("Deployment/ledger", owners)
        op.evaluate(MIDDAY)
        assert op.cluster.writes == []  # blocked before any write
        assert SO not in op.cluster.scaled_objects
        assert op.status["phase"] == "Blocked"
        event = op.effects.events[-1]
        assert event.type == "Warning" and event.reason == "ConflictingAutoscaler"
        assert f"HorizontalPodAutoscaler/keda-hpa-{SO} (scaling Deployment/ledger" in (
            event.message
        )
        assert "KEDA would take it over" in event.message


def test_kedas_own_hpa_for_our_scaled_object_does_not_block() -> None:
    op = _operator()
    op.cluster.hpas[f"keda-hpa-{SO}"] = ("Deployment/summarizer", [_keda_owner(SO)])
    op.evaluate(MIDDAY)
    assert op.status["phase"] == "Async"
    assert f"create scaledobject {SO}" in op.cluster.writes


def test_ours_replaced_by_someone_elses_between_the_read_and_the_apply_is_not_taken_over() -> None:
    """In async, a re-apply (a new spec) reads ours and applies over the version read: one
    that replaced it in between is a conflict, retried, never written over."""
    op = _operator()
    op.evaluate(MIDDAY)
    op.manifest["spec"]["target"]["warmReplicas"] = 1  # a new spec: applied again
    op.manifest["metadata"]["generation"] = 2
    theirs = {
        "metadata": {"name": SO, "labels": {"placement.runplacement.io/placement": "other"}},
        "spec": {"scaleTargetRef": {"name": "ledger"}, "minReplicaCount": 2},
    }
    op.cluster.scaled_object_racer = theirs
    with pytest.raises(Retry):
        op.evaluate(MIDDAY + timedelta(minutes=5))
    assert op.cluster.scaled_objects[SO] is theirs


def test_an_hpa_with_keda_s_name_made_after_the_cache_was_read_blocks_the_create() -> None:
    """The watch cache has not seen it yet: before, the ScaledObject was created and KEDA
    rewrote that HPA to scale the placement's target. The executor reads it fresh just
    before the create, and gives the hold back."""
    op = _operator()
    op.cluster.hpas[f"keda-hpa-{SO}"] = ("Deployment/ledger", [])
    op.cluster.cached_keda_hpa_taken = lambda namespace, scaled_object: None  # type: ignore[method-assign]
    executed = op.evaluate(MIDDAY)
    assert executed.steps[:2] == (
        "TakeHold deployment/summarizer 4",
        "ApplyScaledObject placement-summarizer",
    )
    assert SO not in op.cluster.scaled_objects
    assert not any("scaledobject" in write for write in op.cluster.writes)
    deployment = op.cluster.deployments["summarizer"]
    assert (deployment.replicas, deployment.managed_by) == (4, None)  # the hold given back
    assert op.status["phase"] == "Blocked"
    event = op.effects.events[-1]
    assert event.type == "Warning" and event.reason == "ConflictingAutoscaler"
    assert f"HorizontalPodAutoscaler/keda-hpa-{SO} (scaling Deployment/ledger" in event.message


def test_leaving_async_never_deletes_someone_elses_scaled_object_of_that_name() -> None:
    """Ours went and theirs came under its name; the placement then leaves async (here:
    Recommend). Before, the ScaledObject was deleted by its name: theirs."""
    op = _operator()
    op.evaluate(MIDDAY)
    theirs = _someone_elses(op, "other")
    op.change_spec("mode", "Recommend")
    op.evaluate(MIDDAY + timedelta(minutes=5))
    assert op.cluster.scaled_objects[SO] is theirs
    assert not any("scaledobject" in write for write in op.cluster.writes[2:])
    assert op.cluster.deployments["summarizer"].replicas == 4


def test_deleting_the_placement_never_deletes_someone_elses_scaled_object_of_that_name() -> None:
    """status.async names the ScaledObject; by the deletion, theirs is under that name."""
    op = _operator()
    op.evaluate(MIDDAY)
    theirs = _someone_elses(op, None)
    steps = op.delete()
    assert steps[:2] == (
        "DeleteScaledObject placement-summarizer",
        "Restore deployment/summarizer 4",
    )
    assert op.cluster.scaled_objects[SO] is theirs
    assert op.cluster.deployments["summarizer"].replicas == 4
