"""Carries out a Plan, step by step, and decides nothing: every choice, including what a
refused step means, is the Plan's (reconcile.py). Pure apart from the `Cluster` and
`Effects` it is given: the operator passes the Kubernetes adapter and kopf's Events and
logger, replay its simulation, the fast tests an in-memory fake.

Written once as generators that yield each `Cluster` call (`Call`) and get its answer back
(or its exception thrown in): `drive` answers them with a synchronous cluster (replay, the
fakes, tools), `drive_async` with an asynchronous one in kopf's event loop (the operator),
so both carry out the same plans the same way.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from placement.core.cluster import Cluster, HoldConflict, Refused, Retry
from placement.core.labels import PLACEMENT_LABEL
from placement.core.observation import DeploymentState, ScaledObjectHolder
from placement.core.policy import Decision
from placement.core.reasons import EventType, Reason
from placement.core.reconcile import (
    ApplyScaledObject,
    CreateJob,
    Decided,
    DeleteScaledObject,
    Event,
    ForgetHold,
    Log,
    LogLine,
    Plan,
    PostEvent,
    Report,
    Restore,
    Step,
    TakeHold,
    ValidateJob,
)

HOLD_ATTEMPTS = 5
T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One call a generator needs answered: `method` of the cluster (or, `on="metrics"`, of
    the metrics reader) with these arguments; with `function`, that function of the cluster
    (or metrics reader) and the arguments instead, e.g. several reads in one call."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    on: str = "cluster"
    function: Callable[..., Any] | None = None


# A computation that yields the calls it needs and returns T.
Calls = Generator[Call, Any, T]


def ask(method: str, *args: Any, **kwargs: Any) -> Call:
    return Call(method, args, kwargs)


def drive(calls: Calls[T], cluster: Any, metrics: Any = None) -> T:
    """Answer every call synchronously; an exception a call raises is thrown into the
    generator, where it is handled as if the call had been made in place."""
    answer: Any = None
    error: BaseException | None = None
    while True:
        try:
            call = calls.throw(error) if error is not None else calls.send(answer)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        answer, error = None, None
        try:
            answer = _call(metrics if call.on == "metrics" else cluster, call)
        except Exception as raised:
            error = raised


def _call(target: Any, call: Call) -> Any:
    if call.function is not None:
        return call.function(target, *call.args, **call.kwargs)
    return getattr(target, call.method)(*call.args, **call.kwargs)


Blocking = Callable[[Callable[[], Any]], Awaitable[Any]]


async def drive_async(
    calls: Calls[T], cluster: Any, metrics: Any = None, *, blocking: Blocking | None = None
) -> T:
    """As `drive`, in an event loop: a cluster method may be a coroutine (awaited); a
    metrics call (a synchronous reader) goes through `blocking`, e.g. a worker thread, so
    the loop never waits for Prometheus."""
    answer: Any = None
    error: BaseException | None = None
    while True:
        try:
            call = calls.throw(error) if error is not None else calls.send(answer)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        answer, error = None, None
        try:
            if call.on == "metrics" and blocking is not None:
                answer = await blocking(functools.partial(_call, metrics, call))
            else:
                answer = _call(metrics if call.on == "metrics" else cluster, call)
                if inspect.isawaitable(answer):
                    answer = await answer
        except Exception as raised:
            error = raised


class Effects(Protocol):
    """What an evaluation says, besides its writes to the cluster."""

    def post(self, event: Event) -> None: ...

    def log(self, line: LogLine) -> None: ...

    def own(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of the Job's manifest owned by the placement (it goes when its placement
        goes)."""
        ...

    def decided(self, decided: Decided) -> None: ...

    def log_decision(self, decision: Decision, deployment: DeploymentState | None) -> None: ...


@dataclass(frozen=True)
class Executed:
    report: Report  # the plan's, or the one a refused step led to
    steps: tuple[str, ...]  # what was carried out, in order, e.g. "TakeHold deployment/x 0"


def execute(
    plan: Plan,
    cluster: Cluster,
    effects: Effects,
    *,
    namespace: str,
    placement: str,
) -> Executed:
    """Run the steps in order (one whose required steps did not succeed is skipped), then
    report: metrics, Event, log line; delete the Jobs the report expires or withdraws. The
    status patch is the caller's to write (`Executed.report.status`)."""
    return drive(executing(plan, effects, namespace=namespace, placement=placement), cluster)


async def execute_async(
    plan: Plan, cluster: Any, effects: Effects, *, namespace: str, placement: str
) -> Executed:
    """`execute` with an asynchronous cluster (the `Cluster` methods as coroutines)."""
    return await drive_async(
        executing(plan, effects, namespace=namespace, placement=placement), cluster
    )


def executing(plan: Plan, effects: Effects, *, namespace: str, placement: str) -> Calls[Executed]:
    """`execute`, as the calls it makes."""
    done: set[str] = set()
    trace: list[str] = []
    report = plan.report
    owned: dict[str, dict[str, Any]] = {}
    for step in plan.steps:
        if any(required not in done for required in step.requires):
            continue
        trace.append(describe(step))
        ended = yield from _run(step, plan, effects, namespace, placement, owned)
        if ended is not None:
            report = ended
            break
        if step.id:
            done.add(step.id)
    trace += yield from _report(report, effects, namespace)
    return Executed(report, tuple(trace))


def _run(
    step: Step,
    plan: Plan,
    effects: Effects,
    namespace: str,
    placement: str,
    owned: dict[str, dict[str, Any]],
) -> Calls[Report | None]:
    """Carry out one step; a report when it ends the plan."""
    if isinstance(step, PostEvent):
        effects.post(step.event)
    elif isinstance(step, Log):
        effects.log(step.line)
    elif isinstance(step, ForgetHold):
        yield ask("forget", namespace, step.deployment)
    elif isinstance(step, Restore):
        yield ask("restore", namespace, step.deployment, replicas=step.replicas)
    elif isinstance(step, TakeHold):
        holder = yield from taking_hold(namespace, placement, step)
        if holder is not None:
            return plan.lost_hold(holder)
    elif isinstance(step, ApplyScaledObject | DeleteScaledObject):
        return (yield from _scaled_object(step, plan, effects, namespace, placement))
    else:
        # One owned manifest per Job: the one validated is the one created.
        if step.job not in owned:
            owned[step.job] = effects.own(step.manifest)
        manifest = owned[step.job]
        try:
            yield ask("create_job", namespace, manifest, dry_run=isinstance(step, ValidateJob))
        except Refused as refusal:
            return plan.refused(step, refusal.detail)
    return None


def take_hold(cluster: Cluster, namespace: str, placement: str, step: TakeHold) -> str | None:
    """Scale down and annotate the Deployment as read; None when done, else the placement
    that holds it now. A 409 for any other change (e.g. its status) is retried on a fresh
    read; a change to its replicas in between means the decision is stale: retried later."""
    return drive(taking_hold(namespace, placement, step), cluster)


def taking_hold(namespace: str, placement: str, step: TakeHold) -> Calls[str | None]:
    current = step.deployment
    name = current.name
    for _ in range(HOLD_ATTEMPTS):
        try:
            yield ask(
                "scale_for_batch",
                namespace,
                name,
                replicas=step.replicas,
                original=step.original,
                placement=placement,
                since=step.since,
                baseline_utilization=step.baseline_utilization,
                resource_version=current.resource_version,
            )
            return None
        except HoldConflict:
            fresh: DeploymentState | None = yield ask("read_deployment", namespace, name)
            if fresh is not None and fresh.managed_by and fresh.managed_by != placement:
                return fresh.managed_by
            if fresh is None or fresh.replicas != current.replicas:
                break
            current = fresh
    raise Retry(f"deployment/{name} changed while being moved; deciding again")


def _report(report: Report, effects: Effects, namespace: str) -> Calls[list[str]]:
    trace: list[str] = []
    if report.decided is not None:
        effects.decided(report.decided)
    if report.event is not None:
        effects.post(report.event)
        trace.append(f"Event {report.event.reason}")
    if report.decision is not None and report.decision.noteworthy:
        effects.log_decision(report.decision, report.deployment)
    for job in report.withdraw:
        try:
            yield ask("delete_job", namespace, job)
        except Refused as refusal:
            effects.log(
                LogLine(
                    logging.WARNING,
                    f"{namespace}/{job} still suspended, not deleted: {refusal.detail}",
                    on_placement=False,
                )
            )
            break
        trace.append(f"DeleteJob {job}")
        effects.log(
            LogLine(
                logging.INFO,
                f"deleted job {job}, never admitted by Kueue: its window ended and realtime "
                "serves its work, so it must not start late",
            )
        )
    for job in report.prune:
        # Housekeeping: a failure is logged and retried at the next evaluation.
        try:
            yield ask("delete_job", namespace, job)
        except Refused as refusal:
            effects.log(
                LogLine(
                    logging.WARNING,
                    f"{namespace}/{job} not deleted, kept for now: {refusal.detail}",
                    on_placement=False,
                )
            )
            break
        trace.append(f"DeleteJob {job}")
        effects.log(
            LogLine(logging.INFO, f"deleted finished job {job} (beyond the Job history limits)")
        )
    return trace


def _scaled_object(
    step: ApplyScaledObject | DeleteScaledObject,
    plan: Plan,
    effects: Effects,
    namespace: str,
    placement: str,
) -> Calls[Report | None]:
    """Apply or delete the ScaledObject. One of that name that is not this placement's is
    never applied over (server-side apply, forced, would take it over, whatever it scales);
    that, or a refused apply, ends the plan with its report once the replicas are given back
    as the plan says."""
    if isinstance(step, DeleteScaledObject):
        # Read fresh: ours may have gone and someone else's come under its name since it
        # was read (or since status.async named it). Theirs is never deleted.
        holder: ScaledObjectHolder | None = yield ask("scaled_object_holder", namespace, step.name)
        if holder is not None and holder.placement != step.owner:
            effects.log(
                LogLine(
                    logging.WARNING,
                    f"scaledobject/{step.name} is not this placement's (label "
                    f"{PLACEMENT_LABEL}={holder.placement!r}): not deleted",
                )
            )
            return None
        yield ask("delete_scaled_object", namespace, step.name)
        return None
    try:
        taken = yield from _placing_scaled_object(step, effects, namespace, placement)
    except Refused as refusal:
        report = plan.scaled_object_refused(step, refusal.detail)
    else:
        if taken is None:
            return None
        report = (
            plan.keda_hpa_taken(step, taken.hpa)
            if taken.hpa is not None
            else plan.scaled_object_taken(step, taken.holder)
        )
    for undo in plan.without_scaled_object(step):
        yield from _run(undo, plan, effects, namespace, placement, {})
    return report


@dataclass(frozen=True)
class _Taken:
    """Why the ScaledObject was not written: one of its name that is not this placement's
    (`holder`: its placement label, "" none), or an HPA with the name KEDA gives its own
    that KEDA did not make for it (`hpa` describes it)."""

    holder: str = ""
    hpa: str | None = None


def _placing_scaled_object(
    step: ApplyScaledObject, effects: Effects, namespace: str, placement: str
) -> Calls[_Taken | None]:
    """Read the ScaledObject fresh: none, create it (a POST: one someone else created since
    the read makes it fail, where a forced apply would take it over); this placement's,
    apply it. None when done, else why not."""
    name = step.manifest["metadata"]["name"]
    manifest = effects.own(step.manifest)
    holder: ScaledObjectHolder | None = yield ask("scaled_object_holder", namespace, name)
    if holder is None:
        # The HPA KEDA would adopt by its name, read fresh just before the create: one made
        # since the watch cache was read is caught too. One made between this read and
        # KEDA's first look at the new ScaledObject is not (docs/threat-model.md).
        hpa: str | None = yield ask("keda_hpa_taken", namespace, name)
        if hpa is not None:
            return _Taken(hpa=hpa)
        if (yield ask("create_scaled_object", namespace, manifest)):
            return None
        # AlreadyExists: created since the read, by someone else or by this placement.
        holder = yield ask("scaled_object_holder", namespace, name)
        if holder is None:
            raise Retry(f"scaledobject/{name} came and went while being created")
    if holder.placement != placement:
        return _Taken(holder=holder.placement)
    # Over the version read: one replaced since is a conflict (Retry), not taken over.
    yield ask("apply_scaled_object", namespace, manifest, resource_version=holder.resource_version)
    return None


def describe(step: Step) -> str:
    """One line per step, the same for every executor: what the step sequence tests compare."""
    if isinstance(step, PostEvent):
        return f"Event {step.event.reason}"
    if isinstance(step, Log):
        return "Log"
    if isinstance(step, ForgetHold):
        return f"ForgetHold deployment/{step.deployment}"
    if isinstance(step, Restore):
        return f"Restore deployment/{step.deployment} {step.replicas}"
    if isinstance(step, TakeHold):
        return f"TakeHold deployment/{step.deployment.name} {step.replicas}"
    if isinstance(step, ApplyScaledObject):
        return f"ApplyScaledObject {step.manifest['metadata']['name']}"
    if isinstance(step, DeleteScaledObject):
        return f"DeleteScaledObject {step.name}"
    kind = "ValidateJob" if isinstance(step, ValidateJob) else "CreateJob"
    return f"{kind} {step.job}"


def release(
    steps: tuple[Step, ...], cluster: Cluster, effects: Effects, *, namespace: str
) -> tuple[str, ...]:
    """Carry out a deletion's steps (reconcile.release)."""
    return drive(releasing(steps, effects, namespace=namespace), cluster)


def releasing(
    steps: tuple[Step, ...], effects: Effects, *, namespace: str
) -> Calls[tuple[str, ...]]:
    """`release`, as the calls it makes."""
    trace = []
    done: set[str] = set()
    for step in steps:
        if any(required not in done for required in step.requires):
            continue
        trace.append(describe(step))
        try:
            yield from _run(step, Plan((), Report(), 0.0), effects, namespace, "", {})
        except Refused as refusal:
            if not isinstance(step, Restore | ForgetHold | DeleteScaledObject) or not (
                step.if_refused
            ):
                raise
            message = step.if_refused.format(detail=refusal.detail)
            effects.log(LogLine(logging.WARNING, message, on_placement=False))
            effects.post(Event(EventType.WARNING, Reason.RESTORED, message))
            trace.append("Event Restored (refused)")
            continue
        if step.id:
            done.add(step.id)
    return tuple(trace)


__all__ = [
    "Call",
    "Calls",
    "CreateJob",
    "Effects",
    "Executed",
    "drive",
    "drive_async",
    "execute",
    "execute_async",
    "executing",
    "release",
    "releasing",
    "take_hold",
]
