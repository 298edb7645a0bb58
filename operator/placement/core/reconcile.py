"""Every decision of one evaluation, in one place: (placement, observation, now) -> Plan. Pure.

`decide()` (policy.py) says what the placement should be. Around it, this module decides
what the operator does about the world it observed:

- a placement whose spec is invalid, or aimed at a protected target, is blocked before
  anything is read (`admit`);
- after a manual override nothing is done until the spec changes, then the earlier hold is
  forgotten and the placement starts over from what runs now;
- the hold annotations on the Deployments, not status, say what is held (`_settle`): a hold
  with no record in status is recovered, one on an old target is given back, a held
  Deployment scaled by someone else blocks the placement (ManualOverride);
- a move validates the window's Job first (the job pod policy, then a server-side dry run),
  takes the hold with a write conditional on the Deployment as read, and only then creates
  the Job; each step says which earlier one it needs (`requires`);
- what a refused Job means (`Plan.refused`): before the hold, the placement is blocked
  (BatchJobRejected); while held, it says so and the missed window's fallback gives the
  replicas back; a hold another placement took first blocks it (`Plan.lost_hold`);
- finished Jobs beyond the history limits whose outcome status already records are deleted.

The executor (executor.py) carries a Plan out step by step and decides nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from placement.core.api import Phase, WorkloadPlacementSpec, WorkloadPlacementStatus
from placement.core.asyncmode import AsyncSeen, QueueState, idle_hours_of
from placement.core.jobpolicy import JobPodPolicy, ProtectedTargets, template_violations
from placement.core.jobs import expired_jobs, job_manifest, ttl_note, unadmitted_jobs
from placement.core.labels import ORIGINAL_REPLICAS_ANNOTATION, PLACEMENT_LABEL
from placement.core.observation import DeploymentState, Observation, Reading
from placement.core.policy import Decision, JobOutcome, Observed, State, decide
from placement.core.reasons import EventType, Reason
from placement.core.scaledobject import (
    others_autoscalers,
    scaled_object_manifest,
    scaled_object_name,
)
from placement.core.status import Blocked, ready_condition, state_from_status, status_update
from placement.core.tenancy import ScopeError, scoped_spec
from placement.core.window import current_or_next_window
from placement.core.window import job_name as window_job_name

INVALID_SPEC_INTERVAL = 60.0  # seconds until a blocked spec is looked at again


@dataclass(frozen=True)
class Settings:
    """The operator's configuration that decisions depend on."""

    scope_metrics: bool = True  # queries only see the placement's namespace
    # None: Job templates are not checked (replay, which only prices the decisions).
    job_pod_policy: JobPodPolicy | None = field(default_factory=JobPodPolicy)
    protected: ProtectedTargets = field(default_factory=ProtectedTargets)
    job_history: tuple[int, int] = (3, 1)  # succeeded and failed Jobs kept
    write_status: bool = True  # False: no status patch is built (replay keeps the State)
    # The Prometheus KEDA's trigger queries for the placement's async.queue (the operator's
    # own by default; PLACEMENT_KEDA_PROMETHEUS_URL when KEDA reaches it by another address).
    keda_prometheus_url: str = ""


@dataclass(frozen=True)
class Placement:
    """The WorkloadPlacement as read: its raw spec and status."""

    name: str
    namespace: str
    generation: int | None
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    # What identifies the stored status (the API server moves the resourceVersion with every
    # change): a steady decision over the same status is not built again (status.QUIET).
    uid: str | None = None
    resource_version: str | None = None

    @property
    def stored(self) -> tuple[str, str] | None:
        if self.uid is None or self.resource_version is None:
            return None
        return (self.uid, self.resource_version)

    @property
    def overridden(self) -> bool:
        """Blocked by a manual override (the Ready condition says so)."""
        status = dict(self.status)
        return (
            status.get("phase") == Phase.BLOCKED
            and ready_condition(status).get("reason") == Reason.MANUAL_OVERRIDE
        )

    @property
    def spec_unchanged(self) -> bool:
        """The spec is the one status was last written for."""
        return self.generation is not None and self.status.get("observedGeneration") == (
            self.generation
        )


# -- what a plan does ----------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: str
    message: str


@dataclass(frozen=True)
class LogLine:
    level: int
    message: str
    # On the placement's own logger (kopf's, which may also post it as an Event at
    # PLACEMENT_EVENT_LEVEL), else on the operator's module logger only.
    on_placement: bool = True


@dataclass(frozen=True)
class PostEvent:
    event: Event
    id: str = ""
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class Log:
    line: LogLine
    id: str = ""
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class ForgetHold:
    """Drop the hold annotations and label; the replicas stay as they are."""

    deployment: str
    id: str = ""
    requires: tuple[str, ...] = ()
    # When the API server refuses it for good: the Warning to post instead of failing
    # ("{detail}" is the refusal); empty: the refusal fails the evaluation (kopf retries).
    if_refused: str = ""


@dataclass(frozen=True)
class Restore:
    """Scale back and drop the hold, in one write."""

    deployment: str
    replicas: int
    id: str = ""
    requires: tuple[str, ...] = ()
    if_refused: str = ""  # as ForgetHold's


@dataclass(frozen=True)
class ValidateJob:
    """Have the API server validate the Job (dry run); a refusal ends the plan."""

    job: str
    manifest: Mapping[str, Any]
    left_at: int | str  # the replicas the Deployment is left at if refused
    id: str = "validate"
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class TakeHold:
    """Scale down and record the hold, conditional on the Deployment as read."""

    deployment: DeploymentState
    replicas: int
    original: int
    since: datetime
    baseline_utilization: float | None
    id: str = "hold"
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class CreateJob:
    job: str
    manifest: Mapping[str, Any]
    left_at: int | str
    id: str = "create"
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApplyScaledObject:
    """Create or update the placement's KEDA ScaledObject (server-side apply, owned by the
    operator; see core/scaledobject.py for the manifest)."""

    manifest: Mapping[str, Any]
    id: str = "scaledobject"
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeleteScaledObject:
    """Delete the placement's ScaledObject (KEDA stops scaling the Deployment); a Restore
    after it gives the replicas back. `owner`: the placement it must be labelled with when
    read just before the delete; one of that name that is someone else's is left alone."""

    name: str
    owner: str
    id: str = "unscale"
    requires: tuple[str, ...] = ()
    if_refused: str = ""  # as ForgetHold's (a deletion must go through)


Step = (
    PostEvent
    | Log
    | ForgetHold
    | Restore
    | ValidateJob
    | TakeHold
    | CreateJob
    | ApplyScaledObject
    | DeleteScaledObject
)


@dataclass(frozen=True)
class Decided:
    """What the operator's metrics count for this evaluation."""

    action: str
    reason: str
    savings: float | None
    currency: str
    phase: str | None = None


@dataclass(frozen=True)
class Report:
    """What the evaluation says once its steps are done: metrics, Event, log line, status,
    and the finished Jobs to delete (housekeeping)."""

    decided: Decided | None = None
    event: Event | None = None
    decision: Decision | None = None  # what was decided (a noteworthy one is logged)
    status: dict[str, Any] | None = None  # the merge patch of the status subresource
    prune: tuple[str, ...] = ()
    deployment: DeploymentState | None = None  # as observed (for the log line)
    withdraw: tuple[str, ...] = ()  # suspended Jobs of an ended window, realtime serving


@dataclass(frozen=True)
class _Basis:
    """What a refusal's report is decided from."""

    placement: Placement
    spec: WorkloadPlacementSpec
    state: State  # as decided from
    decision: Decision
    previous: WorkloadPlacementStatus | None
    observation: Observation
    now: datetime
    settings: Settings
    holding: bool  # held once every step before the Job's creation has run


@dataclass(frozen=True)
class Plan:
    """The steps in order, and the report once they are done. A step runs only after the
    steps it `requires` succeeded; a refused step ends the plan with `refused`'s report."""

    steps: tuple[Step, ...]
    report: Report
    interval: float  # seconds until the placement is evaluated again
    basis: _Basis | None = None

    def refused(self, step: ValidateJob | CreateJob, detail: str) -> Report:
        """The API server refused the Job (`detail`: its code and message)."""
        assert self.basis is not None
        target = self.basis.spec.target.deployment
        message = (
            f"job {step.job} refused by the API server ({detail}); deployment/{target} left "
            f"at {step.left_at} replicas"
        )
        basis = self.basis
        if isinstance(step, ValidateJob) or not basis.holding:
            # Nothing was scaled: say why instead of recording a move that did not happen.
            return _blocked_report(
                basis.placement,
                Blocked(Reason.BATCH_JOB_REJECTED, message),
                basis.now,
                _decided(basis.decision, basis.spec, Reason.BATCH_JOB_REJECTED, Phase.BLOCKED),
            )
        # Already held: say so instead of "created"; the window will be missed and the
        # fallback gives the replicas back.
        decision = replace(
            basis.decision,
            reason=Reason.BATCH_JOB_REJECTED,
            message=message,
            event_type=EventType.WARNING,
            job_name=None,
            noteworthy=basis.state.last_reason is not Reason.BATCH_JOB_REJECTED,
            state=replace(basis.decision.state, current_job=basis.state.current_job),
        )
        return _decision_report(basis, decision)

    def scaled_object_refused(self, step: ApplyScaledObject, detail: str) -> Report:
        """The API server or KEDA's webhook refused the ScaledObject (`detail`: its code and
        message). Moving: the hold was given back and nothing scaled, so the placement is
        blocked and says why. Already async with ours in place: it goes on; a Warning, once
        per new reason, says the new one was refused. Already async with none in place: the
        replicas were given back (`without_scaled_object`), blocked."""
        name = step.manifest["metadata"]["name"]
        refused = f"scaledobject/{name} refused by the API server ({detail})"
        return self._not_applied(step, Reason.SCALED_OBJECT_REJECTED, refused)

    def scaled_object_taken(self, step: ApplyScaledObject, holder: str) -> Report:
        """A ScaledObject of that name exists and is not this placement's (its placement
        label says `holder`, empty: none): it was not applied over, whatever it scales."""
        name = step.manifest["metadata"]["name"]
        label = f"label {PLACEMENT_LABEL}={holder}" if holder else f"no label {PLACEMENT_LABEL}"
        taken = (
            f"scaledobject/{name} exists and is not this placement's ({label}); the operator "
            "does not apply over it"
        )
        return self._not_applied(step, Reason.CONFLICTING_AUTOSCALER, taken)

    def keda_hpa_taken(self, step: ApplyScaledObject, hpa: str) -> Report:
        """An HPA of the name KEDA gives the one it makes for the ScaledObject exists and is
        not KEDA's for it (`hpa` says which and what it scales): KEDA would take it over and
        rewrite it to scale the target, so the ScaledObject is not created."""
        name = step.manifest["metadata"]["name"]
        taken = (
            f"{hpa} has the name KEDA gives the HPA of scaledobject/{name}: KEDA would take "
            "it over and rewrite it to scale this placement's target; the operator does not "
            "create the ScaledObject"
        )
        return self._not_applied(step, Reason.CONFLICTING_AUTOSCALER, taken)

    def without_scaled_object(self, step: ApplyScaledObject) -> tuple[Step, ...]:
        """What gives the replicas back when the ScaledObject was not applied. Moving: the
        hold (at the current count: nothing scaled yet). Already async with none of ours in
        place: the recorded count, since nothing would scale the Deployment up from where
        KEDA left it (zero, maybe). Already async with ours in place: nothing, it goes on."""
        assert self.basis is not None
        basis = self.basis
        deployment = basis.observation.deployment
        if "hold" in step.requires:
            return (ForgetHold(basis.spec.target.deployment),)
        if basis.observation.scaled_object is not None or deployment is None:
            return ()
        original = basis.state.original_replicas or deployment.original_replicas or 0
        return tuple(_restore_recorded(basis.placement, deployment, original))

    def _not_applied(self, step: ApplyScaledObject, reason: Reason, why: str) -> Report:
        assert self.basis is not None
        basis = self.basis
        target = _d(basis.spec.target.deployment)
        if "hold" in step.requires or basis.observation.scaled_object is None:
            undo = self.without_scaled_object(step)
            restored = next((s.replicas for s in undo if isinstance(s, Restore)), None)
            left = (
                f"{target} left as it was, realtime"
                if restored is None
                else f"none in place: {target} restored to {restored} replicas, realtime"
            )
            report = _blocked_report(
                basis.placement,
                Blocked(reason, f"{why}; {left}"),
                basis.now,
                _decided(basis.decision, basis.spec, reason, Phase.BLOCKED),
            )
            if restored is None or report.status is None:
                return report
            # Out of async: what status recorded of it goes with the replicas it held.
            return replace(
                report, status={**report.status, "originalReplicas": None, "async": None}
            )
        decision = replace(
            basis.decision,
            reason=reason,
            message=f"{why}; the one in place goes on scaling {target}",
            event_type=EventType.WARNING,
            noteworthy=basis.state.last_reason is not reason,
        )
        return _decision_report(basis, decision)

    def lost_hold(self, holder: str) -> Report:
        """Another placement's conditional write landed first: it holds the Deployment, this
        one did nothing (no scale, no Job)."""
        assert self.basis is not None
        basis = self.basis
        return _blocked_report(
            basis.placement,
            Blocked(
                Reason.CONFLICTING_AUTOSCALER,
                f"WorkloadPlacement/{holder} took deployment/{basis.spec.target.deployment} "
                "first and holds it now; nothing changed",
            ),
            basis.now,
            _decided(basis.decision, basis.spec, Reason.CONFLICTING_AUTOSCALER, Phase.BLOCKED),
        )


# -- before anything is read ---------------------------------------------------------------


def admit(
    placement: Placement,
    settings: Settings,
    now: datetime,
    *,
    validated: WorkloadPlacementSpec | None = None,
) -> WorkloadPlacementSpec | Plan:
    """The spec to evaluate, or the plan that blocks a placement before anything is read: an
    invalid spec, a query for another namespace, a protected target. `validated`: what an
    earlier admit returned for this very spec (the operator remembers it per generation):
    it is not validated and scoped again."""
    try:
        if validated is not None:
            spec = validated
        else:
            spec = WorkloadPlacementSpec.model_validate(dict(placement.spec))
            # Before anything is queried: a query for another namespace, or for every series,
            # is never run.
            spec = scoped_spec(spec, placement.namespace if settings.scope_metrics else None)
    except (ValidationError, ScopeError) as error:
        blocked = Blocked(Reason.INVALID_SPEC, f"invalid spec, nothing done: {_problems(error)}")
        decided = Decided("None", Reason.INVALID_SPEC, None, "", Phase.BLOCKED)
        return Plan((), _blocked_report(placement, blocked, now, decided), INVALID_SPEC_INTERVAL)
    refusal = settings.protected.refusal(placement.namespace, spec.target.deployment)
    if refusal is not None:
        # Before the Deployment is even read: the operator's rights are not the author's.
        blocked = Blocked(Reason.INVALID_SPEC, f"protected target, nothing done: {refusal}")
        decided = Decided("None", Reason.INVALID_SPEC, None, "", Phase.BLOCKED)
        return Plan((), _blocked_report(placement, blocked, now, decided), INVALID_SPEC_INTERVAL)
    return spec


def _problems(error: ValidationError | ScopeError) -> str:
    # The CRD's schema rejects nearly everything at `kubectl apply`; what slips through (e.g.
    # a CRD older than the operator, a query for another namespace) blocks the placement with
    # the field named, never a crash.
    if isinstance(error, ScopeError):
        return str(error)
    return "; ".join(
        f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:5]
    )


# -- one evaluation -------------------------------------------------------------------------


def reconcile(
    placement: Placement,
    spec: WorkloadPlacementSpec,
    observation: Observation,
    now: datetime,
    settings: Settings | None = None,
    *,
    state: State | None = None,
) -> Plan:
    """Everything the operator does in this evaluation, decided from what it observed.
    `state`: what the operator remembers, when not read from the placement's status (replay
    keeps it in memory)."""
    settings = settings or Settings()
    interval = spec.evaluation_interval.timedelta.total_seconds()
    previous, steps = _read_status(placement)
    if state is None:
        state = state_from_status(placement.name, previous)
    deployment = observation.deployment
    if placement.overridden:
        if placement.spec_unchanged:
            # Someone took the Deployment over: do not fight them until the spec changes.
            return Plan(tuple(steps), Report(), interval)
        start_over, observation = _start_over(placement, spec, observation)
        steps += start_over
        state, deployment = State(name=placement.name), observation.deployment
    scaled = observation.scaled_object
    if scaled is not None and scaled.deployment != spec.target.deployment:
        # The target changed: KEDA stops scaling the old one before it is given back.
        steps.append(DeleteScaledObject(scaled.name, placement.name))
        observation = replace(observation, scaled_object=None)
    settled, settling = _settle(placement, spec, state, observation, now)
    steps += settling
    if isinstance(settled, Blocked):
        if observation.scaled_object is not None and settled.reason is Reason.MANUAL_OVERRIDE:
            # Not fighting the person means KEDA does not either: the replicas stay as set.
            steps.append(DeleteScaledObject(observation.scaled_object.name, placement.name))
        decided = Decided("None", settled.reason, None, spec.costs.currency, Phase.BLOCKED)
        return Plan(tuple(steps), _blocked_report(placement, settled, now, decided), interval)
    observed, noted = _observed(placement, spec, observation, now)
    steps += noted
    decision = decide(spec, observed, settled, now=now)
    interval = _next_look(spec, observed, decision, now, interval)
    basis = _Basis(
        placement, spec, settled, decision, previous, observation, now, settings, settled.holding
    )
    if settled.in_async or decision.state.in_async:
        return _async_actuation(basis, steps, deployment, interval)
    if observation.scaled_object is not None:
        # Ours, left behind (e.g. the operator stopped between deleting it and the status
        # write): KEDA must not go on scaling a Deployment the operator no longer gave it.
        steps.append(DeleteScaledObject(observation.scaled_object.name, placement.name))
    if not decision.actuate:
        return Plan(tuple(steps), _decision_report(basis, decision), interval)
    return _actuation(basis, steps, deployment, interval)


def _read_status(placement: Placement) -> tuple[WorkloadPlacementStatus | None, list[Step]]:
    raw = {k: v for k, v in placement.status.items() if k != "kopf"}
    if not raw:
        return None, []
    try:
        return WorkloadPlacementStatus.model_validate(raw), []
    except ValidationError as error:
        line = LogLine(logging.WARNING, f"status could not be read, starting from scratch: {error}")
        return None, [Log(line)]


def _start_over(
    placement: Placement, spec: WorkloadPlacementSpec, observation: Observation
) -> tuple[list[Step], Observation]:
    """The spec changed after a manual override: what runs now is the new starting point.
    Returns the steps and the observation as it reads once they are done."""
    target = spec.target.deployment
    # Keep the replicas someone chose; drop our claim.
    steps: list[Step] = [ForgetHold(held.name) for held in observation.claimed]
    deployment = observation.deployment
    if deployment is not None and deployment.managed_by == placement.name:
        deployment = deployment.forgotten()
    replicas = "no" if deployment is None else deployment.replicas
    steps.append(
        PostEvent(
            Event(
                EventType.NORMAL,
                Reason.MANUAL_OVERRIDE,
                f"spec changed after a manual override: starting over from the {replicas} "
                f"replicas deployment/{target} runs now; the earlier hold is forgotten",
            )
        )
    )
    return steps, replace(observation, deployment=deployment, claimed=())


def _settle(
    placement: Placement,
    spec: WorkloadPlacementSpec,
    state: State,
    observation: Observation,
    now: datetime,
) -> tuple[State | Blocked, list[Step]]:
    """Make the state agree with what the Deployments' annotations say is held, before
    deciding.

    The hold annotation, written in the same patch as the scale-down, is the only record of
    the count to restore: status.originalReplicas mirrors it and is never restored from
    (anyone who may patch the status subresource could write it)."""
    deployment = observation.deployment
    if deployment is not None and deployment.managed_by == placement.name:
        return _settle_own(placement, spec, state, deployment, observation, now)
    if state.original_replicas is None:
        return state, []
    # Status says something is held, but not the target: the target changed, or someone
    # changed the Deployment. The annotations tell which.
    target = spec.target.deployment
    elsewhere = [d for d in observation.held() if d.name != target]
    if elsewhere:
        steps: list[Step] = []
        for held in elsewhere:
            assert held.original_replicas is not None
            steps += _give_back(held, held.original_replicas, f"target changed to {_d(target)}")
        return State(name=placement.name), steps  # the new target is evaluated from scratch
    if deployment is None or deployment.replicas == state.original_replicas:
        # Gone (TargetMissing decides), or the restore landed and its status patch did not.
        return (state if deployment is None else replace(state, original_replicas=None)), []
    return Blocked(
        Reason.MANUAL_OVERRIDE,
        f"{_d(target)} was changed outside the operator: it runs {deployment.replicas} "
        f"replicas without the hold annotations (held at {spec.target.warm_replicas}, "
        f"{state.original_replicas} to restore); the operator stops acting on this placement "
        "until its spec changes",
    ), []


def _settle_own(
    placement: Placement,
    spec: WorkloadPlacementSpec,
    state: State,
    deployment: DeploymentState,
    observation: Observation,
    now: datetime,
) -> tuple[State | Blocked, list[Step]]:
    """The target carries this placement's hold."""
    target = _d(spec.target.deployment)
    if deployment.original_replicas is None:
        return Blocked(
            Reason.MANUAL_OVERRIDE,
            f"{target} carries this placement's hold but no valid "
            f"{ORIGINAL_REPLICAS_ANNOTATION} annotation (a whole number of replicas), so the "
            "count to restore is unknown; set it, or remove the placement.runplacement.io/ "
            "annotations, then change the spec",
        ), []
    if state.original_replicas is None:
        # Scale-down and annotations are one write, the status patch a second one: the
        # operator died between them. The annotations know what to restore, since when, and
        # the utilization the savings rest on, so the missed-window fallback works.
        held_since = deployment.held_since
        if observation.scaled_object is not None:
            # Our ScaledObject beside the hold: the move to async, not to batch.
            recovered = replace(
                state,
                original_replicas=deployment.original_replicas,
                phase=Phase.ASYNC,
                async_since=state.async_since or held_since or now,
                baseline_utilization=state.baseline_utilization or deployment.baseline_utilization,
            )
            message = (
                f"found {target} held by this placement ({deployment.original_replicas} to "
                f"restore, since {_when(held_since)}) and scaledobject/"
                f"{observation.scaled_object.name} with no record in status: continuing async"
            )
            return recovered, [PostEvent(Event(EventType.NORMAL, Reason.RECOVERED, message))]
        jobs = ", ".join(f"job {job.name} ({job.outcome})" for job in observation.jobs)
        message = (
            f"found {target} held at {deployment.replicas} replicas by this placement "
            f"({deployment.original_replicas} to restore, held since {_when(held_since)}) with "
            "no record in status" + (f"; found {jobs}" if jobs else "; no Job yet")
        )
        recovered = replace(
            state,
            original_replicas=deployment.original_replicas,
            phase=Phase.BATCH,
            batch_since=state.batch_since or held_since or now,
            baseline_utilization=state.baseline_utilization or deployment.baseline_utilization,
        )
        event = Event(EventType.NORMAL, Reason.RECOVERED, message + ": continuing the hold")
        return recovered, [PostEvent(event)]
    if state.async_since is not None:
        # KEDA sets the replicas between warmReplicas and the recorded count.
        if not _within_async_bounds(spec, deployment) and placement.spec_unchanged:
            return Blocked(
                Reason.MANUAL_OVERRIDE,
                f"{target} was scaled to {deployment.replicas} replicas outside the operator "
                f"while in async (its ScaledObject keeps it between "
                f"{spec.target.warm_replicas} and {deployment.original_replicas}); the operator "
                "stops acting on this placement until its spec changes",
            ), []
    elif deployment.replicas != spec.target.warm_replicas and placement.spec_unchanged:
        # Same spec as when we scaled it, other replicas: a person or GitOps changed it.
        return Blocked(
            Reason.MANUAL_OVERRIDE,
            f"{target} was scaled to {deployment.replicas} replicas outside the operator while "
            f"held at {spec.target.warm_replicas} ({deployment.original_replicas} to restore); "
            "the operator stops acting on this placement until its spec changes",
        ), []
    steps: list[Step] = []
    if state.original_replicas != deployment.original_replicas:
        steps.append(
            Log(
                LogLine(
                    logging.WARNING,
                    f"status.originalReplicas {state.original_replicas} differs from the hold "
                    f"annotation of {target} ({deployment.original_replicas}): the annotation "
                    "is the record, status is corrected",
                )
            )
        )
    return replace(state, original_replicas=deployment.original_replicas), steps


def _next_look(
    spec: WorkloadPlacementSpec,
    observed: Observed,
    decision: Decision,
    now: datetime,
    interval: float,
) -> float:
    """Seconds until the next evaluation: the interval, or sooner when a moment the decision
    turns on comes first (the planned hold's start and end, the window's start and end, the
    moment the delay becomes tolerated, a failed Job's retryWindow's end), so a hold starts
    and ends on time, not up to an evaluationInterval late. A Job that ends wakes the
    evaluation from the Job watch."""
    window = current_or_next_window(spec.batch.window, now)
    # Each moment as (a time, an offset): their sum may be beyond year 9999, their distance
    # from now is not.
    zero = timedelta(0)
    moments = [
        (window.start, zero),
        (window.end, zero),
        (window.end, -spec.latency.acceptable_delay.timedelta),
    ]
    if decision.plan is not None:
        moments += [(decision.plan.start, zero), (decision.plan.end, zero)]
    grace = spec.batch.retry_window.timedelta
    moments += [
        (job.finished_at, grace)
        for job in observed.jobs
        if job.outcome is JobOutcome.FAILED and job.finished_at is not None
    ]
    for moment, offset in moments:
        left = ((moment - now) + offset).total_seconds()
        if 0 <= left < interval:
            interval = left + 1  # just past it: the decisions test `now >= moment`
    return interval


def _within_async_bounds(spec: WorkloadPlacementSpec, deployment: DeploymentState) -> bool:
    original = deployment.original_replicas or 0
    return min(spec.target.warm_replicas, original) <= deployment.replicas <= original


def _give_back(deployment: DeploymentState, replicas: int, why: str) -> list[Step]:
    return [
        Restore(deployment.name, replicas),
        PostEvent(
            Event(
                EventType.NORMAL,
                Reason.RESTORED,
                f"{why}; {_d(deployment.name)} {deployment.replicas} -> {replicas} replicas "
                "restored",
            )
        ),
    ]


def _observed(
    placement: Placement, spec: WorkloadPlacementSpec, observation: Observation, now: datetime
) -> tuple[Observed, list[Step]]:
    """What decide() needs from the observation."""
    deployment = observation.deployment
    if deployment is None:
        return Observed(replicas=None), []
    conflicts = _others_autoscalers(observation)
    other = deployment.managed_by
    if other and other != placement.name:
        # Two placements on one Deployment would each restore what the other holds.
        if observation.other_holder_exists:
            conflicts.append(f"WorkloadPlacement/{other} (holds it now)")
        else:
            conflicts.append(
                f"stale hold annotations of WorkloadPlacement/{other}, which no longer exists:"
                f" remove the placement.runplacement.io/ annotations from "
                f"{_d(spec.target.deployment)}"
            )
    steps: list[Step] = []
    utilization, queue = observation.utilization, observation.queue_depth
    ok = utilization is not None and utilization.ok
    if queue is not None and not queue.ok:
        # Optional and informative only: a queue gauge that vanishes at zero must not block
        # decisions that rest on utilization.
        steps.append(Log(LogLine(logging.INFO, f"queueDepth not shown: {queue.describe()}")))
    observed = Observed(
        replicas=deployment.replicas,
        utilization=utilization.value if ok and utilization is not None else None,
        queue_depth=queue.value if queue is not None and queue.ok else None,
        metrics_error=None
        if ok
        else (utilization.describe() if utilization is not None else "not read"),
        metrics_age=utilization.age(now) if ok and utilization is not None else None,
        conflicting_autoscaler=", ".join(conflicts) or None,
        jobs=observation.jobs,
        requests=_usable(observation.requests),
        async_seen=_async_seen(observation),
        idle_hours=None if observation.history is None else idle_hours_of(observation.history),
        demand=_usable(observation.demand),
        backlog_metrics=spec.metrics.demand is not None or spec.metrics.queue_depth is not None,
        history=observation.history,
    )
    return observed, steps


def _others_autoscalers(observation: Observation) -> list[str]:
    """The autoscalers on the target, less the ScaledObject the operator made for this
    placement (read by its label) and KEDA's HPA for it. Never by name alone: one named
    placement-<name> or keda-hpa-placement-<name> may be anyone's, and the Deployment must
    not be scaled under it."""
    own = observation.scaled_object
    return list(others_autoscalers(observation.autoscalers, None if own is None else own.name))


def _usable(reading: Reading | None) -> float | None:
    return reading.value if reading is not None and reading.ok else None


def _async_seen(observation: Observation) -> AsyncSeen:
    queue = observation.async_queue
    if queue is None:
        state, detail = QueueState.NOT_READ, "not read"
    elif queue.ok and queue.value is not None and queue.value >= 0:  # NaN fails too
        state, detail = QueueState.READ, queue.describe()
    elif queue.outcome == "empty":
        state, detail = QueueState.EMPTY, queue.describe()
    else:
        state, detail = QueueState.FAILED, queue.describe()
    return AsyncSeen(queue=state, queue_detail=detail, keda_installed=observation.keda_installed)


def _actuation(
    basis: _Basis, steps: list[Step], deployment: DeploymentState | None, interval: float
) -> Plan:
    """Carry out the decision.

    A move validates the window's Job first (server-side dry run: a template the API server
    refuses must not cost the realtime replicas), then takes the hold with a write
    conditional on the Deployment as read (so of two placements only one holds it), and only
    then creates the Job: a placement that lost the race has created nothing."""
    decision, spec, placement = basis.decision, basis.spec, basis.placement
    target = spec.target.deployment
    moving = basis.state.original_replicas is None and decision.state.original_replicas is not None
    current: int | str = "?" if deployment is None else deployment.replicas
    manifest: dict[str, Any] | None = None
    job = decision.job_name
    after: tuple[str, ...] = ()
    if job or moving:
        # Outside the window the next window's Job is only validated.
        window = current_or_next_window(spec.batch.window, basis.now)
        job = job or window_job_name(placement.name, window)
        manifest = job_manifest(
            spec,
            placement=placement.name,
            job_name=job,
            window_label=window.label,
            work_replica_hours=decision.job_work_replica_hours,
        )
        policy = basis.settings.job_pod_policy
        violations = (
            [] if policy is None else template_violations(manifest["spec"]["template"], policy)
        )
        if violations:
            # The Job would run with the operator's rights, not its author's: never created.
            blocked = Blocked(
                Reason.BATCH_JOB_REJECTED,
                f"job {job} refused by the operator's job pod policy: {'; '.join(violations)}; "
                f"{_d(target)} left at {current} replicas",
            )
            decided = _decided(decision, spec, Reason.BATCH_JOB_REJECTED, Phase.BLOCKED)
            return Plan(
                tuple(steps), _blocked_report(placement, blocked, basis.now, decided), interval
            )
        if moving:
            steps.append(ValidateJob(job, manifest, current))
            after = ("validate",)
    holding = basis.state.holding
    desired = decision.desired_replicas
    if deployment is not None and desired is not None and desired != deployment.replicas:
        original = decision.state.original_replicas
        if original is not None:
            steps.append(
                TakeHold(
                    deployment,
                    desired,
                    original,
                    since=decision.state.batch_since or basis.now,
                    baseline_utilization=decision.state.baseline_utilization,
                    requires=after,
                )
            )
            after, holding = ("hold",), True
        else:
            steps += _restore_recorded(placement, deployment, desired)
            holding = False
    elif (
        deployment is not None
        and decision.state.original_replicas is None
        and deployment.managed_by == placement.name
    ):
        steps.append(ForgetHold(target))
    basis = replace(basis, holding=holding)
    if decision.job_name is not None and manifest is not None:
        left_at: int | str = desired if desired is not None else "?"
        steps.append(CreateJob(decision.job_name, manifest, left_at, requires=after))
        decision = replace(decision, message=decision.message + ttl_note(spec))
    return Plan(tuple(steps), _decision_report(basis, decision), interval, basis)


def _taken_by_others(plan: Plan, apply: ApplyScaledObject) -> Plan | None:
    """Moving to async: someone else's ScaledObject of that name, or an HPA of the name KEDA
    gives its own that is not KEDA's for ours (as the watch cache saw them), blocks it with
    no write, not a hold taken and given back each evaluation. The executor still reads the
    ScaledObject fresh and creates it only when there is none, for one that came since."""
    assert plan.basis is not None
    observation = plan.basis.observation
    if observation.scaled_object_taken is not None:
        return replace(
            plan, report=plan.scaled_object_taken(apply, observation.scaled_object_taken)
        )
    if observation.keda_hpa_taken is not None:
        return replace(plan, report=plan.keda_hpa_taken(apply, observation.keda_hpa_taken))
    return None


def _async_actuation(
    basis: _Basis, steps: list[Step], deployment: DeploymentState | None, interval: float
) -> Plan:
    """Async: the hold records the original replicas (TakeHold at the current count, nothing
    scaled), then the ScaledObject takes over the count; leaving deletes the ScaledObject
    first, so KEDA no longer scales, then restores. While in async the ScaledObject is
    applied again only when it is missing or differs from what the spec asks."""
    decision, spec, placement = basis.decision, basis.spec, basis.placement
    observation = basis.observation
    name = scaled_object_name(placement.name)
    was, now_in = basis.state.in_async, decision.state.in_async
    if deployment is None or (not decision.actuate and not now_in):
        return Plan(tuple(steps), _decision_report(basis, decision), interval, basis)
    if was and not now_in:  # leaving
        steps.append(DeleteScaledObject(name, placement.name))
        restore = _restore_recorded(placement, deployment, decision.desired_replicas or 0)
        steps += [
            replace(s, requires=("unscale",)) if isinstance(s, Restore) else s for s in restore
        ]
        basis = replace(basis, holding=False)
        return Plan(tuple(steps), _decision_report(basis, decision), interval, basis)
    original = decision.state.original_replicas
    assert original is not None and spec.async_ is not None
    manifest = scaled_object_manifest(
        placement=placement.name,
        namespace=placement.namespace,
        deployment=spec.target.deployment,
        query=spec.async_.queue,
        queue_per_replica=spec.async_.queue_per_replica,
        min_replicas=spec.target.warm_replicas,
        max_replicas=original,
        acceptable_delay=spec.latency.acceptable_delay.timedelta,
        prometheus_url=basis.settings.keda_prometheus_url,
    )
    if not was:  # moving: record the original count, then hand it over
        apply = ApplyScaledObject(manifest, requires=("hold",))
        taken = _taken_by_others(Plan(tuple(steps), Report(), interval, basis), apply)
        if taken is not None:
            return taken
        steps.append(
            TakeHold(
                deployment,
                deployment.replicas,
                original,
                since=decision.state.async_since or basis.now,
                baseline_utilization=decision.state.baseline_utilization,
            )
        )
        steps.append(apply)
        return Plan(tuple(steps), _decision_report(basis, decision), interval, basis)
    current = observation.scaled_object
    if (
        current is None
        # A new spec (e.g. acceptableDelay: polling and cooldown); replay has no generations.
        or (placement.generation is not None and not placement.spec_unchanged)
        or current.deployment != spec.target.deployment
        or current.min_replicas != spec.target.warm_replicas
        or current.max_replicas != original
    ):
        what = "missing" if current is None else "changed"
        steps.append(Log(LogLine(logging.INFO, f"scaledobject/{name} {what}: applied again")))
        steps.append(ApplyScaledObject(manifest))
    return Plan(tuple(steps), _decision_report(basis, decision), interval, basis)


def _restore_recorded(
    placement: Placement, deployment: DeploymentState, replicas: int
) -> list[Step]:
    """Restore, never above the count the hold annotation records (validated when read)."""
    recorded = deployment.original_replicas if deployment.managed_by == placement.name else None
    if recorded is None:
        return [
            Log(
                LogLine(
                    logging.WARNING,
                    f"{placement.namespace}/{placement.name}: not restoring "
                    f"{_d(deployment.name)}: it carries no hold of this placement",
                    on_placement=False,
                )
            )
        ]
    return [Restore(deployment.name, min(replicas, recorded))]


# -- reports ----------------------------------------------------------------------------------


def _decided(
    decision: Decision, spec: WorkloadPlacementSpec, reason: Reason, phase: Phase | None
) -> Decided:
    return Decided("None", reason, decision.savings_per_day, spec.costs.currency, phase)


def _blocked_report(
    placement: Placement, blocked: Blocked, now: datetime, decided: Decided
) -> Report:
    """Phase Blocked, Ready=False with the reason, and one Warning Event per new message."""
    status = status_update(
        dict(placement.status),
        blocked,
        previous=None,
        generation=placement.generation,
        now=now,
    )
    if status is None:
        return Report(decided)  # already said
    return Report(decided, Event(EventType.WARNING, blocked.reason, blocked.message), None, status)


def _decision_report(basis: _Basis, decision: Decision) -> Report:
    placement, spec, now = basis.placement, basis.spec, basis.now
    decided = Decided(
        str(decision.action),
        str(decision.reason),
        decision.savings_per_day,
        spec.costs.currency,
        str(decision.phase),
    )
    event = (
        Event(decision.event_type, decision.reason, decision.message)
        if decision.noteworthy
        else None
    )
    status = (
        status_update(
            dict(placement.status),
            decision,
            previous=basis.previous,
            generation=placement.generation,
            now=now,
            stored=placement.stored,
        )
        if basis.settings.write_status
        else None
    )
    window_job = window_job_name(placement.name, current_or_next_window(spec.batch.window, now))
    current_job = decision.state.current_job
    keep_succeeded, keep_failed = basis.settings.job_history
    prune = expired_jobs(
        basis.observation.jobs,
        basis.previous,
        keep_succeeded=keep_succeeded,
        keep_failed=keep_failed,
        protected={window_job, *(() if current_job is None else (current_job,))},
    )
    withdraw = (
        ()
        if decision.state.holding
        else tuple(unadmitted_jobs(basis.observation.jobs, current=window_job))
    )
    return Report(
        decided,
        event,
        decision,
        status,
        tuple(prune),
        basis.observation.deployment,
        withdraw,
    )


# -- deletion ---------------------------------------------------------------------------------


def release(placement: Placement, claimed: tuple[DeploymentState, ...]) -> tuple[Step, ...]:
    """Before the finalizer lets the placement go: give back every Deployment it holds with
    the count its hold annotation records; after a manual override, only drop the hold.

    Status is not read for a count: a hold whose annotations are gone is not restored. The
    spec may be invalid (a deletion must always go through), so only its target is read."""
    overridden = placement.overridden
    target_spec = placement.spec.get("target") or {}
    target, warm = target_spec.get("deployment"), target_spec.get("warmReplicas")
    steps: list[Step] = []
    scaled = _scaled_object_in_status(placement)
    if scaled is not None:
        # First, so KEDA no longer scales what is given back below.
        steps.append(
            DeleteScaledObject(
                scaled,
                placement.name,
                id="",
                if_refused=f"placement deleted, but scaledobject/{scaled} could not be deleted "
                "({detail}): delete it by hand, or KEDA goes on scaling the Deployment",
            )
        )
    for holding in claimed:
        # Scaled outside the operator, whether or not an evaluation has noticed it yet.
        moved = (
            placement.spec_unchanged
            and holding.name == target
            and isinstance(warm, int)
            and not _as_left(holding, warm, in_async=scaled is not None)
        )
        if holding.original_replicas is None or overridden or moved:
            steps += _drop_hold(holding, overridden or moved)
        else:
            steps += _give_back(holding, holding.original_replicas, "placement deleted")
    # A refusal no retry will change (a policy, a webhook, lost rights) must not keep the
    # finalizer, and the placement and its namespace, forever: the placement goes, and a
    # Warning says what to do by hand. Transient errors still fail the deletion (retried).
    steps = _or_by_hand(steps, claimed)
    recorded = placement.status.get("originalReplicas")
    if not claimed and recorded is not None:
        steps.append(
            Log(
                LogLine(
                    logging.INFO,
                    f"status.originalReplicas is {recorded} but no Deployment carries this "
                    "placement's hold annotations: nothing restored",
                )
            )
        )
    return tuple(steps)


def _scaled_object_in_status(placement: Placement) -> str | None:
    """The ScaledObject status.async names (the placement is in async), or None."""
    recorded = placement.status.get("async")
    name = recorded.get("scaledObject") if isinstance(recorded, Mapping) else None
    return name if isinstance(name, str) and name else None


def _as_left(holding: DeploymentState, warm: int, *, in_async: bool) -> bool:
    """The replicas are where the operator left them: warmReplicas in batch, anything
    KEDA may set (warmReplicas to the recorded count) in async."""
    if not in_async:
        return holding.replicas == warm
    original = holding.original_replicas or 0
    return min(warm, original) <= holding.replicas <= original


def _or_by_hand(steps: list[Step], claimed: tuple[DeploymentState, ...]) -> list[Step]:
    """Each write gets the Warning to post if it is refused for good; the Event and log line
    after it (which say it was done) then require it."""
    marked: list[Step] = []
    write = ""
    for step in steps:
        if isinstance(step, Restore | ForgetHold):
            write = f"release-{step.deployment}"
            count = next((d.original_replicas for d in claimed if d.name == step.deployment), None)
            todo = (
                f"scale it back by hand to {count} replicas and remove its placement annotations"
                if count is not None
                else "remove its placement annotations by hand"
            )
            step = replace(
                step,
                id=write,
                if_refused=f"placement deleted, but {_d(step.deployment)} could not be given "
                f"back ({{detail}}): {todo}",
            )
        elif write and isinstance(step, PostEvent | Log):
            step = replace(step, requires=(write,))
        marked.append(step)
    return marked


def _drop_hold(deployment: DeploymentState, overridden: bool) -> list[Step]:
    name = _d(deployment.name)
    if overridden:
        why = (
            f"placement deleted after a manual override: {name} keeps the "
            f"{deployment.replicas} replicas set outside the operator (not restored to "
            f"{deployment.original_replicas}); its hold annotations are removed"
        )
    else:
        why = (
            f"placement deleted: {name} keeps its {deployment.replicas} replicas; its hold "
            "annotations had no valid count to restore and are removed"
        )
    return [
        ForgetHold(deployment.name),
        Log(LogLine(logging.INFO, why)),
        PostEvent(Event(EventType.NORMAL, Reason.MANUAL_OVERRIDE, why)),
    ]


def _d(name: str) -> str:
    return f"deployment/{name}"


def _when(moment: datetime | None) -> str:
    return "an unknown time" if moment is None else moment.isoformat(timespec="seconds")
