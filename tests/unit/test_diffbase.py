"""kopf's record of the last handled spec stays small whatever the spec's size, and still
tells a changed spec from an unchanged one."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import kopf

from placement.runtime.config import OperatorConfig
from placement.runtime.diffbase import SpecDigestDiffBaseStorage
from placement.runtime.handlers import RECORD_SPEC, register
from tests.unit.factories import example_manifest

ANNOTATION = "placement.runplacement.io/last-handled-configuration"


def _stored(manifest: dict[str, Any]) -> tuple[kopf.BodyEssence, str]:
    storage = SpecDigestDiffBaseStorage(
        prefix="placement.runplacement.io", key="last-handled-configuration"
    )
    body = kopf.Body(manifest)
    essence = storage.build(body=body)
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=essence)
    return essence, patch["metadata"]["annotations"][ANNOTATION]


def test_a_megabyte_spec_and_large_annotations_leave_a_small_record() -> None:
    manifest = example_manifest()
    manifest["metadata"]["annotations"] = {"note": "n" * 200_000}
    pod_spec = manifest["spec"]["batch"]["jobTemplate"]["spec"]["template"]["spec"]
    pod_spec["nodeSelector"] = {"huge": "x" * 1_000_000}
    _, annotation = _stored(manifest)
    assert len(annotation) < 200  # the API server allows 256 KB for all annotations together


def test_a_changed_spec_changes_the_record_and_an_unchanged_one_does_not() -> None:
    before, _ = _stored(example_manifest())
    same, _ = _stored(example_manifest())
    changed_manifest = example_manifest()
    changed_manifest["spec"]["owner"] = "someone-else"
    changed, _ = _stored(changed_manifest)
    assert before == same
    assert before != changed
    assert set(changed) == {"spec"}  # the `spec-changed` handler watches field "spec"


def test_a_new_placement_s_record_goes_out_with_kopf_s_finalizer_patch() -> None:
    """One write fewer per new placement: the spec kopf handled is recorded on the first event
    (whose patch adds the finalizer), so the event that write causes has nothing to record."""
    registry = kopf.OperatorRegistry()
    register(registry, OperatorConfig(prometheus_url="http://prometheus:9090"))
    [handler] = [h for h in registry._watching.get_all_handlers() if h.id == RECORD_SPEC]
    # Called with the only arguments they use (kopf passes every one of an event's).
    when: Any = handler.when
    record: Any = handler.fn
    manifest = example_manifest()
    body = kopf.Body(manifest)
    assert when(body=body, type="ADDED", memo=kopf.Memo())
    patch = kopf.Patch(body=body)
    asyncio.run(record(body=body, patch=patch, type="ADDED"))
    # No merge-patch fields: kopf sends the record with the finalizer, in its one JSON patch.
    assert dict(patch) == {}
    patched = copy.deepcopy(manifest)
    for fn in patch.fns:
        fn(patched)
    annotation = patched["metadata"]["annotations"][ANNOTATION]
    assert annotation == _stored(example_manifest())[1]  # what kopf itself would store
    assert any(op["op"] == "add" for op in patch.as_json_patch())
    manifest["metadata"].setdefault("annotations", {})[ANNOTATION] = annotation
    assert not when(
        body=kopf.Body(manifest), type="MODIFIED", memo=kopf.Memo()
    )  # recorded: no handler
    manifest["metadata"]["annotations"].pop(ANNOTATION)
    manifest["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    assert not when(
        body=kopf.Body(manifest), type="MODIFIED", memo=kopf.Memo()
    )  # never while deleting
