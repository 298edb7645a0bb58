"""A small informer: one kind of Kubernetes object kept in memory by list + watch, so reading it
costs no request.

A `Reflector` lists the objects (in pages), then watches from the list's resourceVersion and
applies each event to a `Store`; the store keeps a projection of each object (only what the
operator reads), not the object. As client-go's reflector:

- a watch that ends (the server's timeout, a dropped connection) is resumed from the last
  resourceVersion seen, an event's or a bookmark's: no relist;
- 410 Gone (that resourceVersion is compacted away), on the watch request or as an ERROR
  event, relists: the store is replaced at once by the new list, never emptied in between;
- any other error waits (1 s doubling to 30 s) and resumes the watch, relisting when that is
  what the server answers.

A kind that is not served or not ours to read (404 or 403 on the list: KEDA's CRD not
installed) is `absent`: an empty store that counts as synced, listed again when `wake()` is
called (e.g. by a watch on the CRD) or after `absent_retry_seconds`.

The store is written on the event loop and read from kopf's handler threads: one lock,
held for dictionary operations only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects
# namespace -> name -> (resourceVersion, projection)
Projections = dict[str, dict[str, tuple[str, T]]]

PAGE_SIZE = 500  # objects per list page: a 10,000-object list never sits in memory at once
BACKOFF_START, BACKOFF_MAX = 1.0, 30.0


class Gone(Exception):
    """410: the resourceVersion asked for is no longer in the server's history."""


class Absent(Exception):
    """404 or 403 on a list: the kind is not served (its CRD is missing) or not ours to read."""


class ApiError(Exception):
    """Any other refusal or failure of a list or watch request."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str | None = None


class Source(Protocol):
    """How a reflector reaches one kind: the API server (kubewatch.ApiSource) or a test's fake."""

    name: str

    async def list(self, *, limit: int, continue_token: str | None) -> Page: ...

    def watch(self, resource_version: str) -> AsyncIterator[dict[str, Any]]:
        """Raw watch events, {"type": ..., "object": ...}; raises Gone for a 410."""
        ...


class NotSynced(Exception):
    """The cache has not been listed yet: nothing may be decided from it."""


def resource_version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _key(obj: Mapping[str, Any]) -> Key:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def newer(candidate: str, current: str) -> bool:
    """Whether `candidate` is at least as new as `current`. resourceVersions are opaque, but
    etcd's are increasing integers: compared as such when both are, else the candidate wins."""
    if candidate.isdigit() and current.isdigit():
        return int(candidate) >= int(current)
    return True


class Store(Generic[T]):
    """Projections of one kind's objects by namespace and name, with each one's
    resourceVersion. `project` returns None for an object not worth keeping."""

    def __init__(self, kind: str, project: Callable[[Mapping[str, Any]], T | None]) -> None:
        self.kind = kind
        self.project = project
        self._lock = threading.Lock()
        self._objects: Projections[T] = {}
        self._synced: set[str | None] = set()  # the scopes listed at least once
        self.absent = False  # not served or not readable: empty, and that is the truth
        self.last_error: str | None = None
        self.events = 0  # applied watch events, for the tests and the metrics
        # Told of each object stored newer (outside the lock): its namespace, the value it
        # replaced (None: new here) and its new value.
        self.stored: Callable[[str, T | None, T], None] | None = None

    # -- written by reflectors ---------------------------------------------------------

    def replace(self, items: Iterable[Mapping[str, Any]], *, scope: str | None = None) -> None:
        """The whole content of `scope` (a namespace; None: every namespace), from a list."""
        self.install(self.projected(items), scope=scope)

    def projected(
        self, items: Iterable[Mapping[str, Any]], into: Projections[T] | None = None
    ) -> Projections[T]:
        """What the store would keep of `items` (added to `into`), for `install`: a list
        projected page by page, so the whole list's objects never sit in memory at once."""
        fresh: Projections[T] = {} if into is None else into
        for obj in items:
            value = self.project(obj)
            if value is not None:
                namespace, name = _key(obj)
                fresh.setdefault(namespace, {})[name] = (resource_version(obj), value)
        return fresh

    def install(self, fresh: Projections[T], *, scope: str | None = None) -> None:
        """The whole content of `scope`, as `projected` made it from a list."""
        with self._lock:
            if scope is None:
                self._objects = fresh
            else:
                self._objects[scope] = fresh.get(scope, {})
            self._synced.add(scope)
            self.absent = False
            self.last_error = None

    def mark_absent(self, reason: str, *, scope: str | None = None) -> None:
        with self._lock:
            if scope is None:
                self._objects = {}
            else:
                self._objects.pop(scope, None)
            self._synced.add(scope)
            self.absent = True
            self.last_error = reason

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        """One watch event: ADDED, MODIFIED or DELETED."""
        namespace, name = _key(obj)
        with self._lock:
            self.events += 1
            if event_type == "DELETED":
                self._objects.get(namespace, {}).pop(name, None)
                return
        self.put(obj)

    def put(self, obj: Mapping[str, Any]) -> None:
        """An object as the API server returned it, from a watch or from one of the
        operator's own writes (so the next read sees the write): never replaces a newer one."""
        namespace, name = _key(obj)
        version = resource_version(obj)
        value = self.project(obj)
        with self._lock:
            objects = self._objects.setdefault(namespace, {})
            current = objects.get(name)
            if current is not None and not newer(version, current[0]):
                return
            if value is None:
                objects.pop(name, None)
            else:
                objects[name] = (version, value)
        if value is not None and self.stored is not None:
            self.stored(namespace, None if current is None else current[1], value)

    def discard(self, namespace: str, name: str) -> None:
        """The operator deleted it: gone now, before its watch event arrives."""
        with self._lock:
            self._objects.get(namespace, {}).pop(name, None)

    def failed(self, error: str) -> None:
        with self._lock:
            self.last_error = error

    # -- read by the handlers ----------------------------------------------------------

    def synced(self, namespace: str | None = None) -> bool:
        with self._lock:
            return None in self._synced or (namespace is not None and namespace in self._synced)

    def _require(self, namespace: str) -> None:
        if not self.synced(namespace):
            detail = f" (last error: {self.last_error})" if self.last_error else ""
            raise NotSynced(f"{self.kind} in {namespace} not listed yet{detail}")

    def get(self, namespace: str, name: str) -> T | None:
        self._require(namespace)
        with self._lock:
            entry = self._objects.get(namespace, {}).get(name)
        return None if entry is None else entry[1]

    def version(self, namespace: str, name: str) -> str | None:
        with self._lock:
            entry = self._objects.get(namespace, {}).get(name)
        return None if entry is None else entry[0]

    def in_namespace(self, namespace: str) -> list[T]:
        self._require(namespace)
        with self._lock:
            return [value for _, value in self._objects.get(namespace, {}).values()]

    def __len__(self) -> int:
        with self._lock:
            return sum(len(objects) for objects in self._objects.values())


class Reflector:
    """Keeps `store` (or its `scope`, a namespace) equal to what `source` serves."""

    def __init__(
        self,
        source: Source,
        store: Store[Any],
        *,
        scope: str | None = None,
        page_size: int = PAGE_SIZE,
        absent_retry_seconds: float = 60.0,
        on_change: Callable[[], None] | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.source = source
        self.store = store
        self.scope = scope
        self.page_size = page_size
        self.absent_retry_seconds = absent_retry_seconds
        self.on_change = on_change
        self._sleep = sleep
        self._wake = asyncio.Event()
        self.lists = 0  # how many times it listed: 1 when nothing went wrong
        self.watches = 0  # watch requests made
        self.resource_version = ""

    def wake(self) -> None:
        """List again now (when absent): e.g. the CRD was just created."""
        self._wake.set()

    async def run(self) -> None:
        """List and watch until cancelled."""
        backoff = BACKOFF_START
        while True:
            try:
                await self._list()
            except Absent as error:
                self.store.mark_absent(str(error), scope=self.scope)
                self._changed()
                await self._wait_for_wake()
                continue
            except (TimeoutError, ApiError, Gone, OSError, ValueError) as error:
                self.store.failed(f"list: {error}")
                log.warning(
                    "%s: list failed (%s); again in %.0fs", self.source.name, error, backoff
                )
                await self._sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_START
            await self._watch_until_gone()

    async def _list(self) -> None:
        # Each page projected as it comes (the objects, managedFields and pod templates
        # included, are dropped), the store replaced once the last page is in.
        fresh: Projections[Any] = {}
        token: str | None = None
        version = ""
        while True:
            page = await self.source.list(limit=self.page_size, continue_token=token)
            self.store.projected(page.items, into=fresh)
            version = version or page.resource_version  # the snapshot's: the first page's
            token = page.continue_token
            del page
            if not token:
                break
        self.store.install(fresh, scope=self.scope)
        self.resource_version = version
        self.lists += 1
        self._changed()

    async def _watch_until_gone(self) -> None:
        """Watch from the last resourceVersion, resuming after each end, until 410 Gone or an
        ERROR event asks for a relist (then return)."""
        backoff = BACKOFF_START
        while True:
            self.watches += 1
            try:
                async for event in self.source.watch(self.resource_version):
                    relist = self._handle(event)
                    if relist is not None:
                        if relist != 410:  # an unexpected error: not at once, nor in a loop
                            await self._sleep(backoff)
                        return
                backoff = BACKOFF_START  # a clean end (the server's timeout): resume at once
            except Gone:
                return
            except Absent:  # e.g. the CRD was deleted: the relist says so
                await self._sleep(backoff)
                return
            except (TimeoutError, ApiError, OSError, ValueError) as error:
                self.store.failed(f"watch: {error}")
                log.info(
                    "%s: watch ended (%s); resuming in %.0fs", self.source.name, error, backoff
                )
                await self._sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _handle(self, event: Mapping[str, Any]) -> int | None:
        """Apply one event; an ERROR event's code (a relist follows), else None."""
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code != 410:
                log.warning("%s: watch error %s: %s", self.source.name, code, obj.get("message"))
                self.store.failed(f"watch: {code}: {obj.get('message')}")
            return int(code) if isinstance(code, int) else 0
        version = resource_version(obj)
        if kind == "BOOKMARK":  # only a newer resourceVersion, nothing changed
            self.resource_version = version or self.resource_version
            return None
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self.store.apply(kind, obj)
            self.resource_version = version or self.resource_version
            self._changed()
        return None

    async def _wait_for_wake(self) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.absent_retry_seconds)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()
