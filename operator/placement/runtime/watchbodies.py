"""Keep less of each placement's body: drop `metadata.managedFields` (and `kubectl apply`'s
last-applied annotation) as kopf's watch yields it.

kopf keeps the last body its watch returned for every object with a daemon (the daemon's live
`body`), whole: the largest thing the operator held per placement. At 2,000 placements a
9.5 KB JSON body was 48 KB of Python objects, 27 KB of it managedFields (the API server's
server-side-apply bookkeeping, nested dicts of "f:" keys, which neither kopf nor this operator
reads) and 6 KB the keys, a new string per key per body. client-go's informers drop
managedFields with a transform (`TransformStripManagedFields`); kopf 1.45 has no such setting
(`settings.watching` has none), so this wraps the one function its watchers read events
from, `kopf._cogs.clients.watching.infinite_watch` (looked up on the module when each
watcher starts, queueing.py), for the placements' resource only: every other watched
resource (kopf's peering, namespaces, CRDs) passes through untouched.

kopf writes with merge patches of its own fields (finalizers, annotations, status), never the
body sent back, and the handlers read the metadata, the spec and the status: a body without
managedFields is handled the same (tests/unit/test_watch_bodies.py; every integration test
runs the operator with it). If a kopf release renames the function, the operator runs as
before (keeping the whole bodies) and logs a warning.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from sys import intern
from typing import Any

log = logging.getLogger(__name__)

DROPPED = "managedFields"
# `kubectl apply`'s copy of the whole object as last applied (the spec again, as JSON text),
# read by kubectl only. Dropped from the annotations kopf keeps, the annotations themselves
# kept (even empty): kopf's patches diff the body it holds, and a body without annotations
# would have it replace the server's whole annotations map, losing kubectl's record.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


# Short string values seen in bodies, shared across bodies (not interned: interned strings
# are immortal, and uids or resourceVersions would then be kept forever). Bounded: cleared
# when full, so a value unique to one body lives at most until the next clear.
SHORT = 64
COMMON_LIMIT = 4096
_common: dict[str, str] = {}


def slim(raw_body: Any) -> Any:
    """The body kopf keeps: without managedFields and kubectl's last-applied copy, its keys
    and equal values shared.

    JSON decoding makes new strings of every key and every string value of every object: a
    placement's 160 keys were 6 KB of its 21 KB. The keys are the schema's and the labels'
    and annotations' names, a bounded set (safe to intern). Equal values are shared too:
    short ones across bodies ("True", a condition's type and reason, a mode, an owner: about
    40 of a placement's 60 strings, 50-80 bytes each), long ones within the body (the
    decision's message is also the Ready condition's and the newest history entry's; the
    condition times are one timestamp)."""
    if not isinstance(raw_body, dict):
        return raw_body
    metadata = raw_body.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop(DROPPED, None)
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict):
            annotations.pop(LAST_APPLIED, None)
    return _shared(raw_body, {})


def _shared(value: Any, seen: dict[str, str]) -> Any:
    if isinstance(value, str):
        if len(value) > SHORT:
            return seen.setdefault(value, value)
        common = _common.get(value)
        if common is not None:
            return common
        if len(_common) >= COMMON_LIMIT:
            _common.clear()
        _common[value] = value
        return value
    if isinstance(value, dict):
        return {intern(key): _shared(item, seen) for key, item in value.items()}
    if isinstance(value, list):
        return [_shared(item, seen) for item in value]
    return value


def slim_watched_bodies(group: str, plural: str) -> bool:
    """From now on, kopf's watches of `plural`.`group` yield `slim` bodies.
    Idempotent; False when kopf has no such function to wrap (nothing changed)."""
    try:
        from kopf._cogs.clients import watching
    except ImportError:  # pragma: no cover - a kopf without the module
        log.warning("kopf's watching module is gone: placements' bodies are kept whole")
        return False
    original: Callable[..., AsyncIterator[Any]] | None = getattr(watching, "infinite_watch", None)
    if original is None:
        log.warning("kopf's infinite_watch is gone: placements' bodies are kept whole")
        return False
    if getattr(original, "slims", None) is not None:
        original.slims.add((group, plural))  # type: ignore[attr-defined]
        return True
    slims = {(group, plural)}

    async def infinite_watch(*, resource: Any, **kwargs: Any) -> AsyncIterator[Any]:
        ours = (getattr(resource, "group", None), getattr(resource, "plural", None)) in slims
        async for event in original(resource=resource, **kwargs):
            if ours and isinstance(event, dict) and "object" in event:
                event["object"] = slim(event["object"])
            yield event

    infinite_watch.slims = slims  # type: ignore[attr-defined]
    infinite_watch.wrapped = original  # type: ignore[attr-defined]
    watching.infinite_watch = infinite_watch
    return True
