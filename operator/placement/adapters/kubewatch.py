"""The operator's watch caches (watchcache.py) of the objects an evaluation reads: Deployments,
the placements' Jobs, HPAs and KEDA ScaledObjects, kept by list + watch over aiohttp in kopf's
event loop, so an evaluation reads them without a request.

What is watched, and why so:

- Deployments: every Deployment in the operator's scope (cluster-wide, or each namespace given
  with --namespace), one watch. A target is any Deployment a placement names, so no label
  selects them; watching only the namespaces that hold placements would take one watch per
  such namespace (hundreds of connections at 10,000 placements) and a relist whenever a
  placement appears in a new one. The store keeps a projection (name, replicas, the hold's
  annotations and label, resourceVersion: about 0.5 KB), not the object.
- Jobs: label-selected by the placement label the operator puts on every Job it creates.
- HorizontalPodAutoscalers and ScaledObjects: every one in scope (few; no label to select).
  ScaledObjects only while KEDA's CRD is served: a watch on that CRD (cluster-wide mode) lists
  them again when it appears (and an absent kind is listed again only hourly, should the watch
  miss it); without the right to watch CRDs (namespaced mode), every minute.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
from kubernetes import client

from placement.adapters.watchcache import (
    Absent,
    ApiError,
    Gone,
    Page,
    Reflector,
    Store,
)
from placement.core.labels import (
    BASELINE_ANNOTATION,
    HELD_SINCE_ANNOTATION,
    MANAGED_BY_ANNOTATION,
    ORIGINAL_REPLICAS_ANNOTATION,
    PLACEMENT_LABEL,
    WORK_ANNOTATION,
)
from placement.core.observation import DeploymentState
from placement.core.policy import JobObservation, JobOutcome
from placement.core.scaledobject import foreign_keda_hpa, keda_hpa_name, keda_made

log = logging.getLogger(__name__)

KEDA_CRD = "scaledobjects.keda.sh"
LIST_TIMEOUT_SECONDS = 60.0  # a page of 500 Deployments from a loaded API server


# -- projections: what is kept of each object ----------------------------------------------


@dataclass(frozen=True)
class CachedDeployment:
    state: DeploymentState
    hold_label: str | None  # the placement label's value: whose hold, by label


@dataclass(frozen=True)
class CachedJob:
    placement: str
    observation: JobObservation


@dataclass(frozen=True)
class Autoscaler:
    kind: str  # HorizontalPodAutoscaler or ScaledObject
    name: str
    target_kind: str
    target_name: str
    spec: Mapping[str, Any] | None = None  # a ScaledObject's spec (small), for its readers
    placement: str = ""  # a ScaledObject's placement label ("" none)
    # An HPA's controller owner reference, "ScaledObject/<name>" when KEDA's; "" none.
    controller: str = ""

    def targets(self, deployment: str) -> bool:
        return self.target_kind == "Deployment" and self.target_name == deployment


def deployment_of(obj: Mapping[str, Any]) -> CachedDeployment:
    metadata = obj.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    replicas = (obj.get("spec") or {}).get("replicas")
    return CachedDeployment(
        DeploymentState(
            name=str(metadata.get("name") or ""),
            replicas=1 if replicas is None else int(replicas),  # the API's default is 1
            original_replicas=int_or_none(annotations.get(ORIGINAL_REPLICAS_ANNOTATION)),
            managed_by=annotations.get(MANAGED_BY_ANNOTATION),
            held_since=time_or_none(annotations.get(HELD_SINCE_ANNOTATION)),
            baseline_utilization=float_or_none(annotations.get(BASELINE_ANNOTATION), upper=1.0),
            resource_version=metadata.get("resourceVersion"),
        ),
        (metadata.get("labels") or {}).get(PLACEMENT_LABEL),
    )


def job_finished(before: CachedJob | None, after: CachedJob) -> bool:
    """Whether `after` is a Job that has just ended (succeeded or failed)."""
    ended = (JobOutcome.SUCCEEDED, JobOutcome.FAILED)
    return after.observation.outcome in ended and (
        before is None or before.observation.outcome != after.observation.outcome
    )


def job_of(obj: Mapping[str, Any]) -> CachedJob | None:
    metadata = obj.get("metadata") or {}
    placement = (metadata.get("labels") or {}).get(PLACEMENT_LABEL)
    if not placement:
        return None
    return CachedJob(str(placement), job_observation(obj))


def job_observation(job: Mapping[str, Any]) -> JobObservation:
    """A Job's outcome and pod-hours, from the Job alone (no pod listing)."""
    status = job.get("status") or {}
    # Suspended (Kueue holds a queued Job so until its ClusterQueue admits it): waiting, not
    # running and not failed. A Job that finished while suspended is read by its condition.
    suspended = bool((job.get("spec") or {}).get("suspend"))
    outcome = JobOutcome.WAITING if suspended else JobOutcome.RUNNING
    finished_at = None
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            outcome = JobOutcome.SUCCEEDED
            finished_at = time_or_none(condition.get("lastTransitionTime"))
        elif condition.get("type") == "Failed":
            outcome = JobOutcome.FAILED
            finished_at = time_or_none(condition.get("lastTransitionTime"))
    metadata = job.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    failed, succeeded = int(status.get("failed") or 0), int(status.get("succeeded") or 0)
    pod_hours = _pod_hours(job, finished_at)
    if failed + succeeded:
        failed_share = failed / (failed + succeeded)
    else:  # e.g. a deadline ended it with pods still running
        failed_share = 1.0 if outcome is JobOutcome.FAILED else 0.0
    return JobObservation(
        name=str(metadata.get("name") or ""),
        outcome=outcome,
        finished_at=finished_at,
        pod_hours=pod_hours,
        failed_pod_hours=0.0 if pod_hours is None else pod_hours * failed_share,
        work_replica_hours=float_or_none(annotations.get(WORK_ANNOTATION)),
    )


def _pod_hours(job: Mapping[str, Any], finished_at: datetime | None) -> float | None:
    """Wall-clock time from start to finish times the pods that may run at once: every slot
    counted busy the whole time, so pod-hours are overstated and efficiency understated, never
    the other way round."""
    started = time_or_none((job.get("status") or {}).get("startTime"))
    if finished_at is None or started is None:
        return None
    spec = job.get("spec") or {}
    parallelism = int(spec.get("parallelism") or 1)
    completions = spec.get("completions")
    pods = min(parallelism, int(completions)) if completions else parallelism
    seconds = max((finished_at - started).total_seconds(), 0.0)
    return seconds / 3600 * max(pods, 1)


def hpa_of(obj: Mapping[str, Any]) -> Autoscaler:
    ref = (obj.get("spec") or {}).get("scaleTargetRef") or {}
    metadata = obj.get("metadata") or {}
    owner = next(
        (o for o in metadata.get("ownerReferences") or () if o.get("controller") is True), None
    )
    controller = ""
    if owner is not None and keda_made([owner], str(owner.get("name") or "")):
        controller = f"ScaledObject/{owner.get('name')}"
    return Autoscaler(
        "HorizontalPodAutoscaler",
        str(metadata.get("name") or ""),
        str(ref.get("kind") or ""),
        str(ref.get("name") or ""),
        controller=controller,
    )


def foreign_hpa(found: Autoscaler | None, scaled_object: str) -> str | None:
    """Cluster.cached_keda_hpa_taken of the HPA named as KEDA names the one it makes for
    `scaled_object` (None: there is none)."""
    if found is None or found.controller == f"ScaledObject/{scaled_object}":
        return None
    return foreign_keda_hpa(
        found.name, (), f"{found.target_kind}/{found.target_name}", scaled_object
    )


def scaled_object_of(obj: Mapping[str, Any]) -> Autoscaler:
    spec = obj.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    metadata = obj.get("metadata") or {}
    return Autoscaler(
        "ScaledObject",
        str(metadata.get("name") or ""),
        str(ref.get("kind") or "Deployment"),  # KEDA's default kind
        str(ref.get("name") or ""),
        spec,
        str((metadata.get("labels") or {}).get(PLACEMENT_LABEL) or ""),
    )


def crd_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


# Annotations can be edited by hand: a value the operator could not have written reads as
# absent, so a typo never reaches the policy or fails every status write.

MAX_REPLICAS = 1_000_000  # more than any Deployment runs; beyond it, a typo


def time_or_none(text: Any) -> datetime | None:
    if isinstance(text, datetime):
        moment: datetime | None = text
    else:
        try:
            moment = datetime.fromisoformat(text) if isinstance(text, str) and text else None
        except ValueError:
            return None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the operator writes UTC
    return moment


def float_or_none(text: str | None, upper: float = float("inf")) -> float | None:
    """A finite number in [0, upper]."""
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and 0.0 <= value <= upper and value < float("inf") else None


def int_or_none(text: str | None) -> int | None:
    """A replica count: 0 or more."""
    try:
        value = int(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and 0 <= value <= MAX_REPLICAS else None


# -- the API server, over aiohttp ---------------------------------------------------------


class Connection:
    """The API server as the kubernetes client's Configuration describes it, for aiohttp: the
    same host, CA, client certificate and token. The token is read at every request, so a
    rotated ServiceAccount token (the Configuration's refresh hook) is picked up."""

    def __init__(self, configuration: client.Configuration, *, connections: int = 0) -> None:
        self.configuration = configuration
        self.connections = connections  # 0: no limit
        self.host = str(configuration.host).rstrip("/")
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
        if not configuration.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file)
        self._ssl = context if self.host.startswith("https") else None
        self._session: aiohttp.ClientSession | None = None

    def headers(self) -> dict[str, str]:
        token = self.configuration.get_api_key_with_prefix(
            "BearerToken"
        ) or self.configuration.get_api_key_with_prefix("authorization")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = str(token)
        return headers

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # The watches': a connection per watch (a handful) and the lists at start, no
            # cap needed. The requests' (kubeaio): capped, or a bulk apply opens hundreds.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    ssl=self._ssl if self._ssl else False, limit=self.connections
                )
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class ApiSource:
    """One kind at one path (cluster-wide or one namespace's), for a Reflector. `optional`: a
    404 or 403 means the kind is absent (KEDA not installed), not an error."""

    def __init__(
        self,
        connection: Connection,
        path: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        optional: bool = False,
        watch_timeout_seconds: int = 300,
    ) -> None:
        self.connection = connection
        self.path = path
        self.name = path
        self.selectors = {
            key: value
            for key, value in (("labelSelector", label_selector), ("fieldSelector", field_selector))
            if value
        }
        self.optional = optional
        self.watch_timeout_seconds = watch_timeout_seconds

    async def list(self, *, limit: int, continue_token: str | None) -> Page:
        query = {**self.selectors, "limit": str(limit)}
        if continue_token:
            query["continue"] = continue_token
        timeout = aiohttp.ClientTimeout(total=LIST_TIMEOUT_SECONDS)
        async with self.connection.session.get(
            self._url(query), headers=self.connection.headers(), timeout=timeout
        ) as response:
            await self._raise_for(response)
            body = await response.json()
        metadata = body.get("metadata") or {}
        return Page(
            body.get("items") or [],
            str(metadata.get("resourceVersion") or ""),
            metadata.get("continue") or None,
        )

    async def watch(self, resource_version: str) -> AsyncIterator[dict[str, Any]]:
        # Jittered as client-go's: watches of several kinds do not all reconnect at once.
        seconds = int(self.watch_timeout_seconds * (1 + random.random()))
        query = {
            **self.selectors,
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(seconds),
            "resourceVersion": resource_version,
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=seconds + 60)
        async with self.connection.session.get(
            self._url(query), headers=self.connection.headers(), timeout=timeout
        ) as response:
            await self._raise_for(response)
            async for line in _lines(response.content):
                yield json.loads(line)

    def _url(self, query: dict[str, str]) -> str:
        return f"{self.connection.host}{self.path}?{urlencode(query)}"

    async def _raise_for(self, response: aiohttp.ClientResponse) -> None:
        if response.status < 400:
            return
        text = (await response.text())[:300]
        try:
            message = str(json.loads(text).get("message", text))
        except ValueError:
            message = text
        if response.status == 410:
            raise Gone(message)
        if self.optional and response.status in (403, 404):
            raise Absent(f"{response.status}: {message}")
        raise ApiError(response.status, message)


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Newline-separated JSON of any length (aiohttp's readline stops at 64 KiB)."""
    buffer = b""
    async for chunk in content.iter_any():
        buffer += chunk
        start, index = 0, buffer.find(b"\n")
        while index >= 0:
            if index > start:
                yield buffer[start:index]
            start = index + 1
            index = buffer.find(b"\n", start)
        buffer = buffer[start:]
    if buffer.strip():
        yield buffer


# -- the caches the operator keeps -------------------------------------------------------


ABSENT_WATCHED_RETRY_SECONDS = 3600.0  # an absent kind whose CRD is watched: listed hourly


class ClusterCaches:
    """Deployments, the placements' Jobs, HPAs and ScaledObjects, cluster-wide or per namespace
    given; `start()` in kopf's event loop, `stop()` at its cleanup."""

    def __init__(
        self,
        configuration: client.Configuration,
        namespaces: tuple[str, ...] = (),
        *,
        watch_timeout_seconds: int = 300,
        absent_retry_seconds: float = 60.0,
    ) -> None:
        self.connection = Connection(configuration)
        self.namespaces = namespaces
        self.watch_timeout_seconds = watch_timeout_seconds
        self.absent_retry_seconds = absent_retry_seconds
        self.deployments: Store[CachedDeployment] = Store("deployments", deployment_of)
        self.jobs: Store[CachedJob] = Store("jobs", job_of)
        self.hpas: Store[Autoscaler] = Store("horizontalpodautoscalers", hpa_of)
        self.scaled_objects: Store[Autoscaler] = Store("scaledobjects", scaled_object_of)
        self.keda_crd: Store[str] = Store("customresourcedefinitions", crd_of)
        self.reflectors: list[Reflector] = []
        self._tasks: list[asyncio.Task[None]] = []
        # Told of each placement's Job that ends (namespace, placement), in the watch's loop.
        self.job_ended: Callable[[str, str], None] | None = None

        def stored(namespace: str, before: CachedJob | None, after: CachedJob) -> None:
            if self.job_ended is not None and job_finished(before, after):
                self.job_ended(namespace, after.placement)

        self.jobs.stored = stored

    def _paths(self, group_version: str, plural: str) -> list[tuple[str, str | None]]:
        base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        if not self.namespaces:
            return [(f"{base}/{plural}", None)]
        return [(f"{base}/namespaces/{ns}/{plural}", ns) for ns in self.namespaces]

    def _reflect(
        self,
        store: Store[Any],
        group_version: str,
        plural: str,
        *,
        absent_retry_seconds: float | None = None,
        **options: Any,
    ) -> list[Reflector]:
        retry = self.absent_retry_seconds if absent_retry_seconds is None else absent_retry_seconds
        made = []
        for path, scope in self._paths(group_version, plural):
            source = ApiSource(
                self.connection, path, watch_timeout_seconds=self.watch_timeout_seconds, **options
            )
            made.append(Reflector(source, store, scope=scope, absent_retry_seconds=retry))
        return made

    def start(self) -> None:
        """Start every list + watch as tasks of the running loop."""
        # Cluster-wide, the CRD's watch below wakes an absent kind the moment KEDA comes: no
        # list a minute while it is away (404s the API server does not count as requests,
        # but still requests), only an hourly one should that watch miss it.
        scaled = self._reflect(
            self.scaled_objects,
            "keda.sh/v1alpha1",
            "scaledobjects",
            optional=True,
            absent_retry_seconds=(
                self.absent_retry_seconds if self.namespaces else ABSENT_WATCHED_RETRY_SECONDS
            ),
        )
        self.reflectors = [
            *self._reflect(self.deployments, "apps/v1", "deployments"),
            *self._reflect(self.jobs, "batch/v1", "jobs", label_selector=PLACEMENT_LABEL),
            *self._reflect(self.hpas, "autoscaling/v2", "horizontalpodautoscalers"),
            *scaled,
        ]
        if not self.namespaces:
            # KEDA installed or removed: list ScaledObjects again at once, not a minute later.
            crd = ApiSource(
                self.connection,
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                field_selector=f"metadata.name={KEDA_CRD}",
                optional=True,
                watch_timeout_seconds=self.watch_timeout_seconds,
            )

            def wake() -> None:
                for reflector in scaled:
                    reflector.wake()

            self.reflectors.append(
                Reflector(
                    crd,
                    self.keda_crd,
                    absent_retry_seconds=ABSENT_WATCHED_RETRY_SECONDS,
                    on_change=wake,
                )
            )
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(r.run(), name=r.source.name) for r in self.reflectors]

    @property
    def stores(self) -> tuple[Store[Any], ...]:
        return (self.deployments, self.jobs, self.hpas, self.scaled_objects)

    def synced(self) -> bool:
        return all(store.synced(ns) for store in self.stores for ns in (self.namespaces or (None,)))

    async def wait_synced(self, timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.synced():
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    def not_synced(self) -> list[str]:
        return [
            f"{store.kind}: {store.last_error or 'listing'}"
            for store in self.stores
            if not all(store.synced(ns) for ns in (self.namespaces or (None,)))
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.connection.close()

    # -- what an evaluation reads ----------------------------------------------------------

    def deployment(self, namespace: str, name: str) -> DeploymentState | None:
        cached = self.deployments.get(namespace, name)
        return None if cached is None else cached.state

    def held_by(self, namespace: str, placement: str) -> list[DeploymentState]:
        return [
            cached.state
            for cached in self.deployments.in_namespace(namespace)
            if cached.hold_label == placement
        ]

    def placement_jobs(self, namespace: str, placement: str) -> list[JobObservation]:
        return [
            job.observation
            for job in self.jobs.in_namespace(namespace)
            if job.placement == placement
        ]

    def autoscalers_on(self, namespace: str, deployment: str) -> list[Autoscaler]:
        found = [hpa for hpa in self.hpas.in_namespace(namespace) if hpa.targets(deployment)]
        return found + [
            so for so in self.scaled_objects.in_namespace(namespace) if so.targets(deployment)
        ]

    def scaled_object_placement(self, namespace: str, name: str) -> str | None:
        """The cached ScaledObject `name`'s placement label ("" none); None: not cached."""
        if self.scaled_objects.absent:
            return None
        found = self.scaled_objects.get(namespace, name)
        return None if found is None else found.placement

    def keda_hpa_taken(self, namespace: str, scaled_object: str) -> str | None:
        """Cluster.cached_keda_hpa_taken, from the cached HPAs."""
        return foreign_hpa(self.hpas.get(namespace, keda_hpa_name(scaled_object)), scaled_object)

    @property
    def keda_installed(self) -> bool:
        return not self.scaled_objects.absent
