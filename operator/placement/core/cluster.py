"""The Kubernetes operations the executor needs, as a Protocol beside `Metrics`: the real
adapter (`kube.KubeAdapter`) and the in-memory fake (`fakecluster.FakeCluster`) both fit it.
Pure: no client library here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from placement.core.observation import DeploymentState, ScaledObjectHolder, ScaledObjectState
from placement.core.policy import JobObservation


class HoldConflict(Exception):
    """The Deployment changed since it was read, so the hold was not taken (409)."""


class Refused(Exception):
    """The API server refused a write for good (a 4xx other than 409 and 429): `detail` says
    what it answered, e.g. "422: Job.batch ... is invalid"."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Cluster(Protocol):
    """What one evaluation reads and writes, besides metrics."""

    def read_deployment(self, namespace: str, name: str) -> DeploymentState | None: ...

    def claimed_by(self, namespace: str, placement: str) -> list[DeploymentState]: ...

    def placement_exists(self, namespace: str, name: str) -> bool: ...

    def conflicting_autoscalers(self, namespace: str, deployment: str) -> list[str]: ...

    def placement_jobs(self, namespace: str, placement: str) -> list[JobObservation]: ...

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
    ) -> None: ...

    def restore(self, namespace: str, name: str, *, replicas: int) -> None: ...

    def forget(self, namespace: str, name: str) -> None: ...

    def create_job(
        self, namespace: str, manifest: dict[str, Any], *, dry_run: bool = False
    ) -> bool: ...

    def delete_job(self, namespace: str, name: str) -> bool: ...

    def keda_installed(self) -> bool:
        """Whether KEDA's ScaledObjects are served (asked rarely: the answer is cached)."""
        ...

    def placement_scaled_object(
        self, namespace: str, placement: str
    ) -> ScaledObjectState | None: ...

    def scaled_object_placement(self, namespace: str, name: str) -> str | None:
        """The placement label of the ScaledObject `name` ("" when it has none), None when
        there is no such ScaledObject: read before applying, so that another's is never
        taken over."""
        ...

    def scaled_object_holder(self, namespace: str, name: str) -> ScaledObjectHolder | None:
        """scaled_object_placement with the resourceVersion read (None: no such one)."""
        ...

    def cached_scaled_object_placement(self, namespace: str, name: str) -> str | None:
        """scaled_object_placement as the watch cache last saw it (no request); None also
        without a cache. For planning only: the executor reads fresh before applying."""
        ...

    def cached_keda_hpa_taken(self, namespace: str, scaled_object: str) -> str | None:
        """The HPA KEDA would make for the ScaledObject `scaled_object` (its name,
        keda-hpa-<name>) when one of that name exists that KEDA did not make for that
        ScaledObject (no controller owner reference to it): KEDA would take it over and
        rewrite it to scale the placement's target. None: none, or KEDA's own, or no cache
        to ask (as the watch cache saw it: no request)."""
        ...

    def keda_hpa_taken(self, namespace: str, scaled_object: str) -> str | None:
        """cached_keda_hpa_taken read fresh, just before the ScaledObject is created: one
        created since the watch cache saw the namespace is caught too."""
        ...

    def create_scaled_object(self, namespace: str, manifest: dict[str, Any]) -> bool:
        """Create the ScaledObject; False when one of that name exists already (409
        AlreadyExists): the executor reads it again, it never writes over it."""
        ...

    def apply_scaled_object(
        self, namespace: str, manifest: dict[str, Any], *, resource_version: str | None = None
    ) -> None:
        """Server-side apply, forced; with `resource_version`, only over that version (one
        replaced since it was read: Retry)."""
        ...

    def delete_scaled_object(self, namespace: str, name: str) -> bool: ...

    def patch_placement_status(self, namespace: str, name: str, status: dict[str, Any]) -> None: ...


class Retry(Exception):
    """The world changed while a plan was carried out: evaluate again shortly."""
