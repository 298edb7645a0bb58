"""`placement explain`: the operator's decision for given numbers, as JSON. Pure.

It runs the same `decide()` as the operator, for a placement seen for the first time
(nothing held, no Jobs), so a team can check a spec before applying it. The planned hold comes
from the same forecast: the placement's history when given, else the lookback reading. What
the operator refuses before it acts (a query outside the namespace, a protected target, a
batch pod outside the job pod policy) is refused here too, as the operator would say it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from placement.core.api import WorkloadPlacement, WorkloadPlacementSpec
from placement.core.asyncmode import AsyncSeen, QueueState
from placement.core.jobpolicy import JobPodPolicy, ProtectedTargets, template_violations
from placement.core.jobs import job_manifest
from placement.core.observation import LoadHistory
from placement.core.planning import HoldPlan
from placement.core.policy import Decision, Observed, State, decide
from placement.core.reasons import Reason
from placement.core.tenancy import scoped_spec
from placement.core.window import current_or_next_window
from placement.core.window import job_name as window_job_name


class WouldBlock(Exception):
    """The operator would block this placement instead of acting: `reason` (its Ready
    condition's) and `detail` (its message, naming the field)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def explain(
    spec_or_placement: WorkloadPlacement | WorkloadPlacementSpec | Mapping[str, Any],
    replicas: int | None,
    utilization: float | None,
    queue_depth: float | None,
    now: datetime,
    *,
    requests: float | None = None,
    async_queue: float | None = None,
    keda_installed: bool = True,
    idle_hours: float | None = None,
    demand: float | None = None,
    history: LoadHistory | None = None,
    namespace: str | None = None,
    scope_metrics: bool = True,
    job_pod_policy: JobPodPolicy | None = None,
    protected: ProtectedTargets | None = None,
) -> dict[str, Any]:
    """JSON-ready decision. A mapping may be a whole manifest or only its spec.

    `now` is explicit (the CLI passes `datetime.now(UTC)`): the answer depends on the time
    of day through the batch window. Async (spec.async): `async_queue` is the queue's value
    (None: not readable), `keda_installed` whether KEDA serves ScaledObjects, `idle_hours`
    the hours a day with no work; `requests` per second gives the cost per request.

    The queries are checked as the operator admits them (tenancy.scoped_spec): one that is
    not PromQL, reads every series, or (with `namespace` and `scope_metrics`) names another
    namespace raises ScopeError naming the field, where the operator would block the
    placement (InvalidSpec). In `namespace` (when known), a `protected` target raises
    WouldBlock (InvalidSpec); a decision that would create or validate the window's Job with
    a batch pod outside `job_pod_policy` (default: the operator's default) raises WouldBlock
    (BatchJobRejected), as the operator refuses them before it scales anything.
    """
    spec, name = _parse(spec_or_placement)
    scoped_spec(spec, namespace if scope_metrics else None)
    refusal = (
        None
        if namespace is None
        else (protected or ProtectedTargets()).refusal(namespace, spec.target.deployment)
    )
    if refusal is not None:
        raise WouldBlock(Reason.INVALID_SPEC, f"protected target, nothing done: {refusal}")
    seen = AsyncSeen(
        queue=QueueState.NOT_READ if async_queue is None else QueueState.READ,
        queue_detail="not given" if async_queue is None else f"async.queue = {async_queue:g}",
        keda_installed=keda_installed,
    )
    decision = decide(
        spec,
        Observed(
            replicas=replicas,
            utilization=utilization,
            queue_depth=queue_depth,
            requests=requests,
            async_seen=seen,
            idle_hours=idle_hours,
            demand=demand,
            backlog_metrics=spec.metrics.demand is not None or spec.metrics.queue_depth is not None,
            history=history,
        ),
        State(name=name),
        now=now,
    )
    _check_job_pod(spec, name, decision, now, job_pod_policy or JobPodPolicy())
    inputs = decision.inputs
    window = current_or_next_window(spec.batch.window, now)
    breakdown = decision.breakdown
    return {
        "action": str(decision.action),
        "reason": str(decision.reason),
        "phase": str(decision.phase),
        "actuate": decision.actuate,
        "savingsPerDay": decision.savings_per_day,
        "currency": spec.costs.currency,
        "breakdown": None if breakdown is None else breakdown.rounded(),
        "batchSavingsPerDay": None if breakdown is None else round(breakdown.savings, 2),
        "asyncBreakdown": None
        if decision.async_breakdown is None
        else decision.async_breakdown.rounded(),
        "costPerRequest": None
        if decision.cost_per_request is None
        else decision.cost_per_request.rounded(),
        "message": decision.message,
        "desiredReplicas": decision.desired_replicas,
        "jobName": decision.job_name,
        "eventType": str(decision.event_type),
        "window": {
            "start": window.start.isoformat(),
            "end": window.end.isoformat(),
            "label": window.label,
            "open": window.contains(now),
        },
        "plannedHold": _plan(decision.plan),
        "inputs": {
            "replicas": inputs.replicas,
            "currentReplicas": inputs.current_replicas,
            "warmReplicas": inputs.warm_replicas,
            "utilization": inputs.utilization,
            "queueDepth": inputs.queue_depth,
            "demand": inputs.demand,
            "workReplicaHours": inputs.work_replica_hours,
            "batchPodHours": inputs.batch_pod_hours,
            "parallelPods": inputs.parallel_pods,
            "windowHours": inputs.window_hours,
            "waitHours": inputs.wait_hours,
            "acceptableDelayHours": inputs.acceptable_delay_hours,
            "heldHoursPerDay": inputs.held_hours_per_day,
        },
        "evaluatedAt": now.isoformat(),
    }


def _check_job_pod(
    spec: WorkloadPlacementSpec, name: str, decision: Decision, now: datetime, policy: JobPodPolicy
) -> None:
    """As reconcile's actuation: a move to batch (or a Job in the window) checks the Job it
    would create (outside the window, the next window's) before anything is scaled."""
    moving = decision.state.original_replicas is not None  # nothing is held before
    if not decision.actuate or decision.state.in_async or not (decision.job_name or moving):
        return
    window = current_or_next_window(spec.batch.window, now)
    job = decision.job_name or window_job_name(name, window)
    manifest = job_manifest(
        spec,
        placement=name,
        job_name=job,
        window_label=window.label,
        work_replica_hours=decision.job_work_replica_hours,
    )
    violations = template_violations(manifest["spec"]["template"], policy)
    if violations:
        raise WouldBlock(
            Reason.BATCH_JOB_REJECTED,
            f"job {job} refused by the operator's job pod policy: {'; '.join(violations)}; "
            "nothing scaled",
        )


def _plan(plan: HoldPlan | None) -> dict[str, Any] | None:
    if plan is None:
        return None
    return {
        "from": plan.start.isoformat(),
        "until": plan.end.isoformat(),
        "hours": round(plan.hours, 2),
        "forecastWorkReplicaHours": round(plan.work_replica_hours, 2),
        "forecastBatchPodHours": round(plan.batch_pod_hours, 2),
        "windowCapacityPodHours": round(plan.capacity_pod_hours, 2),
        "forecast": plan.basis,
    }


def _parse(
    source: WorkloadPlacement | WorkloadPlacementSpec | Mapping[str, Any],
) -> tuple[WorkloadPlacementSpec, str]:
    if isinstance(source, WorkloadPlacement):
        return source.spec, source.name or source.spec.target.deployment
    if isinstance(source, WorkloadPlacementSpec):
        return source, source.target.deployment
    if "spec" in source:
        return _parse(WorkloadPlacement.model_validate(source))
    return _parse(WorkloadPlacementSpec.model_validate(source))
