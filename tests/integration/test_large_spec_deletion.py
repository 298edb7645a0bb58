"""A placement is always deletable: the largest spec the API server stores, handled by the
operator and then deleted, is gone (finalizer removed) within a bound.

Before, kopf kept a copy of the spec (and of the placement's own annotations) in an
annotation: a jobTemplate over about 128 KB pushed the object's annotations over the API
server's 256 KB limit, every kopf patch failed with 422 and the finalizer was never removed.
kopf now keeps a digest of the spec (placement.runtime.diffbase)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kubernetes.client.exceptions import ApiException
from prometheus_client import Gauge

from placement.core.api import GROUP, MAX_JOB_TEMPLATE_BYTES, PLURAL, VERSION
from placement.localenv.cluster import LocalCluster
from placement.localenv.operator_process import OperatorProcess
from placement.localenv.prometheus import LocalPrometheus
from tests.integration.harness import (
    HOLD,
    Placements,
    measured_deployment,
    placement,
    status_refused_policy,
    updates_refused_policy,
)
from tests.integration.wait import until

DIFFBASE = "placement.runplacement.io/last-handled-configuration"
FINALIZER_GONE_WITHIN_SECONDS = 30.0


@pytest.mark.usefixtures("operator")
def test_the_largest_spec_the_api_server_stores_is_deleted(placements: Placements) -> None:
    placements.deployment("large", 2)
    manifest = placement("largest", placements.namespace, deployment="large")
    # Fields the CRD passes through unknown carry what no schema bound can: 800 KB here;
    # with the placement's own 200 KB annotation the object is near etcd's 1.5 MB limit.
    pod_spec = manifest["spec"]["batch"]["jobTemplate"]["spec"]["template"]["spec"]
    pod_spec["nodeSelector"] = {"note": "x" * 800_000}
    # Declared fields at their budget: the pod's annotations, 8,192 characters together.
    manifest["spec"]["batch"]["jobTemplate"]["spec"]["template"]["metadata"] = {
        "annotations": {f"example.com/note-{i}": "a" * (4096 - 18) for i in range(2)}
    }
    manifest["metadata"]["annotations"] = {"note": "n" * 200_000}
    placements.apply(manifest)

    # The operator handled it: its finalizer is on, and it blocked the oversized template.
    handled = until(
        lambda: placements.get("largest"),
        lambda body: (
            bool(body["metadata"].get("finalizers"))
            and (body.get("status") or {}).get("phase") == "Blocked"
        ),
        what="finalizer and phase Blocked",
    )
    (ready,) = [c for c in handled["status"]["conditions"] if c["type"] == "Ready"]
    assert ready["reason"] == "InvalidSpec"
    message = ready["message"]
    assert "spec.batch.jobTemplate" in message and str(MAX_JOB_TEMPLATE_BYTES) in message
    record = handled["metadata"].get("annotations", {}).get(DIFFBASE, "")
    assert len(record) < 200, f"kopf's record holds {len(record)} bytes"
    assert placements.replicas("large") == 2
    assert placements.jobs("largest") == []

    started = time.monotonic()
    placements.delete("largest")
    until(
        lambda: placements.exists("largest"),
        lambda exists: not exists,
        timeout=FINALIZER_GONE_WITHIN_SECONDS,
        what="placement gone",
    )
    took = time.monotonic() - started
    print(f"deleted in {took:.1f} s")
    assert placements.replicas("large") == 2


def test_a_held_placement_whose_status_is_refused_is_still_deleted_and_restores(
    placements: Placements,
    prometheus: LocalPrometheus,
    utilization: Gauge,
    cluster: LocalCluster,
    operator: OperatorProcess,
) -> None:
    """The finalizer goes even when the placement's other writes fail: here every status
    write is refused (an admission policy, as a full etcd or a broken webhook would); the
    Deployment it holds gets its recorded replicas back and the placement is gone."""
    ns = placements.namespace
    _held(placements, prometheus, utilization, "frozen")
    policy = status_refused_policy(f"freeze-delete-{ns}", ns)
    cluster.kubectl("apply", "-f", "-", input_text=policy)
    try:
        until(
            lambda: _refused(
                lambda: placements.custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, ns, PLURAL, "frozen", {"status": {"phase": "Batch"}}
                ),
                (422,),
            ),
            bool,
            what="status writes refused",
        )
        _delete_within_bound(placements, "frozen", "its status writes are refused")
        assert placements.replicas("frozen") == 4
        held = placements.apps.read_namespaced_deployment("frozen", ns).metadata.annotations
        assert not any(key.startswith(HOLD) for key in held or {}), held
    finally:
        cluster.kubectl("delete", "--ignore-not-found", "-f", "-", input_text=policy)


def test_a_placement_whose_restore_is_refused_for_good_is_still_deleted_and_says_what_to_do(
    placements: Placements,
    prometheus: LocalPrometheus,
    utilization: Gauge,
    cluster: LocalCluster,
    operator: OperatorProcess,
) -> None:
    """A policy (or lost rights) refuses every change to the held Deployment: retrying the
    restore would keep the finalizer, and the namespace, forever. The placement goes, and a
    Warning Event names the count to restore by hand."""
    ns = placements.namespace
    _held(placements, prometheus, utilization, "stuck")
    policy = updates_refused_policy(
        f"freeze-deploy-{ns}",
        ns,
        group="apps",
        resources=["deployments", "deployments/scale"],
        message="deployments of this namespace are frozen by the test",
        reason="Forbidden",
    )
    cluster.kubectl("apply", "-f", "-", input_text=policy)
    try:
        until(
            lambda: _refused(
                lambda: placements.apps.patch_namespaced_deployment(
                    "stuck", ns, {"metadata": {"labels": {"probe": "1"}}}
                ),
                (403, 422),
            ),
            bool,
            what="deployment writes refused",
        )
        _delete_within_bound(placements, "stuck", "its restore is refused")
        assert placements.replicas("stuck") == 0  # nothing could be given back
        warnings = [
            event.message
            for event in placements.core.list_namespaced_event(
                ns, field_selector="involvedObject.name=stuck"
            ).items
            if event.type == "Warning" and "could not be given back" in (event.message or "")
        ]
        assert warnings and "by hand to 4 replicas" in warnings[0], warnings
    finally:
        cluster.kubectl("delete", "--ignore-not-found", "-f", "-", input_text=policy)


def _refused(write: Callable[[], object], codes: tuple[int, ...]) -> bool:
    """Whether `write` is refused by the policy under test (it applies after a moment)."""
    try:
        write()
    except ApiException as error:
        return bool(error.status in codes)
    return False


def _delete_within_bound(placements: Placements, name: str, why: str) -> None:
    started = time.monotonic()
    placements.delete(name)
    until(
        lambda: placements.exists(name),
        lambda exists: not exists,
        timeout=FINALIZER_GONE_WITHIN_SECONDS,
        what=f"placement gone while {why}",
    )
    print(f"deleted in {time.monotonic() - started:.1f} s while {why}")


def _held(
    placements: Placements, prometheus: LocalPrometheus, utilization: Gauge, name: str
) -> None:
    """A placement in Batch holding its Deployment (4 -> 0) after a successful window."""
    measured_deployment(placements, prometheus, utilization, name)
    placements.apply(placement(name, placements.namespace, deployment=name))
    placements.wait_for_reason(name, "BatchSucceeded", timeout=90)
    assert placements.replicas(name) == 0
