"""kopf's watch of placements yields their bodies without managedFields (what kopf keeps per
placement), everything else whole; other resources' events pass through untouched."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kopf._cogs.clients import watching
from kopf._cogs.structs import references

from placement.core.api import GROUP, PLURAL, VERSION
from placement.runtime.watchbodies import LAST_APPLIED, slim_watched_bodies

MANAGED = [{"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:spec": {}}}]


def _body(kind: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {
            "name": "summarizer",
            "namespace": "team",
            "uid": "u-1",
            "generation": 3,
            "resourceVersion": "42",
            "finalizers": ["placement.runplacement.io/finalizer"],
            "annotations": {"placement.runplacement.io/last-handled-configuration": "{}"},
            "managedFields": copy.deepcopy(MANAGED),
        },
        "spec": {"target": {"deployment": "summarizer"}},
        "status": {"phase": "Realtime"},
    }


def _resource(group: str, plural: str) -> references.Resource:
    return references.Resource(group=group, version="v1", plural=plural, namespaced=True)


def _events_through_kopfs_watch(resource: references.Resource, events: list[Any]) -> list[Any]:
    """What kopf's watcher reads (queueing.py calls watching.infinite_watch)."""

    async def read() -> list[Any]:
        stream = watching.infinite_watch(settings=None, resource=resource, namespace=None)
        return [event async for event in stream]

    return asyncio.run(read())


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The raw events the API server's watch gives (kopf's own function replaced by a fake
    stream, then wrapped as the operator wraps it)."""
    given: list[Any] = []

    async def fake_infinite_watch(**_: Any) -> AsyncIterator[Any]:
        for event in given:
            yield event

    monkeypatch.setattr(watching, "infinite_watch", fake_infinite_watch)
    assert slim_watched_bodies(GROUP, PLURAL)
    assert slim_watched_bodies(GROUP, PLURAL)  # twice: still one wrapper
    return given


def test_placements_lose_only_managed_fields(events: list[Any]) -> None:
    expected = _body("WorkloadPlacement")
    del expected["metadata"]["managedFields"]
    events += [
        {"type": None, "object": _body("WorkloadPlacement")},  # from the initial list
        {"type": "MODIFIED", "object": _body("WorkloadPlacement")},
        watching.Bookmark.LISTED,
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "43"}}},
    ]
    seen = _events_through_kopfs_watch(_resource(GROUP, PLURAL), events)
    assert [event["object"] for event in seen[:2]] == [expected, expected]
    assert [event["type"] for event in seen[:2]] == [None, "MODIFIED"]
    assert seen[2:] == events[2:]


def test_kubectls_last_applied_copy_is_dropped_and_the_annotations_kept(
    events: list[Any],
) -> None:
    applied = _body("WorkloadPlacement")
    annotations = applied["metadata"]["annotations"]
    annotations[LAST_APPLIED] = json.dumps({"spec": applied["spec"]})
    alone = _body("WorkloadPlacement")
    alone["metadata"]["annotations"] = {LAST_APPLIED: "{}"}
    events += [{"type": "ADDED", "object": applied}, {"type": "ADDED", "object": alone}]
    one, two = (
        event["object"] for event in _events_through_kopfs_watch(_resource(GROUP, PLURAL), events)
    )
    assert one["metadata"]["annotations"] == {
        "placement.runplacement.io/last-handled-configuration": "{}"
    }
    # An empty map, not none: kopf's next patch adds its keys to the server's annotations
    # instead of replacing the whole map (and kubectl's record with it).
    assert two["metadata"]["annotations"] == {}


def test_other_resources_keep_their_bodies_whole(events: list[Any]) -> None:
    events.append({"type": "ADDED", "object": _body("Lease")})
    [seen] = _events_through_kopfs_watch(_resource("coordination.k8s.io", "leases"), events)
    assert seen["object"]["metadata"]["managedFields"] == MANAGED


def test_without_kopfs_function_nothing_is_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(watching, "infinite_watch")
    assert not slim_watched_bodies(GROUP, PLURAL)


def test_every_placement_shares_its_keys(events: list[Any]) -> None:
    first, second = (json.loads(json.dumps(_body("WorkloadPlacement"))) for _ in "ab")
    assert all(a is not b for a, b in zip(first["metadata"], second["metadata"], strict=True))
    events += [{"type": "ADDED", "object": first}, {"type": "ADDED", "object": second}]
    one, two = (
        event["object"] for event in _events_through_kopfs_watch(_resource(GROUP, PLURAL), events)
    )
    assert all(a is b for a, b in zip(one["metadata"], two["metadata"], strict=True))
    assert all(a is b for a, b in zip(one["status"], two["status"], strict=True))
    assert one == two


def test_equal_values_are_kept_once(events: list[Any]) -> None:
    message = "saves 179.72 USD/day = capacity avoided 196.80 - batch 1.02 - staging 4.00 ..."
    bodies = []
    for name in ("a", "b"):
        body = _body("WorkloadPlacement")
        body["metadata"]["name"] = name
        body["status"] = {
            "phase": "Realtime",
            "decision": {"message": message},
            "conditions": [{"type": "Ready", "status": "True", "message": message}],
        }
        del body["metadata"]["managedFields"]
        bodies.append(body)
    events += [{"type": "ADDED", "object": json.loads(json.dumps(body))} for body in bodies]
    one, two = (
        event["object"] for event in _events_through_kopfs_watch(_resource(GROUP, PLURAL), events)
    )
    assert [one, two] == bodies
    # Short values are one string across placements; a long one once per placement.
    assert one["status"]["phase"] is two["status"]["phase"]
    assert one["status"]["conditions"][0]["status"] is two["status"]["conditions"][0]["status"]
    ready = one["status"]["conditions"][0]["message"]
    assert ready is one["status"]["decision"]["message"]
    assert one["metadata"]["name"] != two["metadata"]["name"]
