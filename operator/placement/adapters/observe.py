"""One observation per evaluation: the adapters read everything `reconcile` decides from,
once, into an immutable `Observation`.

Written as a generator of the calls it needs (executor.Call), as the executor is: `observe`
answers them synchronously (replay, fakes, tools); the operator drives `observing` in kopf's
event loop, the cluster reads from its watch caches there and the Prometheus reads on a
worker thread (all of one evaluation's in one trip there)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from placement.adapters.telemetry import Telemetry
from placement.core.api import WorkloadPlacementSpec
from placement.core.cluster import Cluster
from placement.core.executor import Call, Calls, ask, drive
from placement.core.observation import DeploymentState, Observation, Reading, ScaledObjectState
from placement.core.scaledobject import others_autoscalers as scaled_others
from placement.core.scaledobject import scaled_object_name

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
    return drive(
        observing(spec, namespace=namespace, placement=placement, telemetry=telemetry),
        cluster,
        metrics,
    )


def observing(
    spec: WorkloadPlacementSpec,
    *,
    namespace: str,
    placement: str,
    telemetry: Telemetry | None = None,
) -> Calls[Observation]:
    """`observe`, as the calls it makes."""
    telemetry = telemetry or Telemetry()
    target = spec.target.deployment
    deployment: DeploymentState | None = yield ask("read_deployment", namespace, target)
    claimed = yield from claiming(namespace, placement, deployment)
    jobs = tuple((yield ask("placement_jobs", namespace, placement)))
    keda: bool = yield ask("keda_installed")
    # Only a placement with spec.async, or one still holding a Deployment (async takes the
    # hold before it applies its ScaledObject and gives it back only after deleting it), can
    # have one: the others cost no request.
    scaled = taken = hpa_taken = None
    looked = keda and (spec.async_ is not None or claimed)
    if looked:
        scaled = yield ask("placement_scaled_object", namespace, placement)
    if looked and scaled is None and spec.async_ is not None:
        # Someone else's of that name: async is blocked before anything is written.
        holder = yield ask(
            "cached_scaled_object_placement", namespace, scaled_object_name(placement)
        )
        taken = holder if holder is not None and holder != placement else None
        # An HPA of the name KEDA would give its own that KEDA did not make for it: KEDA
        # would take it over and rewrite it to scale the target.
        hpa_taken = yield ask("cached_keda_hpa_taken", namespace, scaled_object_name(placement))
    if deployment is None:
        return Observation(
            deployment=None,
            claimed=claimed,
            jobs=jobs,
            scaled_object=scaled,
            scaled_object_taken=taken,
            keda_hpa_taken=hpa_taken,
            keda_installed=keda,
        )
    other = deployment.managed_by
    other_exists = (
        (yield ask("placement_exists", namespace, other)) if other and other != placement else None
    )
    autoscalers = yield ask("conflicting_autoscalers", namespace, target)
    # Every Prometheus read of the evaluation in one call: one trip to a reader thread.
    read = yield Call(
        "readings", (spec, f"{namespace}/{placement}", telemetry), on="metrics", function=readings
    )
    return Observation(
        deployment=deployment,
        claimed=claimed,
        jobs=jobs,
        autoscalers=others_autoscalers(
            autoscalers, scaled, placement=placement if looked and scaled is None else None
        ),
        other_holder_exists=other_exists,
        scaled_object=scaled,
        scaled_object_taken=taken,
        keda_hpa_taken=hpa_taken,
        keda_installed=keda,
        **read,
    )


def others_autoscalers(
    autoscalers: Iterable[str], own: ScaledObjectState | None, *, placement: str | None = None
) -> tuple[str, ...]:
    """scaledobject.others_autoscalers with the placement's own ScaledObject as read."""
    return scaled_others(autoscalers, None if own is None else own.name, placement=placement)


def claimed_by(
    cluster: Cluster, namespace: str, placement: str, target: DeploymentState | None
) -> tuple[DeploymentState, ...]:
    """The Deployments carrying this placement's hold: found by the hold label, and the
    target read already when it carries the hold annotations (a hold taken before the label
    was written with them)."""
    return drive(claiming(namespace, placement, target), cluster)


def claiming(
    namespace: str, placement: str, target: DeploymentState | None
) -> Calls[tuple[DeploymentState, ...]]:
    """`claimed_by`, as the call it makes."""
    claimed: list[DeploymentState] = list((yield ask("claimed_by", namespace, placement)))
    listed = {d.name for d in claimed}
    if target is not None and target.managed_by == placement and target.name not in listed:
        claimed.append(target)
    return tuple(claimed)


def readings(
    metrics: Metrics, spec: WorkloadPlacementSpec, reader: str, telemetry: Telemetry
) -> dict[str, Any]:
    """The placement's metrics, as the Observation's fields."""
    lookback = spec.metrics.lookback.timedelta
    utilization = metrics.utilization(spec.metrics.utilization, lookback, reader=reader)
    queue: Reading | None = None
    if spec.metrics.queue_depth:
        queue = metrics.queue_depth(spec.metrics.queue_depth, lookback, reader=reader)
    demand = _optional(metrics.demand, spec.metrics.demand, lookback, reader)
    requests = _optional(metrics.requests, spec.metrics.requests, lookback, reader)
    async_queue = _optional(
        metrics.async_queue, spec.async_.queue if spec.async_ else None, lookback, reader
    )
    # Demand does not shrink while the fleet is held, utilization does: demand when declared.
    source = "demand" if spec.metrics.demand else "utilization"
    history = metrics.history(
        spec.metrics.demand or spec.metrics.utilization,
        spec.metrics.history.timedelta,
        source=source,
        reader=reader,
    )
    # Counted once every read is done: a read tried from memory first may be read again.
    for reading in (utilization, queue, demand, requests, async_queue):
        if reading is not None:
            _count_failure(reading, telemetry)
    return {
        "utilization": utilization,
        "queue_depth": queue,
        "demand": demand,
        "requests": requests,
        "async_queue": async_queue,
        "history": history,
    }


def _optional(
    read: Callable[..., Reading],
    expression: str | None,
    lookback: timedelta,
    reader: str,
) -> Reading | None:
    """The reading of a query the spec may leave out (None: not configured)."""
    if not expression:
        return None
    return read(expression, lookback, reader=reader)


def _count_failure(reading: Reading, telemetry: Telemetry) -> None:
    if not reading.ok:
        telemetry.query_failed(str(reading.outcome))
