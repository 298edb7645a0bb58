"""The operator's only conversation with Kubernetes objects other than its own placements:
Deployments (read, scale, restore), Jobs (create, read, delete old ones), autoscalers (detect
conflicts), and the placements' status subresource.

With watch caches (kubewatch.ClusterCaches, as the operator runs) every read is served from
memory and only writes are requests; each write's answer goes into the cache, so the next
evaluation reads its own write. Without them (tools, some tests) each read is a request.

Every request carries a timeout: a stalled API server must not hold a worker thread forever.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from typing import Any, cast

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from placement.adapters.kubewatch import (
    ClusterCaches,
    deployment_of,
    int_or_none,
    job_observation,
)
from placement.adapters.telemetry import Telemetry
from placement.core.api import GROUP, PLURAL, VERSION
from placement.core.cluster import HoldConflict as HoldConflict
from placement.core.cluster import Refused, Retry
from placement.core.labels import (
    BASELINE_ANNOTATION,
    HELD_SINCE_ANNOTATION,
    HOLD_ANNOTATIONS,
    MANAGED_BY_ANNOTATION,
    ORIGINAL_REPLICAS_ANNOTATION,
    PLACEMENT_LABEL,
)
from placement.core.observation import DeploymentState as DeploymentState
from placement.core.observation import ScaledObjectHolder, ScaledObjectState
from placement.core.policy import JobObservation
from placement.core.scaledobject import foreign_keda_hpa, keda_hpa_name, scaled_object_name

DEFAULT_TIMEOUT_SECONDS = 10.0
# The owner of the fields the operator applies (server-side apply) on its ScaledObjects.
FIELD_MANAGER = "placement-operator"
KEDA_GROUP, KEDA_VERSION, SCALED_OBJECTS = "keda.sh", "v1alpha1", "scaledobjects"
# Whether KEDA is installed changes rarely: its discovery answer is asked again after this.
KEDA_DISCOVERY_SECONDS = 300.0
# KEDA found missing is asked again sooner: installing it should not wait minutes to count.
KEDA_ABSENT_SECONDS = 20.0


# A merge patch that removes the hold: its annotations and its label.
WITHOUT_HOLD: dict[str, Any] = {
    "annotations": dict.fromkeys(HOLD_ANNOTATIONS),
    "labels": {PLACEMENT_LABEL: None},
}


# Refusals of a Deployment write that no retry will change.
PERMANENT_REFUSALS = frozenset({400, 403, 404, 422})


class KubeAdapter:
    """Typed operations on Deployments, Jobs and autoscalers through one ApiClient."""

    # Whether KEDA is served, and when that was asked (monotonic); None: not asked yet.
    _keda_known: tuple[float, bool] | None = None

    def __init__(
        self,
        api_client: client.ApiClient,
        telemetry: Telemetry | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        caches: ClusterCaches | None = None,
    ) -> None:
        self.telemetry = telemetry or Telemetry()
        self.timeout = timeout
        self.api_client = api_client
        self.apps = client.AppsV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.autoscaling = client.AutoscalingV2Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.caches = caches
        # Deployments whose conditional write met a 409: the cache may be behind the API
        # server, so the next read of each is a request (and refreshes the cache).
        self._stale: set[tuple[str, str]] = set()
        self._stale_lock = threading.Lock()

    # -- Deployments ------------------------------------------------------------------

    def read_deployment(self, namespace: str, name: str) -> DeploymentState | None:
        if self.caches is not None and not self._was_stale(namespace, name):
            return self.caches.deployment(namespace, name)
        try:
            deployment = self.apps.read_namespaced_deployment(
                name, namespace, _request_timeout=self.timeout
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        self._remember_deployment(deployment)
        return deployment_state(deployment)

    def claimed_by(self, namespace: str, placement: str) -> list[DeploymentState]:
        """Deployments whose hold annotations name this placement, whether or not their count
        to restore is valid: selected by the hold label, written with them."""
        if self.caches is not None:
            states = self.caches.held_by(namespace, placement)
        else:
            deployments = self.apps.list_namespaced_deployment(
                namespace,
                label_selector=f"{PLACEMENT_LABEL}={placement}",
                _request_timeout=self.timeout,
            ).items
            states = [deployment_state(item) for item in deployments]
        return [state for state in states if state.managed_by == placement]

    def _was_stale(self, namespace: str, name: str) -> bool:
        with self._stale_lock:
            if (namespace, name) in self._stale:
                self._stale.discard((namespace, name))
                return True
        return False

    def _remember_deployment(self, deployment: Any) -> None:
        """A Deployment the API server answered with: into the cache (if newer)."""
        if self.caches is not None and deployment is not None:
            self.caches.deployments.put(plain(deployment))

    def placement_exists(self, namespace: str, name: str) -> bool:
        try:
            self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=self.timeout
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def scale_for_batch(
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
        """Scale down and record what a restarted operator needs (the count to restore, since
        when, the utilization measured before) in one write: never one without the other.

        With `resource_version` the write is conditional: the API server refuses it (409,
        raised as HoldConflict) when the Deployment changed since that read, e.g. because
        another placement took the hold first."""
        body = hold_patch(
            replicas=replicas,
            original=original,
            placement=placement,
            since=since,
            baseline_utilization=baseline_utilization,
            resource_version=resource_version,
        )
        try:
            self._patch_deployment(namespace, name, body)
        except ApiException as error:
            if error.status == 409:
                with self._stale_lock:
                    self._stale.add((namespace, name))
                raise HoldConflict(f"deployment/{name} changed since it was read") from error
            raise
        self.telemetry.actuated("scale_down")

    def restore(self, namespace: str, name: str, *, replicas: int) -> None:
        """Scale back and drop the operator's annotations, in one write."""
        self._patch_deployment(
            namespace,
            name,
            {
                "metadata": WITHOUT_HOLD,
                "spec": {"replicas": replicas},
            },
        )
        self.telemetry.actuated("restore")

    def forget(self, namespace: str, name: str) -> None:
        """Drop the operator's annotations without touching replicas."""
        self._patch_deployment(namespace, name, {"metadata": WITHOUT_HOLD})

    def _patch_deployment(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        """A refusal for good (a policy, a webhook, lost rights, the Deployment gone) raises
        Refused; transient errors raise ApiException."""
        # Without a resourceVersion in the body a merge patch cannot hit a 409 conflict.
        try:
            patched = self.apps.patch_namespaced_deployment(
                name,
                namespace,
                body,
                _content_type="application/merge-patch+json",
                _request_timeout=self.timeout,
            )
        except ApiException as error:
            if error.status in PERMANENT_REFUSALS:
                raise Refused(f"{error.status}: {api_message(error)}") from error
            raise
        self._remember_deployment(patched)

    # -- the placement's own status -----------------------------------------------------

    def patch_placement_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource (written here, not by kopf: a refused write is
        then reported and the placement still evaluated, instead of ending its timer)."""
        self.custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": status},
            _content_type="application/merge-patch+json",
            _request_timeout=self.timeout,
        )

    # -- Autoscalers that would fight over .spec.replicas -------------------------------

    def conflicting_autoscalers(self, namespace: str, deployment: str) -> list[str]:
        if self.caches is not None:
            return [f"{a.kind}/{a.name}" for a in self.caches.autoscalers_on(namespace, deployment)]
        found: list[str] = []
        autoscalers = self.autoscaling.list_namespaced_horizontal_pod_autoscaler(
            namespace, _request_timeout=self.timeout
        ).items
        for hpa in autoscalers:
            ref = hpa.spec.scale_target_ref if hpa.spec else None
            if ref and ref.kind == "Deployment" and ref.name == deployment:
                found.append(f"HorizontalPodAutoscaler/{hpa.metadata and hpa.metadata.name}")
        try:
            scaled = cast(
                dict[str, Any],
                self.custom.list_namespaced_custom_object(
                    "keda.sh", "v1alpha1", namespace, "scaledobjects", _request_timeout=self.timeout
                ),
            )
        except ApiException as error:
            if error.status not in (403, 404):  # KEDA not installed, or not ours to read
                raise
            scaled = {"items": []}
        for item in scaled.get("items", []):
            scaled_ref: dict[str, Any] = item.get("spec", {}).get("scaleTargetRef", {})
            if (
                scaled_ref.get("kind", "Deployment") == "Deployment"
                and scaled_ref.get("name") == deployment
            ):
                found.append(f"ScaledObject/{item['metadata']['name']}")
        return found

    def _scaled_objects(
        self, namespace: str, selector: str | None = None, *, field_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """The namespace's ScaledObjects; none when KEDA is not installed or not ours to
        read."""
        try:
            listed = cast(
                dict[str, Any],
                self.custom.list_namespaced_custom_object(
                    KEDA_GROUP,
                    KEDA_VERSION,
                    namespace,
                    SCALED_OBJECTS,
                    label_selector=selector,
                    field_selector=field_selector,
                    _request_timeout=self.timeout,
                ),
            )
        except ApiException as error:
            if error.status not in (403, 404):
                raise
            return []
        return list(listed.get("items", []))

    # -- the placement's own KEDA ScaledObject (async mode) -----------------------------

    def keda_installed(self) -> bool:
        """Whether keda.sh/v1alpha1 serves scaledobjects: the discovery API (readable by
        every authenticated user, no RBAC rule needed), asked at most every few minutes."""
        now = time.monotonic()
        if self._keda_known is not None:
            asked, known = self._keda_known
            if now - asked < (KEDA_DISCOVERY_SECONDS if known else KEDA_ABSENT_SECONDS):
                return known
        try:
            served = self.custom.get_api_resources(
                KEDA_GROUP, KEDA_VERSION, _request_timeout=self.timeout
            )
            installed = any(r.name == SCALED_OBJECTS for r in served.resources or [])
        except (ApiException, urllib3.exceptions.HTTPError) as error:
            if isinstance(error, ApiException) and error.status == 404:
                installed = False
            elif self._keda_known is not None:
                # A failed look-up is no news: a placement in async must not leave it because
                # discovery hiccuped. Asked again at the next evaluation.
                return self._keda_known[1]
            else:
                raise
        self._keda_known = (now, installed)
        return installed

    def placement_scaled_object(self, namespace: str, placement: str) -> ScaledObjectState | None:
        """The ScaledObject this operator applied for `placement` (its name and its label),
        or None."""
        for item in self._scaled_objects(namespace, f"{PLACEMENT_LABEL}={placement}"):
            if _is_own(item, placement):
                return scaled_object_state(item)
        return None

    def scaled_object_placement(self, namespace: str, name: str) -> str | None:
        """Cluster.scaled_object_placement."""
        holder = self.scaled_object_holder(namespace, name)
        return None if holder is None else holder.placement

    def scaled_object_holder(self, namespace: str, name: str) -> ScaledObjectHolder | None:
        """Cluster.scaled_object_holder: listed by name (the operator's role lists
        ScaledObjects; it has no get on them)."""
        for item in self._scaled_objects(namespace, field_selector=f"metadata.name={name}"):
            return holder_of(item)
        return None

    def cached_scaled_object_placement(self, namespace: str, name: str) -> str | None:
        """Cluster.cached_scaled_object_placement: no request, so None without caches."""
        if self.caches is None:
            return None
        return self.caches.scaled_object_placement(namespace, name)

    def cached_keda_hpa_taken(self, namespace: str, scaled_object: str) -> str | None:
        """Cluster.cached_keda_hpa_taken; without caches, listed by name (asked only for a
        placement moving to async)."""
        if self.caches is not None:
            return self.caches.keda_hpa_taken(namespace, scaled_object)
        return self.keda_hpa_taken(namespace, scaled_object)

    def keda_hpa_taken(self, namespace: str, scaled_object: str) -> str | None:
        """Cluster.keda_hpa_taken: listed by name (the chart grants list on HPAs, not get)."""
        listed = self.autoscaling.list_namespaced_horizontal_pod_autoscaler(
            namespace,
            field_selector=f"metadata.name={keda_hpa_name(scaled_object)}",
            _request_timeout=self.timeout,
        ).items
        for hpa in listed:
            ref = hpa.spec.scale_target_ref if hpa.spec else None
            owners = (hpa.metadata.owner_references if hpa.metadata else None) or []
            return foreign_keda_hpa(
                str(hpa.metadata.name if hpa.metadata else ""),
                [
                    {
                        "apiVersion": o.api_version,
                        "kind": o.kind,
                        "name": o.name,
                        "controller": o.controller,
                    }
                    for o in owners
                ],
                f"{ref.kind if ref else ''}/{ref.name if ref else ''}",
                scaled_object,
            )
        return None

    def create_scaled_object(self, namespace: str, manifest: dict[str, Any]) -> bool:
        """Cluster.create_scaled_object: a POST, so one that came since the read is never
        written over (a forced apply would take it over)."""
        try:
            self.custom.create_namespaced_custom_object(
                KEDA_GROUP,
                KEDA_VERSION,
                namespace,
                SCALED_OBJECTS,
                manifest,
                field_manager=FIELD_MANAGER,
                _request_timeout=self.timeout,
            )
        except ApiException as error:
            if error.status == 409:
                return False
            if error.status in PERMANENT_REFUSALS:
                raise Refused(f"{error.status}: {api_message(error)}") from error
            raise
        self.telemetry.actuated("scaled_object_applied")
        return True

    def apply_scaled_object(
        self, namespace: str, manifest: dict[str, Any], *, resource_version: str | None = None
    ) -> None:
        """Update the ScaledObject by server-side apply: the operator owns the fields it
        writes, KEDA keeps its own (finalizer, status, its label). A conflict (e.g. not the
        `resource_version` read any more) is retried; a refusal for good raises Refused."""
        name = manifest["metadata"]["name"]
        manifest = over_version(manifest, resource_version)
        try:
            self.custom.patch_namespaced_custom_object(
                KEDA_GROUP,
                KEDA_VERSION,
                namespace,
                SCALED_OBJECTS,
                name,
                manifest,
                field_manager=FIELD_MANAGER,
                force=True,  # the operator's fields are the operator's, whoever edited them
                _content_type="application/apply-patch+yaml",
                _request_timeout=self.timeout,
            )
        except ApiException as error:
            if error.status == 409:
                raise Retry(f"scaledobject/{name} changed while being applied") from error
            if error.status in PERMANENT_REFUSALS:
                raise Refused(f"{error.status}: {api_message(error)}") from error
            raise
        self.telemetry.actuated("scaled_object_applied")

    def delete_scaled_object(self, namespace: str, name: str) -> bool:
        """Delete the ScaledObject (KEDA's finalizer stops its scaling and restores the
        original replicas); False when it was already gone."""
        try:
            self.custom.delete_namespaced_custom_object(
                KEDA_GROUP,
                KEDA_VERSION,
                namespace,
                SCALED_OBJECTS,
                name,
                _request_timeout=self.timeout,
            )
        except ApiException as error:
            if error.status == 404:
                return False
            if error.status in PERMANENT_REFUSALS:
                raise Refused(f"{error.status}: {api_message(error)}") from error
            raise
        self.telemetry.actuated("scaled_object_deleted")
        return True

    # -- Jobs ---------------------------------------------------------------------------

    def create_job(
        self, namespace: str, manifest: dict[str, Any], *, dry_run: bool = False
    ) -> bool:
        """Create the Job (or only have the API server validate it, with `dry_run`); False
        when a Job of that name already exists (names are deterministic per window, so that
        is the same Job, not a conflict). A refusal for good raises Refused; transient errors
        raise ApiException."""
        try:
            created = self.batch.create_namespaced_job(
                namespace,
                manifest,  # type: ignore[arg-type]
                dry_run="All" if dry_run else None,
                _request_timeout=self.timeout,
            )
        except ApiException as error:
            if error.status == 409:
                return False
            if error.status is None or error.status >= 500 or error.status == 429:
                raise  # transient: kopf retries the handler
            raise Refused(f"{error.status}: {api_message(error)}") from error
        if not dry_run:
            if self.caches is not None:
                self.caches.jobs.put(plain(created))
            self.telemetry.actuated("job_created")
        return True

    def placement_jobs(self, namespace: str, placement: str) -> list[JobObservation]:
        """Every Job this placement created (found by label, so none is forgotten)."""
        if self.caches is not None:
            return self.caches.placement_jobs(namespace, placement)
        jobs = self.batch.list_namespaced_job(
            namespace,
            label_selector=f"{PLACEMENT_LABEL}={placement}",
            _request_timeout=self.timeout,
        ).items
        return [job_state(job) for job in jobs]

    def delete_job(self, namespace: str, name: str) -> bool:
        """Delete a finished Job and its pods; False when it was already gone. Any failure
        raises Refused (housekeeping: retried at the next evaluation)."""
        try:
            self.batch.delete_namespaced_job(
                name,
                namespace,
                propagation_policy="Background",
                _request_timeout=self.timeout,
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise Refused(api_message(error)) from error
        except urllib3.exceptions.HTTPError as error:
            raise Refused(str(error)) from error
        if self.caches is not None:
            self.caches.jobs.discard(namespace, name)
        self.telemetry.actuated("job_deleted")
        return True


def hold_patch(
    *,
    replicas: int,
    original: int,
    placement: str,
    since: datetime,
    baseline_utilization: float | None,
    resource_version: str | None,
) -> dict[str, Any]:
    """The merge patch that takes a hold: the replicas and the hold's record in one write."""
    annotations = {
        ORIGINAL_REPLICAS_ANNOTATION: str(original),
        MANAGED_BY_ANNOTATION: placement,
        HELD_SINCE_ANNOTATION: since.isoformat(),
        BASELINE_ANNOTATION: None if baseline_utilization is None else repr(baseline_utilization),
    }
    # The label finds held Deployments with one selected list; the annotations stay the
    # record of the count.
    metadata: dict[str, Any] = {
        "annotations": annotations,
        "labels": {PLACEMENT_LABEL: placement},
    }
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version  # a precondition in a merge patch
    return {"metadata": metadata, "spec": {"replicas": replicas}}


def plain(model: Any) -> dict[str, Any]:
    """A client model as the API server's JSON (camelCase keys, times as text)."""
    return cast(dict[str, Any], _serializer().sanitize_for_serialization(model))  # type: ignore[no-untyped-call]


_SERIALIZERS: list[client.ApiClient] = []


def _serializer() -> client.ApiClient:
    if not _SERIALIZERS:
        _SERIALIZERS.append(client.ApiClient())
    return _SERIALIZERS[0]


def deployment_state(deployment: client.V1Deployment) -> DeploymentState:
    return deployment_of(plain(deployment)).state


def scaled_object_state(item: dict[str, Any]) -> ScaledObjectState:
    """A ScaledObject as the policy sees it; fields edited into nonsense read as absent."""
    metadata = item.get("metadata") or {}
    spec = item.get("spec") or {}
    conditions = {
        c.get("type"): c.get("status")
        for c in (item.get("status") or {}).get("conditions") or []
        if isinstance(c, dict)
    }
    return ScaledObjectState(
        name=str(metadata.get("name", "")),
        deployment=str((spec.get("scaleTargetRef") or {}).get("name", "")),
        min_replicas=int_or_none(_text(spec.get("minReplicaCount"))),
        max_replicas=int_or_none(_text(spec.get("maxReplicaCount"))),
        ready=_condition(conditions.get("Ready")),
        active=_condition(conditions.get("Active")),
        resource_version=metadata.get("resourceVersion"),
    )


def holder_of(item: dict[str, Any]) -> ScaledObjectHolder:
    version = (item.get("metadata") or {}).get("resourceVersion")
    return ScaledObjectHolder(placement_label(item), None if version is None else str(version))


def over_version(manifest: dict[str, Any], resource_version: str | None) -> dict[str, Any]:
    """The manifest to apply only over `resource_version` (a resourceVersion in an applied
    object is a precondition), or as it is."""
    if resource_version is None:
        return manifest
    return {**manifest, "metadata": {**manifest["metadata"], "resourceVersion": resource_version}}


def placement_label(item: dict[str, Any]) -> str:
    """A ScaledObject's placement label, "" when it has none."""
    labels = (item.get("metadata") or {}).get("labels") or {}
    return str(labels.get(PLACEMENT_LABEL) or "")


def _is_own(item: dict[str, Any], placement: str) -> bool:
    metadata = item.get("metadata") or {}
    labels = metadata.get("labels") or {}
    return (
        metadata.get("name") == scaled_object_name(placement)
        and labels.get(PLACEMENT_LABEL) == placement
    )


def _text(value: Any) -> str | None:
    return None if value is None or isinstance(value, bool) else str(value)


def _condition(status: Any) -> bool | None:
    return {"True": True, "False": False}.get(status) if isinstance(status, str) else None


def api_message(error: ApiException) -> str:
    """What the API server said, from its Status body (bounded), else the HTTP reason."""
    try:
        return str(json.loads(error.body or "")["message"])[:500]
    except (TypeError, ValueError, KeyError):
        return str(error.reason)


def job_state(job: client.V1Job) -> JobObservation:
    """A Job's outcome and pod-hours (kubewatch.job_observation, on the client's model)."""
    return job_observation(plain(job))
