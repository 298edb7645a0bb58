"""One observation per evaluation: the adapters read everything `reconcile` decides from,
once, into an immutable `Observation`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from placement.adapters.telemetry import Telemetry
from placement.core.api import WorkloadPlacementSpec
from placement.core.cluster import Cluster
from placement.core.observation import DeploymentState, Observation, Reading

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
    """The target, the Deployments this placement holds, its Jobs and, when the target
    exists, the autoscalers on it and its metrics."""
    telemetry = telemetry or Telemetry()
    target = spec.target.deployment
    deployment = cluster.read_deployment(namespace, target)
    claimed = claimed_by(cluster, namespace, placement, deployment)
    jobs = tuple(cluster.placement_jobs(namespace, placement))
    if deployment is None:
        return Observation(deployment=None, claimed=claimed, jobs=jobs)
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
        autoscalers=tuple(cluster.conflicting_autoscalers(namespace, target)),
        other_holder_exists=other_exists,
        utilization=utilization,
        queue_depth=queue,
        demand=demand,
        requests=requests,
        async_queue=async_queue,
        history=history,
    )


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
