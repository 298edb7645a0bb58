"""One observation per evaluation: the adapters read everything `reconcile` decides from,
once, into an immutable `Observation`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

from placement.adapters.telemetry import Telemetry
from placement.core.api import WorkloadPlacementSpec
from placement.core.cluster import Cluster
from placement.core.observation import DeploymentState, Observation, Reading, ScaledObjectState

if TYPE_CHECKING:
    from placement.adapters.prometheus import Metrics


def observe(
    cluster: Cluster,
    metrics: Metrics,
    spec: WorkloadPlacementSpec,
    *,
    namespace: str,
    placement: str,
    telemetry: Telemetry | None = None,
) -> Observation:
    """The target, the Deployments this placement holds, its Jobs, its ScaledObject (when
    KEDA is installed) and, when the target exists, the autoscalers on it and its
    metrics."""
    telemetry = telemetry or Telemetry()
    target = spec.target.deployment
    deployment = cluster.read_deployment(namespace, target)
    claimed = claimed_by(cluster, namespace, placement, deployment)
    jobs = tuple(cluster.placement_jobs(namespace, placement))
    keda = cluster.keda_installed()
    # Only a placement with spec.async, or one still holding a Deployment (async takes the
    # hold before it applies its ScaledObject and gives it back only after deleting it), can
    # have one: the others cost no request.
    scaled = None
    if keda and (spec.async_ is not None or claimed):
        scaled = cluster.placement_scaled_object(namespace, placement)
    if deployment is None:
        return Observation(
            deployment=None, claimed=claimed, jobs=jobs, scaled_object=scaled, keda_installed=keda
        )
    other = deployment.managed_by
    other_exists = (
        cluster.placement_exists(namespace, other) if other and other != placement else None
    )
    lookback = spec.metrics.lookback.timedelta
    reader = f"{namespace}/{placement}"
    utilization = metrics.utilization(spec.metrics.utilization, lookback, reader=reader)
    _count_failure(utilization, telemetry)
    queue: Reading | None = None
    if spec.metrics.queue_depth:
        queue = metrics.queue_depth(spec.metrics.queue_depth, lookback, reader=reader)
        _count_failure(queue, telemetry)
    demand = _optional(metrics.demand, spec.metrics.demand, lookback, reader, telemetry)
    requests = _optional(metrics.requests, spec.metrics.requests, lookback, reader, telemetry)
    async_queue = _optional(
        metrics.async_queue, spec.async_.queue if spec.async_ else None, lookback, reader, telemetry
    )
    # Demand does not shrink while the fleet is held, utilization does: demand when declared.
    source = "demand" if spec.metrics.demand else "utilization"
    history = metrics.history(
        spec.metrics.demand or spec.metrics.utilization,
        spec.metrics.history.timedelta,
        source=source,
        reader=reader,
    )
    return Observation(
        deployment=deployment,
        claimed=claimed,
        jobs=jobs,
        autoscalers=others_autoscalers(cluster.conflicting_autoscalers(namespace, target), scaled),
        other_holder_exists=other_exists,
        utilization=utilization,
        queue_depth=queue,
        scaled_object=scaled,
        keda_installed=keda,
        demand=demand,
        requests=requests,
        async_queue=async_queue,
        history=history,
    )


def others_autoscalers(
    autoscalers: Iterable[str], own: ScaledObjectState | None
) -> tuple[str, ...]:
    """The autoscalers on the target less the placement's own ScaledObject (read by its name
    and its label) and the HPA KEDA made for it (KEDA's name for it): those two scale the
    Deployment for the placement, not against it."""
    if own is None:
        return tuple(autoscalers)
    ours = {f"ScaledObject/{own.name}", f"HorizontalPodAutoscaler/keda-hpa-{own.name}"}
    return tuple(found for found in autoscalers if found not in ours)


def claimed_by(
    cluster: Cluster, namespace: str, placement: str, target: DeploymentState | None
) -> tuple[DeploymentState, ...]:
    """The Deployments carrying this placement's hold: found by the hold label, and the
    target read already when it carries the hold annotations (a hold taken before the label
    was written with them)."""
    claimed = cluster.claimed_by(namespace, placement)
    listed = {d.name for d in claimed}
    if target is not None and target.managed_by == placement and target.name not in listed:
        claimed.append(target)
    return tuple(claimed)


def _optional(
    read: Callable[..., Reading],
    expression: str | None,
    lookback: timedelta,
    reader: str,
    telemetry: Telemetry,
) -> Reading | None:
    """The reading of a query the spec may leave out (None: not configured)."""
    if not expression:
        return None
    reading = read(expression, lookback, reader=reader)
    _count_failure(reading, telemetry)
    return reading


def _count_failure(reading: Reading, telemetry: Telemetry) -> None:
    if not reading.ok:
        telemetry.query_failed(str(reading.outcome))
