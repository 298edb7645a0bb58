"""The watch cache (adapters/watchcache.py) against a scripted API server: what a reader sees
after lists, events, bookmarks, 410 Gone, a kind that appears, and the operator's own writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from placement.adapters.kubewatch import deployment_of
from placement.adapters.watchcache import (
    Absent,
    ApiError,
    Gone,
    NotSynced,
    Page,
    Reflector,
    Store,
    newer,
)


def obj(name: str, version: int, replicas: int = 2, namespace: str = "ns") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(version)},
        "spec": {"replicas": replicas},
    }


def event(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": item}


def bookmark(version: int) -> dict[str, Any]:
    return {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": str(version)}}}


class FakeSource:
    """Answers lists from `lists` (one list of pages per call) and watches from `watches` (one
    script per call: events, then an exception or a clean end); past the scripts, a watch
    waits forever, as a quiet API server's does."""

    name = "fake"

    def __init__(self, lists: list[Any], watches: list[list[Any]]) -> None:
        self.lists = lists
        self.watches = watches
        self.list_calls: list[str | None] = []
        self.watch_calls: list[str] = []

    async def list(self, *, limit: int, continue_token: str | None) -> Page:
        self.list_calls.append(continue_token)
        answer = self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, Page)
        return answer

    async def watch(self, resource_version: str) -> AsyncIterator[dict[str, Any]]:
        self.watch_calls.append(resource_version)
        if not self.watches:
            await asyncio.Event().wait()
        for step in self.watches.pop(0):
            if isinstance(step, Exception):
                raise step
            yield step
            await asyncio.sleep(0)


def store() -> Store[Any]:
    return Store("deployments", lambda o: deployment_of(o).state)


async def no_wait(_: float) -> None:
    await asyncio.sleep(0)


def run_until(reflector: Reflector, done: Callable[[], bool], timeout: float = 2.0) -> None:
    async def main() -> None:
        task = asyncio.create_task(reflector.run())
        try:
            async with asyncio.timeout(timeout):
                while not done():
                    await asyncio.sleep(0.001)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


def replicas(cache: Store[Any]) -> dict[str, int]:
    return {d.name: d.replicas for d in cache.in_namespace("ns")}


def test_a_list_then_added_modified_deleted_events_are_what_a_reader_sees() -> None:
    source = FakeSource(
        [Page([obj("a", 5), obj("b", 6)], "10")],
        [[event("ADDED", obj("c", 11)), event("MODIFIED", obj("a", 12, 7)),
          event("DELETED", obj("b", 13))]],
    )  # fmt: skip
    cache = store()
    reflector = Reflector(source, cache, sleep=no_wait)
    run_until(reflector, lambda: cache.events == 3)
    assert replicas(cache) == {"a": 7, "c": 2}
    assert cache.get("ns", "b") is None
    assert cache.get("ns", "a").resource_version == "12"
    assert source.watch_calls[0] == "10"  # watched from the list's version
    assert reflector.lists == 1


def test_a_list_is_read_in_pages_and_replaces_the_store_at_once() -> None:
    source = FakeSource(
        [Page([obj("a", 1)], "20", continue_token="next"), Page([obj("b", 2)], "21")], []
    )
    cache = store()
    run_until(Reflector(source, cache, sleep=no_wait), lambda: cache.synced())
    assert replicas(cache) == {"a": 2, "b": 2}
    assert source.list_calls == [None, "next"]


def test_410_gone_relists_and_a_deletion_missed_meanwhile_is_not_kept() -> None:
    source = FakeSource(
        [Page([obj("a", 5), obj("b", 6)], "10"), Page([obj("a", 30, 9)], "31")],
        [[event("MODIFIED", obj("a", 11, 3)), Gone("too old resource version: 11 (25)")]],
    )
    cache = store()
    reflector = Reflector(source, cache, sleep=no_wait)
    run_until(reflector, lambda: reflector.lists == 2 and len(source.watch_calls) == 2)
    assert replicas(cache) == {"a": 9}  # b was deleted while the watch was behind
    assert source.watch_calls == ["10", "31"]


def test_an_error_event_with_410_relists() -> None:
    expired = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "expired"}}
    source = FakeSource([Page([obj("a", 5)], "10"), Page([obj("a", 40, 4)], "41")], [[expired]])
    cache = store()
    reflector = Reflector(source, cache, sleep=no_wait)
    run_until(reflector, lambda: reflector.lists == 2)
    assert replicas(cache) == {"a": 4}


def test_a_bookmark_moves_the_resume_point_without_a_relist() -> None:
    source = FakeSource(
        [Page([obj("a", 5)], "10")],
        [[bookmark(50)], [event("MODIFIED", obj("a", 60, 1))]],  # the first ends cleanly
    )
    cache = store()
    reflector = Reflector(source, cache, sleep=no_wait)
    run_until(reflector, lambda: cache.events == 1)
    assert source.watch_calls[:2] == ["10", "50"]
    assert reflector.lists == 1
    assert replicas(cache) == {"a": 1}


def test_a_dropped_watch_resumes_from_the_last_event_after_a_pause() -> None:
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    source = FakeSource(
        [Page([obj("a", 5)], "10")],
        [[event("MODIFIED", obj("a", 12, 3)), OSError("connection reset")],
         [ApiError(500, "etcd timeout")], [event("MODIFIED", obj("a", 14, 4))]],
    )  # fmt: skip
    cache = store()
    reflector = Reflector(source, cache, sleep=pause)
    run_until(reflector, lambda: cache.events == 2)
    assert source.watch_calls[:3] == ["10", "12", "12"]
    assert pauses == [1.0, 2.0]  # doubling
    assert reflector.lists == 1


def test_a_kind_not_served_is_empty_and_synced_then_listed_when_woken() -> None:
    source = FakeSource([Absent("404: the server could not find the requested resource")], [])
    cache = Store("scaledobjects", lambda o: o["metadata"]["name"])
    reflector = Reflector(source, cache, sleep=no_wait, absent_retry_seconds=3600)

    async def main() -> None:
        task = asyncio.create_task(reflector.run())
        async with asyncio.timeout(2):
            while not cache.synced():
                await asyncio.sleep(0.001)
            assert cache.absent and cache.in_namespace("ns") == []
            source.lists = [Page([obj("so", 3)], "4")]  # KEDA installed
            reflector.wake()
            while cache.absent:
                await asyncio.sleep(0.001)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    assert cache.in_namespace("ns") == ["so"]


def test_nothing_is_read_before_the_first_list() -> None:
    cache = store()
    with pytest.raises(NotSynced, match="deployments in ns not listed yet"):
        cache.get("ns", "a")
    cache.failed("list: 403: forbidden")
    with pytest.raises(NotSynced, match="403: forbidden"):
        cache.in_namespace("ns")


def test_a_failing_list_is_retried_and_the_store_stays_unsynced_meanwhile() -> None:
    source = FakeSource([ApiError(503, "unavailable"), Page([obj("a", 1)], "2")], [])
    cache = store()
    reflector = Reflector(source, cache, sleep=no_wait)
    run_until(reflector, lambda: cache.synced())
    assert len(source.list_calls) == 2


def test_the_operators_own_write_is_read_back_and_an_older_event_does_not_undo_it() -> None:
    cache = store()
    cache.replace([obj("a", 5, 4)])
    cache.put(obj("a", 9, 0))  # the PATCH's answer
    assert cache.get("ns", "a").replicas == 0
    cache.apply("MODIFIED", obj("a", 7, 4))  # an event from before the write, late
    assert cache.get("ns", "a").replicas == 0
    cache.apply("MODIFIED", obj("a", 9, 0))
    cache.apply("MODIFIED", obj("a", 10, 5))  # someone else's later change
    assert cache.get("ns", "a").replicas == 5


def test_a_namespace_scoped_list_replaces_only_its_namespace() -> None:
    cache = store()
    cache.replace([obj("a", 1, namespace="one")], scope="one")
    cache.replace([obj("b", 2, namespace="two")], scope="two")
    cache.replace([], scope="one")
    assert cache.synced("one") and cache.synced("two") and not cache.synced("three")
    assert cache.in_namespace("one") == []
    assert [d.name for d in cache.in_namespace("two")] == ["b"]


def test_resource_versions_compare_as_numbers_when_they_are() -> None:
    assert newer("10", "9") and not newer("9", "10") and newer("10", "10")
    assert newer("opaque-b", "opaque-a") and newer("1", "x")


@pytest.mark.parametrize(("namespaces", "minutes"), [((), 60), (("ml",), 1)])
def test_absent_scaled_objects_are_listed_again_hourly_when_their_crd_is_watched(
    namespaces: tuple[str, ...], minutes: int
) -> None:
    # Cluster-wide, the CRD's watch wakes them when KEDA comes: no list every minute meanwhile
    # in an idle cluster without KEDA. Namespaced (no right to watch CRDs): every minute.
    from kubernetes import client

    from placement.adapters.kubewatch import ClusterCaches

    async def retries() -> dict[str, float]:
        caches = ClusterCaches(client.Configuration(host="https://127.0.0.1:1"), namespaces)
        caches.start()
        await caches.stop()
        return {r.store.kind: r.absent_retry_seconds for r in caches.reflectors}

    found = asyncio.run(retries())
    assert found["scaledobjects"] == minutes * 60
    assert ("customresourcedefinitions" in found) == (not namespaces)


def _job(version: int, condition: str | None) -> dict[str, Any]:
    from placement.core.labels import PLACEMENT_LABEL

    status: dict[str, Any] = {"active": 1}
    if condition is not None:
        status = {"conditions": [{"type": condition, "status": "True"}]}
    return {
        "metadata": {
            "name": "nightly-20261201-0100",
            "namespace": "ml",
            "resourceVersion": str(version),
            "labels": {PLACEMENT_LABEL: "nightly"},
        },
        "spec": {"parallelism": 2},
        "status": status,
    }


@pytest.mark.parametrize("condition", ["Complete", "Failed"])
def test_a_placements_job_that_ends_is_told_once(condition: str) -> None:
    """What wakes the placement's daemon (handlers.Daemons): a failed night is acted on at
    once, not up to an evaluationInterval later."""
    from kubernetes import client

    from placement.adapters.kubewatch import ClusterCaches

    caches = ClusterCaches(client.Configuration(host="https://127.0.0.1:1"))
    ended: list[tuple[str, str]] = []
    caches.job_ended = lambda namespace, placement: ended.append((namespace, placement))
    job = _job
    caches.jobs.put(job(5, None))  # the operator's create, read back: running
    caches.jobs.apply("MODIFIED", job(6, None))
    assert ended == []
    caches.jobs.apply("MODIFIED", job(7, condition))
    assert ended == [("ml", "nightly")]
    caches.jobs.apply("MODIFIED", job(8, condition))  # still ended: told once
    caches.jobs.apply("MODIFIED", job(7, condition))  # a late event
    assert ended == [("ml", "nightly")]
