"""An in-memory `Cluster` for the fast tests: Deployments with resourceVersions checked the
way the API server checks them, Jobs by name, autoscalers, and faults to inject (a Job the
API server refuses, a hold another placement takes first). Pure."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from placement.core.cluster import HoldConflict, Refused, Retry
from placement.core.labels import PLACEMENT_LABEL
from placement.core.observation import DeploymentState, ScaledObjectHolder, ScaledObjectState
from placement.core.policy import JobObservation, JobOutcome
from placement.core.scaledobject import foreign_keda_hpa, keda_hpa_name, scaled_object_name


@dataclass
class FakeCluster:
    deployments: dict[str, DeploymentState] = field(default_factory=dict)
    jobs: dict[str, JobObservation] = field(default_factory=dict)
    job_owner: dict[str, str] = field(default_factory=dict)  # job -> placement label
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)
    autoscalers: dict[str, list[str]] = field(default_factory=dict)  # deployment -> names
    placements: set[str] = field(default_factory=set)
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    scaled_objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> manifest
    keda: bool = True  # whether KEDA's ScaledObjects are served
    writes: list[str] = field(default_factory=list)  # every write, in order
    # Faults: the API server refuses Jobs with this detail (dry runs too, unless only_create).
    refuse_jobs: str | None = None
    refuse_only_create: bool = False
    # Another placement takes the hold between this one's read and its write.
    taken_by: str | None = None
    # A ScaledObject someone creates between the executor's read and its create.
    scaled_object_racer: dict[str, Any] | None = None
    # HPAs by name: (what they scale, "Kind/name"; their owner references).
    hpas: dict[str, tuple[str, list[dict[str, Any]]]] = field(default_factory=dict)
    _so_seen: list[Any] = field(default_factory=list, repr=False)

    def add(self, name: str, replicas: int) -> None:
        self.deployments[name] = DeploymentState(
            name=name,
            replicas=replicas,
            original_replicas=None,
            managed_by=None,
            resource_version="1",
        )

    def scale(self, name: str, replicas: int) -> None:
        """A person (or GitOps) sets the replicas."""
        self._bump(name, replicas=replicas)

    def finish(self, job: str, outcome: JobOutcome, at: datetime, pod_hours: float) -> None:
        self.jobs[job] = replace(
            self.jobs[job], outcome=outcome, finished_at=at, pod_hours=pod_hours
        )

    def _bump(self, name: str, **changes: Any) -> None:
        current = self.deployments[name]
        version = str(int(current.resource_version or "0") + 1)
        self.deployments[name] = replace(current, resource_version=version, **changes)

    # -- Cluster ----------------------------------------------------------------------------

    def read_deployment(self, namespace: str, name: str) -> DeploymentState | None:
        return self.deployments.get(name)

    def claimed_by(self, namespace: str, placement: str) -> list[DeploymentState]:
        return [d for d in self.deployments.values() if d.managed_by == placement]

    def placement_exists(self, namespace: str, name: str) -> bool:
        return name in self.placements

    def conflicting_autoscalers(self, namespace: str, deployment: str) -> list[str]:
        return list(self.autoscalers.get(deployment, []))

    def keda_installed(self) -> bool:
        return self.keda

    def placement_scaled_object(self, namespace: str, placement: str) -> ScaledObjectState | None:
        for name, manifest in self.scaled_objects.items():
            labels = manifest["metadata"].get("labels", {})
            if name == scaled_object_name(placement) and labels.get(PLACEMENT_LABEL) == placement:
                spec = manifest["spec"]
                return ScaledObjectState(
                    name=name,
                    deployment=spec["scaleTargetRef"]["name"],
                    min_replicas=spec.get("minReplicaCount"),
                    max_replicas=spec.get("maxReplicaCount"),
                )
        return None

    def scaled_object_placement(self, namespace: str, name: str) -> str | None:
        manifest = self.scaled_objects.get(name)
        if manifest is None:
            return None
        return str((manifest["metadata"].get("labels") or {}).get(PLACEMENT_LABEL, ""))

    def scaled_object_holder(self, namespace: str, name: str) -> ScaledObjectHolder | None:
        placement = self.scaled_object_placement(namespace, name)
        if placement is None:
            return None
        return ScaledObjectHolder(placement, self._so_version(name))

    def cached_scaled_object_placement(self, namespace: str, name: str) -> str | None:
        return self.scaled_object_placement(namespace, name)

    def cached_keda_hpa_taken(self, namespace: str, scaled_object: str) -> str | None:
        return self.keda_hpa_taken(namespace, scaled_object)

    def keda_hpa_taken(self, namespace: str, scaled_object: str) -> str | None:
        name = keda_hpa_name(scaled_object)
        if name not in self.hpas:
            return None
        target, owners = self.hpas[name]
        return foreign_keda_hpa(name, owners, target, scaled_object)

    def placement_jobs(self, namespace: str, placement: str) -> list[JobObservation]:
        return [job for name, job in self.jobs.items() if self.job_owner.get(name) == placement]

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
        if self.taken_by is not None:
            self._bump(
                name, replicas=replicas, original_replicas=original, managed_by=self.taken_by
            )
            self.taken_by = None
        if (
            resource_version is not None
            and resource_version != self.deployments[name].resource_version
        ):
            raise HoldConflict(name)
        self.writes.append(f"scale {name} {replicas} (hold {original})")
        self._bump(
            name,
            replicas=replicas,
            original_replicas=original,
            managed_by=placement,
            held_since=since,
            baseline_utilization=baseline_utilization,
        )

    def restore(self, namespace: str, name: str, *, replicas: int) -> None:
        self.writes.append(f"restore {name} {replicas}")
        self._bump(
            name,
            replicas=replicas,
            original_replicas=None,
            managed_by=None,
            held_since=None,
            baseline_utilization=None,
        )

    def forget(self, namespace: str, name: str) -> None:
        self.writes.append(f"forget {name}")
        self._bump(
            name,
            original_replicas=None,
            managed_by=None,
            held_since=None,
            baseline_utilization=None,
        )

    def create_job(
        self, namespace: str, manifest: dict[str, Any], *, dry_run: bool = False
    ) -> bool:
        name = manifest["metadata"]["name"]
        if self.refuse_jobs is not None and not (dry_run and self.refuse_only_create):
            raise Refused(self.refuse_jobs)
        if dry_run:
            return True
        if name in self.jobs:
            return False
        self.writes.append(f"create job {name}")
        self.jobs[name] = JobObservation(name=name, outcome=JobOutcome.RUNNING)
        self.job_owner[name] = manifest["metadata"]["labels"]["placement.runplacement.io/placement"]
        self.manifests[name] = manifest
        return True

    def delete_job(self, namespace: str, name: str) -> bool:
        if self.jobs.pop(name, None) is None:
            return False
        self.writes.append(f"delete job {name}")
        return True

    def create_scaled_object(self, namespace: str, manifest: dict[str, Any]) -> bool:
        name = manifest["metadata"]["name"]
        self._race()
        if not self.keda:
            raise Refused(f"404: the server could not find the requested resource ({name})")
        if name in self.scaled_objects:
            return False  # 409 AlreadyExists
        self.writes.append(f"create scaledobject {name}")
        self.scaled_objects[name] = manifest
        return True

    def _so_version(self, name: str) -> str:
        """A ScaledObject's resourceVersion here: which manifest object is stored (every
        write stores another; all are kept in `_so_seen`, so no identity is reused)."""
        current = self.scaled_objects.get(name)
        self._so_seen.append(current)
        return str(id(current))

    def _race(self) -> None:
        if self.scaled_object_racer is not None:
            racer, self.scaled_object_racer = self.scaled_object_racer, None
            self.scaled_objects[racer["metadata"]["name"]] = racer

    def apply_scaled_object(
        self, namespace: str, manifest: dict[str, Any], *, resource_version: str | None = None
    ) -> None:
        name = manifest["metadata"]["name"]
        self._race()
        if not self.keda:
            raise Refused(f"404: the server could not find the requested resource ({name})")
        if resource_version is not None and resource_version != self._so_version(name):
            raise Retry(f"scaledobject/{name} changed while being applied")
        self.writes.append(f"apply scaledobject {name}")
        self.scaled_objects[name] = manifest

    def delete_scaled_object(self, namespace: str, name: str) -> bool:
        if self.scaled_objects.pop(name, None) is None:
            return False
        self.writes.append(f"delete scaledobject {name}")
        return True

    def patch_placement_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.statuses[name] = _merged(self.statuses.get(name, {}), status)


def _merged(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386): None deletes, objects merge, anything else replaces."""
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged
