"""kopf's record of the last handled spec, kept at a constant size.

kopf stores the spec it last handled in an annotation to diff the next one against. A copy
of a large spec (or of the placement's own large annotations) pushed the object's
annotations over the API server's 256 KB limit: every kopf patch then failed with 422, the
finalizer was never removed and the placement could not be deleted. The only handler that
needs a diff (`spec-changed`) needs to know *that* the spec changed, not how: so the record
is a digest of the spec, about 100 bytes whatever the spec's size.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import cast

import kopf


def spec_digest(spec: object) -> str:
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class SpecDigestDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """AnnotationsDiffBaseStorage whose essence is `{"spec": {"sha256": ...}}`."""

    def build(
        self,
        *,
        body: kopf.Body,
        extra_fields: Iterable[kopf.FieldSpec] | None = None,
    ) -> kopf.BodyEssence:
        essence = super().build(body=body, extra_fields=extra_fields)
        digest = spec_digest(essence.get("spec", {}))
        return cast(kopf.BodyEssence, {"spec": {"sha256": digest}})
