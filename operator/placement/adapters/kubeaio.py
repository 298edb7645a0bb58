"""The `Cluster` operations as coroutines, in kopf's event loop: what kube.KubeAdapter does with
the synchronous client on worker threads, done over aiohttp with the watches' credentials
(kubewatch.Connection), on a session of its own with a bounded number of connections.

Reads come from the watch caches (kubewatch.ClusterCaches); the requests are the writes, the
placement look-up (`placement_exists`), KEDA's discovery and the placement's own
ScaledObject, and a Deployment read again after a conflict. Errors are raised as the
synchronous adapter raises them (HoldConflict, Refused, Retry, and the client's ApiException
for the rest), so the executor and the handlers treat both the same; a timeout raises
asyncio.TimeoutError and the handler is retried.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from kubernetes.client.exceptions import ApiException

from placement.adapters.kube import (
    DEFAULT_TIMEOUT_SECONDS,
    FIELD_MANAGER,
    KEDA_ABSENT_SECONDS,
    KEDA_DISCOVERY_SECONDS,
    KEDA_GROUP,
    KEDA_VERSION,
    PERMANENT_REFUSALS,
    SCALED_OBJECTS,
    WITHOUT_HOLD,
    _is_own,
    api_message,
    hold_patch,
    holder_of,
    over_version,
    scaled_object_state,
)
from placement.adapters.kubewatch import (
    ClusterCaches,
    Connection,
    deployment_of,
    foreign_hpa,
    hpa_of,
)
from placement.adapters.telemetry import Telemetry
from placement.core.api import GROUP, PLURAL, VERSION
from placement.core.cluster import HoldConflict, Refused, Retry
from placement.core.labels import PLACEMENT_LABEL
from placement.core.observation import DeploymentState, ScaledObjectHolder, ScaledObjectState
from placement.core.policy import JobObservation
from placement.core.scaledobject import keda_hpa_name

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class AsyncKube:
    """The operator's `Cluster`, every method a coroutine; reads from `caches`."""

    # Whether KEDA is served, and when that was asked (monotonic); None: not asked yet.
    _keda_known: tuple[float, bool] | None = None

    def __init__(
        self,
        connection: Connection,
        caches: ClusterCaches,
        telemetry: Telemetry | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.connection = connection
        self.caches = caches
        self.telemetry = telemetry or Telemetry()
        # Per connect and per read, as the synchronous client's timeout: the wait for one
        # of the capped connections is not the API server's slowness (1,000 evaluations
        # writing status at once queue there; a total bound failed them all).
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=timeout, sock_read=timeout
        )
        # Deployments whose conditional write met a 409: the cache may be behind the API
        # server, so the next read of each is a request (and refreshes the cache).
        self._stale: set[tuple[str, str]] = set()

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        """One request; the answer's JSON, or ApiException with the server's Status body."""
        url = f"{self.connection.host}{path}"
        if query:
            url += f"?{urlencode(query)}"
        headers = self.connection.headers()
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            # No NaN or infinity: the API server would refuse it, better to know here.
            data = json.dumps(body, allow_nan=False)
        async with self.connection.session.request(
            method, url, data=data, headers=headers, timeout=self.timeout
        ) as response:
            text = await response.text()
            if response.status >= 400:
                error = ApiException(status=response.status, reason=response.reason)
                error.body = text
                raise error
        return json.loads(text) if text else None

    # -- Deployments ------------------------------------------------------------------

    async def read_deployment(self, namespace: str, name: str) -> DeploymentState | None:
        if (namespace, name) not in self._stale:
            return self.caches.deployment(namespace, name)
        self._stale.discard((namespace, name))
        try:
            deployment = await self.request("GET", _deployment_path(namespace, name))
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        self.caches.deployments.put(deployment)
        return deployment_of(deployment).state

    async def claimed_by(self, namespace: str, placement: str) -> list[DeploymentState]:
        held = self.caches.held_by(namespace, placement)
        return [state for state in held if state.managed_by == placement]

    async def placement_exists(self, namespace: str, name: str) -> bool:
        try:
            await self.request(
                "GET", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    async def scale_for_batch(
        self,
        namespace: str,
        name: str,
        *,
        replicas: int,
        original: int,
        placement: str,
        since: datetime,
        baseline_utilization: float | None,
        resource_version: str | None = None,
    ) -> None:
        """kube.KubeAdapter.scale_for_batch: conditional on `resource_version`, a 409 raises
        HoldConflict and the next read of that Deployment is a request."""
        body = hold_patch(
            replicas=replicas,
            original=original,
            placement=placement,
            since=since,
            baseline_utilization=baseline_utilization,
            resource_version=resource_version,
        )
        try:
            await self._patch_deployment(namespace, name, body)
        except ApiException as error:
            if error.status == 409:
                self._stale.add((namespace, name))
                raise HoldConflict(f"deployment/{name} changed since it was read") from error
            raise
        self.telemetry.actuated("scale_down")

    async def restore(self, namespace: str, name: str, *, replicas: int) -> None:
        await self._patch_deployment(
            namespace, name, {"metadata": WITHOUT_HOLD, "spec": {"replicas": replicas}}
        )
        self.telemetry.actuated("restore")

    async def forget(self, namespace: str, name: str) -> None:
        await self._patch_deployment(namespace, name, {"metadata": WITHOUT_HOLD})

    async def _patch_deployment(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        try:
            patched = await self.request(
                "PATCH", _deployment_path(namespace, name), body=body, content_type=MERGE_PATCH
            )
        except ApiException as error:
            if error.status in PERMANENT_REFUSALS:
                raise Refused(f"{error.status}: {api_message(error)}") from error
            raise
        if patched is not None:
            self.caches.deployments.put(patched)  # the next evaluation reads its own write

    # -- the placement's own status -----------------------------------------------------

    async def patch_placement_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> str | None:
        """The resourceVersion the write made (the daemon waits for a body that shows it)."""
        written = await self.request(
            "PATCH",
            f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status",
            body={"status": status},
            content_type=MERGE_PATCH,
        )
        version = ((written or {}).get("metadata") or {}).get("resourceVersion")
        return str(version) if version is not None else None

    # -- autoscalers and Jobs, from the caches -------------------------------------------

    async def conflicting_autoscalers(self, namespace: str, deployment: str) -> list[str]:
        return [f"{a.kind}/{a.name}" for a in self.caches.autoscalers_on(namespace, deployment)]

    async def placement_jobs(self, namespace: str, placement: str) -> list[JobObservation]:
        return self.caches.placement_jobs(namespace, placement)

    async def create_job(
        self, namespace: str, manifest: dict[str, Any], *, dry_run: bool = False
    ) -> bool:
        """kube.KubeAdapter.create_job: False when that Job exists already."""
        try:
            created = await self.request(
                "POST",
                f"/apis/batch/v1/namespaces/{namespace}/jobs",
                query={"dryRun": "All"} if dry_run else None,
                body=manifest,
            )
        except ApiException as error:
            if error.status == 409:
                return False
            if error.status is None or error.status >= 500 or error.status == 429:
                raise
            raise Refused(f"{error.status}: {api_message(error)}") from error
        if not dry_run:
            self.caches.jobs.put(created)
            self.telemetry.actuated("job_created")
        return True

    async def delete_job(self, namespace: str, name: str) -> bool:
        try:
            await self.request(
                "DELETE",
                f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
                body={"propagationPolicy": "Background"},
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise Refused(api_message(error)) from error
        except (TimeoutError, aiohttp.ClientError) as error:
            raise Refused(str(error) or type(error).__name__) from error
        self.caches.jobs.discard(namespace, name)
        self.telemetry.actuated("job_deleted")
        return True

    # -- KEDA ---------------------------------------------------------------------------

    async def placements_served(self) -> bool:
        """Whether the API server serves WorkloadPlacements (discovery, which every
        authenticated client may read: no right to read CRDs needed)."""
        try:
            served = await self.request("GET", f"/apis/{GROUP}/{VERSION}")
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return any(r.get("name") == PLURAL for r in (served or {}).get("resources") or [])

    async def keda_installed(self) -> bool:
        """kube.KubeAdapter.keda_installed: discovery, asked at most every few minutes."""
        now = time.monotonic()
        if self._keda_known is not None:
            asked, known = self._keda_known
            if now - asked < (KEDA_DISCOVERY_SECONDS if known else KEDA_ABSENT_SECONDS):
                return known
        try:
            served = await self.request("GET", f"/apis/{KEDA_GROUP}/{KEDA_VERSION}")
            installed = any(
                r.get("name") == SCALED_OBJECTS for r in (served or {}).get("resources") or []
            )
        except (TimeoutError, ApiException, aiohttp.ClientError) as error:
            if isinstance(error, ApiException) and error.status == 404:
                installed = False
            elif self._keda_known is not None:
                return self._keda_known[1]  # a hiccup is no news
            else:
                raise
        self._keda_known = (now, installed)
        return installed

    async def placement_scaled_object(
        self, namespace: str, placement: str
    ) -> ScaledObjectState | None:
        try:
            listed = await self.request(
                "GET",
                _scaled_objects_path(namespace),
                query={"labelSelector": f"{PLACEMENT_LABEL}={placement}"},
            )
        except ApiException as error:
            if error.status not in (403, 404):
                raise
            return None
        for item in (listed or {}).get("items") or []:
            if _is_own(item, placement):
                return scaled_object_state(item)
        return None

    async def cached_scaled_object_placement(self, namespace: str, name: str) -> str | None:
        return self.caches.scaled_object_placement(namespace, name)

    async def scaled_object_placement(self, namespace: str, name: str) -> str | None:
        holder = await self.scaled_object_holder(namespace, name)
        return None if holder is None else holder.placement

    async def scaled_object_holder(self, namespace: str, name: str) -> ScaledObjectHolder | None:
        """kube.KubeAdapter.scaled_object_holder: read fresh, not from the watch cache."""
        try:
            listed = await self.request(
                "GET",
                _scaled_objects_path(namespace),
                query={"fieldSelector": f"metadata.name={name}"},
            )
        except ApiException as error:
            if error.status not in (403, 404):
                raise
            return None
        for item in (listed or {}).get("items") or []:
            return holder_of(item)
        return None

    async def cached_keda_hpa_taken(self, namespace: str, scaled_object: str) -> str | None:
        return self.caches.keda_hpa_taken(namespace, scaled_object)

    async def keda_hpa_taken(self, namespace: str, scaled_object: str) -> str | None:
        """kube.KubeAdapter.keda_hpa_taken: listed by name, not from the watch cache."""
        listed = await self.request(
            "GET",
            f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers",
            query={"fieldSelector": f"metadata.name={keda_hpa_name(scaled_object)}"},
        )
        for item in (listed or {}).get("items") or []:
            return foreign_hpa(hpa_of(item), scaled_object)
        return None

    async def create_scaled_object(self, namespace: str, manifest: dict[str, Any]) -> bool:
        """kube.KubeAdapter.create_scaled_object: False when one of that name exists."""
        try:
            await self.request(
                "POST",
                _scaled_objects_path(namespace),
                query={"fieldManager": FIELD_MANAGER},
                body=manifest,
            )
        except ApiException as error:
            if error.status == 409:
                return False
            if error.status in PERMANENT_REFUSALS:
                raise Refused(f"{error.status}: {api_message(error)}") from error
            raise
        self.telemetry.actuated("scaled_object_applied")
        return True

    async def apply_scaled_object(
        self, namespace: str, manifest: dict[str, Any], *, resource_version: str | None = None
    ) -> None:
        name = manifest["metadata"]["name"]
        manifest = over_version(manifest, resource_version)
        try:
            await self.request(
                "PATCH",
                f"{_scaled_objects_path(namespace)}/{name}",
                query={"fieldManager": FIELD_MANAGER, "force": "true"},
                body=manifest,  # JSON is YAML: the apply content type takes it
                content_type=APPLY_PATCH,
            )
        except ApiException as error:
            if error.status == 409:
                raise Retry(f"scaledobject/{name} changed while being applied") from error
            if error.status in PERMANENT_REFUSALS:
                raise Refused(f"{error.status}: {api_message(error)}") from error
            raise
        self.telemetry.actuated("scaled_object_applied")

    async def delete_scaled_object(self, namespace: str, name: str) -> bool:
        try:
            await self.request("DELETE", f"{_scaled_objects_path(namespace)}/{name}")
        except ApiException as error:
            if error.status == 404:
                return False
            if error.status in PERMANENT_REFUSALS:
                raise Refused(f"{error.status}: {api_message(error)}") from error
            raise
        self.telemetry.actuated("scaled_object_deleted")
        return True


def _deployment_path(namespace: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{quote(namespace)}/deployments/{quote(name)}"


def _scaled_objects_path(namespace: str) -> str:
    return f"/apis/{KEDA_GROUP}/{KEDA_VERSION}/namespaces/{quote(namespace)}/{SCALED_OBJECTS}"
