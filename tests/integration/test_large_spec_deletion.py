"""A placement is always deletable: the largest spec the API server stores, handled by the
operator and then deleted, is gone (finalizer removed) within a bound.

Before, kopf kept a copy of the spec (and of the placement's own annotations) in an
annotation: a jobTemplate over about 128 KB pushed the object's annotations over the API
server's 256 KB limit, every kopf patch failed with 422 and the finalizer was never removed.
kopf now keeps a digest of the spec (placement.runtime.diffbase)."""

from __future__ import annotations

import time

import pytest

from placement.core.api import MAX_JOB_TEMPLATE_BYTES
from tests.integration.harness import Placements, placement
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
