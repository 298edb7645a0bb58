"""kopf's record of the last handled spec stays small whatever the spec's size, and still
tells a changed spec from an unchanged one."""

from __future__ import annotations

from typing import Any

import kopf

from placement.runtime.diffbase import SpecDigestDiffBaseStorage
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
