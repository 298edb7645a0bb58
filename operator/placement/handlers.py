"""kopf handlers: thin glue from events to the policy and back to Kubernetes.

Each evaluation: observe (Deployment, autoscalers, Jobs, metrics) -> `decide()` (pure) ->
act if the decision says so (Enforce only) -> post an Event if the decision changed ->
patch status if it differs -> delete finished Jobs beyond the history limits. Status and the
Deployment's annotations are the whole state, so a restarted operator continues where the
last one stopped; the count to restore is read from the Deployment's hold annotation only
(status mirrors it).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import kopf
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from pydantic import ValidationError

from placement.api import (
    GROUP,
    PLURAL,
    VERSION,
    Phase,
    WorkloadPlacementSpec,
    WorkloadPlacementStatus,
)
from placement.config import OperatorConfig
from placement.diffbase import SpecDigestDiffBaseStorage
from placement.jobpolicy import JobPodPolicy, ProtectedTargets, pod_violations
from placement.jobs import expired_jobs, job_manifest, ttl_note
from placement.kube import DeploymentState, HoldConflict, JobState, KubeAdapter
from placement.labels import FINALIZER, ORIGINAL_REPLICAS_ANNOTATION
from placement.liveness import Liveness
from placement.policy import Decision, JobObservation, Observed, State, decide
from placement.prometheus import (
    BatchedMetricsReader,
    Metrics,
    MetricsReader,
    QueryLimits,
    Reading,
)
from placement.reasons import EventType, Reason
from placement.status import build_status, state_from_status, status_patch
from placement.telemetry import Telemetry
from placement.tenancy import ScopeError, scoped_spec
from placement.window import current_or_next_window
from placement.window import job_name as window_job_name

RESOURCE = (GROUP, VERSION, PLURAL)
EVENT_SOURCE = "placement-operator"
Clock = Callable[[], dt.datetime]
Logger = logging.Logger | logging.LoggerAdapter[Any]
# The Event reason of a refused status write: an Event only, never in status (which could not
# be written), so it is not one of status.decision's reasons.
STATUS_WRITE_FAILED = "StatusWriteFailed"
# Lines that must not also become Events through kopf's per-object logger (their Event, if
# any, is posted once on purpose).
log = logging.getLogger(__name__)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def kubernetes_configuration(kubeconfig: str | None = None) -> k8s.Configuration:
    """An explicit kubeconfig file; else in a pod its ServiceAccount; else KUBECONFIG or
    ~/.kube/config (as kopf does)."""
    configuration = k8s.Configuration()
    if kubeconfig:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
        return configuration
    try:
        k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    except ConfigException:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    return configuration


def connection_info(configuration: k8s.Configuration) -> kopf.ConnectionInfo:
    """kopf's credentials from the same configuration our ApiClient uses."""
    # The kubernetes client keeps the token under "BearerToken" since v36, before that under
    # "authorization" (as kopf.login_via_client reads it).
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    scheme, _, token = str(header or "").partition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


def bounded_session(info: kopf.ConnectionInfo, *, connections: int) -> kopf.AiohttpSession:
    """kopf's own session with at most `connections` connections to the API server.

    kopf's default has no limit, so a bulk apply of 1,000 placements opened hundreds of TLS
    connections at once: 104 of the 253 MiB live at the operator's peak (memray)."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        aiohttp_session=session,
    )


class _TimerSuccessesAtDebug(logging.Filter):
    """kopf logs "Timer 'reconcile' succeeded." at INFO for every placement at every tick
    (4,000 lines a minute at 1,000 placements); they become DEBUG lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        if (
            record.levelno == logging.INFO
            and message.startswith("Timer ")
            and message.endswith(" succeeded.")
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def quiet_timer_successes() -> None:
    objects = logging.getLogger("kopf.objects")  # the logger of kopf's handler outcomes
    if not any(isinstance(f, _TimerSuccessesAtDebug) for f in objects.filters):
        objects.addFilter(_TimerSuccessesAtDebug())


def register(
    registry: kopf.OperatorRegistry,
    config: OperatorConfig,
    clock: Clock = utc_now,
    telemetry: Telemetry | None = None,
) -> Telemetry:
    """Attach every handler to `registry`, with intervals from `config`; returns the metrics
    the handlers record (serve them with `Telemetry.serve`)."""
    telemetry = telemetry or Telemetry()
    protected = config.protected_targets()
    liveness = Liveness(config.stall_bound)
    job_history = (config.job_history_successful, config.job_history_failed)

    @kopf.on.login(id="login", registry=registry)
    async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
        # A registry of our own starts empty: authenticate the way our ApiClient does.
        info: kopf.ConnectionInfo | None = (
            connection_info(kubernetes_configuration(config.kubeconfig))
            if config.kubeconfig
            else kopf.login_via_client(**kwargs)
        )
        if info is None:
            return None
        # Long-lived watches hold a connection each: one per watched resource and namespace.
        watches = 3 * max(1, len(config.namespaces))
        return bounded_session(info, connections=config.api_connections + watches)

    @kopf.on.startup(id="configure", registry=registry)
    def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        # Chosen once: changing the finalizer or the prefix later strands existing objects.
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        # A digest of the spec, not a copy: a large spec cannot make the placement undeletable.
        settings.persistence.diffbase_storage = SpecDigestDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        settings.posting.level = config.posting_level
        # `kubectl describe` shows "From: placement-operator, <pod>" (a pod's hostname is its
        # name), not kopf's defaults "kopf" and "dev".
        settings.posting.reporting_component = EVENT_SOURCE
        settings.posting.reporting_instance = socket.gethostname()
        quiet_timer_successes()
        settings.watching.server_timeout = config.watch_timeout_seconds
        settings.watching.client_timeout = config.watch_timeout_seconds + 30
        settings.execution.max_workers = config.workers
        settings.peering.lifetime = config.peering_lifetime_seconds
        settings.peering.stealth = True  # no log line per keep-alive
        # kopf's own requests (patches, Events, peering) time out like ours; watches keep
        # their longer timeouts above.
        settings.networking.request_timeout = config.api_timeout_seconds
        if config.namespaces:
            # Namespaced mode has no cluster-wide read of CRDs (least privilege): do not
            # ask for it, instead of logging a 403 warning at every start.
            settings.scanning.disabled = True
        memo.api_client = k8s.ApiClient(kubernetes_configuration(config.kubeconfig))
        memo.kube = KubeAdapter(memo.api_client, telemetry, timeout=config.api_timeout_seconds)
        reader = MetricsReader(
            config.prometheus_url,
            timeout=config.prometheus_timeout_seconds,
            headers=config.prometheus_request_headers(),
            basic_auth=config.prometheus_basic_auth(),
            ca_file=config.prometheus_ca_file,
            limits=QueryLimits(config.prometheus_max_series, config.prometheus_max_bytes),
        )
        memo.metrics = (
            BatchedMetricsReader(reader, max_age=config.metrics_max_age_seconds)
            if config.query_mode == "batched"
            else reader
        )

    @kopf.on.cleanup(id="close-clients", registry=registry)
    def close_clients(memo: kopf.Memo, **_: Any) -> None:
        api_client = getattr(memo, "api_client", None)
        if api_client is not None:
            api_client.close()

    @kopf.on.update(*RESOURCE, id="spec-changed", field="spec", registry=registry)
    def spec_changed(memo: kopf.Memo, **_: Any) -> None:
        memo.next_evaluation = 0.0  # evaluate at the next tick, not after the interval

    @kopf.on.probe(id="evaluations", registry=registry, errors=kopf.ErrorsMode.PERMANENT)
    async def evaluations(**_: Any) -> dict[str, int]:
        # Async: answered from the event loop even when every worker thread is stuck.
        problem = liveness.problem()
        if problem is not None:
            raise kopf.PermanentError(problem)  # /healthz answers 500
        return liveness.summary()

    # A failed evaluation (e.g. a request that timed out) is retried at the next tick, not
    # after kopf's default minute.
    @kopf.timer(
        *RESOURCE,
        id="reconcile",
        interval=config.tick_seconds,
        backoff=config.tick_seconds,
        registry=registry,
    )
    def reconcile(
        body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: Logger, **_: Any
    ) -> None:
        if time.monotonic() < getattr(memo, "next_evaluation", 0.0):
            return
        key = f"{body.metadata.namespace}/{body.metadata.name}"
        liveness.started(key)
        completed = False
        try:
            with telemetry.reconciling():
                interval = evaluate(
                    body,
                    patch,
                    memo.kube,
                    memo.metrics,
                    clock(),
                    logger,
                    telemetry=telemetry,
                    scope_metrics=config.scope_metrics_to_namespace,
                    job_history=job_history,
                    job_pod_policy=config.job_pod_policy,
                    protected=protected,
                )
                write_status(body, patch, memo.kube, memo, telemetry)
            completed = True
        finally:
            liveness.finished(key, ok=completed)
        memo.next_evaluation = time.monotonic() + interval

    @kopf.on.delete(*RESOURCE, id="restore-on-delete", registry=registry)
    def restore_on_delete(body: kopf.Body, memo: kopf.Memo, logger: Logger, **_: Any) -> None:
        restore_for_deletion(body, memo.kube, logger)
        telemetry.forget(str(body.metadata.namespace), str(body.metadata.name))

    return telemetry


# -- one evaluation -----------------------------------------------------------------------


def evaluate(
    body: kopf.Body,
    patch: kopf.Patch,
    kube: KubeAdapter,
    metrics: Metrics,
    now: dt.datetime,
    logger: Logger,
    *,
    telemetry: Telemetry | None = None,
    scope_metrics: bool = True,
    job_pod_policy: JobPodPolicy | None = None,
    protected: ProtectedTargets | None = None,
    job_history: tuple[int, int] = (3, 1),
) -> float:
    """Evaluate one placement into `patch` (status, for `write_status`); return seconds
    until it is due again. `job_history`: succeeded and failed Jobs kept."""
    telemetry = telemetry or Telemetry()
    job_pod_policy = job_pod_policy or JobPodPolicy()
    protected = protected or ProtectedTargets()
    name, namespace = body.metadata.name, body.metadata.namespace
    assert name is not None and namespace is not None
    raw_status = dict(body.get("status") or {})
    try:
        spec = WorkloadPlacementSpec.model_validate(dict(body.spec))
        # Before anything is queried: a query for another namespace, or for every series, is
        # never run.
        spec = scoped_spec(spec, namespace if scope_metrics else None)
    except (ValidationError, ScopeError) as error:
        _report_invalid_spec(body, patch, raw_status, error)
        telemetry.decided(
            namespace,
            name,
            action="None",
            reason=Reason.INVALID_SPEC,
            savings=None,
            currency="",
            phase=Phase.BLOCKED,
        )
        return 60.0
    refusal = protected.refusal(namespace, spec.target.deployment)
    if refusal is not None:
        # Before the Deployment is even read: the operator's rights are not the author's.
        _report_blocked(
            body,
            patch,
            raw_status,
            Reason.INVALID_SPEC,
            f"protected target, nothing done: {refusal}",
        )
        telemetry.decided(
            namespace, name, action="None", reason=Reason.INVALID_SPEC, savings=None, currency=""
        )
        return 60.0
    previous = _parse_status(raw_status, logger)
    state = state_from_status(name, previous)
    deployment = kube.read_deployment(namespace, spec.target.deployment)
    currency = spec.costs.currency
    generation = body.metadata.get("generation")
    if _overridden(raw_status):
        if raw_status.get("observedGeneration") == generation:
            # Someone took the Deployment over: do not fight them until the spec changes.
            return spec.evaluation_interval.timedelta.total_seconds()
        state, deployment = _start_over(body, spec, deployment, kube)
    spec_unchanged = generation is not None and raw_status.get("observedGeneration") == generation
    settled = _settle_holds(body, spec, state, deployment, kube, now, logger, spec_unchanged)
    if isinstance(settled, str):
        _report_blocked(body, patch, raw_status, Reason.MANUAL_OVERRIDE, settled)
        telemetry.decided(
            namespace,
            name,
            action="None",
            reason=Reason.MANUAL_OVERRIDE,
            savings=None,
            currency=currency,
            phase=Phase.BLOCKED,
        )
        return spec.evaluation_interval.timedelta.total_seconds()
    state = settled
    observed = _observe(spec, namespace, name, deployment, kube, metrics, logger, telemetry)
    decision = decide(spec, observed, state, now=now)
    if decision.actuate:
        outcome = _actuate(decision, spec, body, state, deployment, kube, now, job_pod_policy)
        if outcome.holder is not None:
            # Another placement's conditional write landed first: it holds the Deployment,
            # this one did nothing (no scale, no Job).
            _report_blocked(
                body,
                patch,
                raw_status,
                Reason.CONFLICTING_AUTOSCALER,
                f"WorkloadPlacement/{outcome.holder} took deployment/{spec.target.deployment} "
                "first and holds it now; nothing changed",
            )
            telemetry.decided(
                namespace,
                name,
                action="None",
                reason=Reason.CONFLICTING_AUTOSCALER,
                savings=decision.savings_per_day,
                currency=currency,
            )
            return spec.evaluation_interval.timedelta.total_seconds()
        refusal = outcome.refusal
        if refusal is not None:
            if not outcome.holding:
                # Nothing was scaled: say why instead of recording a move that did not happen.
                _report_blocked(body, patch, raw_status, Reason.BATCH_JOB_REJECTED, refusal)
                telemetry.decided(
                    namespace,
                    name,
                    action="None",
                    reason=Reason.BATCH_JOB_REJECTED,
                    savings=decision.savings_per_day,
                    currency=currency,
                    phase=Phase.BLOCKED,
                )
                return spec.evaluation_interval.timedelta.total_seconds()
            # Already held: say so instead of "created"; the window will be missed and the
            # fallback gives the replicas back.
            decision = replace(
                decision,
                reason=Reason.BATCH_JOB_REJECTED,
                message=refusal,
                event_type=EventType.WARNING,
                job_name=None,
                noteworthy=state.last_reason is not Reason.BATCH_JOB_REJECTED,
                state=replace(decision.state, current_job=state.current_job),
            )
        elif decision.job_name is not None:
            decision = replace(decision, message=decision.message + ttl_note(spec))
    telemetry.decided(
        namespace,
        name,
        action=str(decision.action),
        reason=str(decision.reason),
        savings=decision.savings_per_day,
        currency=currency,
        phase=str(decision.phase),
    )
    if decision.noteworthy:
        kopf.event(
            body,
            type=str(decision.event_type),
            reason=str(decision.reason),
            message=decision.message,
        )
        log_decision(logger, decision, deployment)
    generation = body.metadata.get("generation")
    status = build_status(decision, previous, generation=generation)
    for key, value in (status_patch(raw_status, status) or {}).items():
        patch.status[key] = value
    window_job = window_job_name(name, current_or_next_window(spec.batch.window, now))
    _prune_jobs(
        namespace,
        observed,
        previous,
        protected={window_job, *_present(decision.state.current_job)},
        kube=kube,
        logger=logger,
        history=job_history,
    )
    return spec.evaluation_interval.timedelta.total_seconds()


def log_decision(logger: Logger, decision: Decision, deployment: DeploymentState | None) -> None:
    """One line per decision change: key=value in text logs, the same fields under
    `decision` in JSON logs. Not posted as an Event (the decision has its own)."""
    fields = {
        "reason": str(decision.reason),
        "phase": str(decision.phase),
        "action": str(decision.action),
        "savingsPerDay": decision.savings_per_day,
        "replicas": None if deployment is None else deployment.replicas,
        "desiredReplicas": decision.desired_replicas,
        "actuate": decision.actuate,
    }
    logger.info(
        "decision %s",
        " ".join(f"{key}={value}" for key, value in fields.items()),
        extra={"decision": fields, "k8s_skip": True},
    )


def _present(name: str | None) -> tuple[str, ...]:
    return () if name is None else (name,)


def _prune_jobs(
    namespace: str,
    observed: Observed,
    recorded: WorkloadPlacementStatus | None,
    *,
    protected: set[str],
    kube: KubeAdapter,
    logger: Logger,
    history: tuple[int, int],
) -> None:
    """Delete finished Jobs beyond the history limits whose outcome status already holds.
    Housekeeping: a failure is logged and retried at the next evaluation."""
    keep_succeeded, keep_failed = history
    expired = expired_jobs(
        observed.jobs,
        recorded,
        keep_succeeded=keep_succeeded,
        keep_failed=keep_failed,
        protected=protected,
    )
    for job in expired:
        try:
            kube.delete_job(namespace, job)
        except (ApiException, urllib3.exceptions.HTTPError) as error:
            detail = _api_message(error) if isinstance(error, ApiException) else str(error)
            log.warning("%s/%s not deleted, kept for now: %s", namespace, job, detail)
            return
        logger.info("deleted finished job %s (beyond the Job history limits)", job)


def write_status(
    body: kopf.Body,
    patch: kopf.Patch,
    kube: KubeAdapter,
    memo: kopf.Memo,
    telemetry: Telemetry,
) -> None:
    """Write the status the evaluation put in `patch`, ourselves rather than through kopf.

    kopf applies a timer's patch after the handler and, when the API server refuses it (a
    422, a NaN that is no JSON), ends that placement's timer without a word. Here a refusal
    is reported (Warning Event once per message, a log line, a metric) and the placement is
    evaluated again at its next turn. Transient errors (5xx, 429, timeouts) raise, and kopf
    retries at the next tick."""
    status = patch.pop("status", None)
    if not status:
        return
    name, namespace = str(body.metadata.name), str(body.metadata.namespace)
    try:
        kube.patch_placement_status(namespace, name, dict(status))
    except ApiException as error:
        if error.status is None or error.status >= 500 or error.status in (409, 429):
            raise
        code, detail = str(error.status), _api_message(error)
    except (TypeError, ValueError) as error:
        code, detail = "unserializable", str(error)[:500]
    else:
        memo.status_write_failure = None
        return
    telemetry.status_write_failed(code)
    message = (
        f"status could not be written ({code}: {detail}); the placement is still evaluated "
        "and acts on its decisions, but status shows an older one"
    )
    log.error("%s/%s: %s", namespace, name, message)
    if getattr(memo, "status_write_failure", None) != message:
        kopf.event(body, type=str(EventType.WARNING), reason=STATUS_WRITE_FAILED, message=message)
        memo.status_write_failure = message


def _observe(
    spec: WorkloadPlacementSpec,
    namespace: str,
    name: str,
    deployment: DeploymentState | None,
    kube: KubeAdapter,
    metrics: Metrics,
    logger: Logger,
    telemetry: Telemetry,
) -> Observed:
    if deployment is None:
        return Observed(replicas=None)
    conflicts = kube.conflicting_autoscalers(namespace, spec.target.deployment)
    other = deployment.managed_by
    if other and other != name:
        # Two placements on one Deployment would each restore what the other holds.
        if kube.placement_exists(namespace, other):
            conflicts.append(f"WorkloadPlacement/{other} (holds it now)")
        else:
            conflicts.append(
                f"stale hold annotations of WorkloadPlacement/{other}, which no longer exists:"
                f" remove the placement.runplacement.io/ annotations from deployment/"
                f"{spec.target.deployment}"
            )
    lookback = spec.metrics.lookback.timedelta
    reader = f"{namespace}/{name}"
    utilization = metrics.utilization(spec.metrics.utilization, lookback, reader=reader)
    if not utilization.ok:
        telemetry.query_failed(str(utilization.outcome))
    queue: Reading | None = None
    if spec.metrics.queue_depth:
        queue = metrics.queue_depth(spec.metrics.queue_depth, lookback, reader=reader)
        if not queue.ok:
            telemetry.query_failed(str(queue.outcome))
            # Optional and informative only: a queue gauge that vanishes at zero must not
            # block decisions that rest on utilization.
            logger.info("queueDepth not shown: %s", queue.describe())
    return Observed(
        replicas=deployment.replicas,
        utilization=utilization.value if utilization.ok else None,
        queue_depth=queue.value if queue is not None and queue.ok else None,
        metrics_error=None if utilization.ok else utilization.describe(),
        conflicting_autoscaler=", ".join(conflicts) or None,
        jobs=tuple(_job_observation(job) for job in kube.placement_jobs(namespace, name)),
    )


def _job_observation(job: JobState) -> JobObservation:
    return JobObservation(
        name=job.name,
        outcome=job.outcome,
        finished_at=job.finished_at,
        pod_hours=job.pod_hours,
        failed_pod_hours=job.failed_pod_hours,
        work_replica_hours=job.work_replica_hours,
    )


def _overridden(raw_status: dict[str, Any]) -> bool:
    ready: dict[str, Any] = next(
        (c for c in raw_status.get("conditions") or [] if c.get("type") == "Ready"), {}
    )
    return (
        raw_status.get("phase") == Phase.BLOCKED and ready.get("reason") == Reason.MANUAL_OVERRIDE
    )


def _start_over(
    body: kopf.Body,
    spec: WorkloadPlacementSpec,
    deployment: DeploymentState | None,
    kube: KubeAdapter,
) -> tuple[State, DeploymentState | None]:
    """The spec changed after a manual override: what runs now is the new starting point."""
    name, namespace = str(body.metadata.name), str(body.metadata.namespace)
    target = spec.target.deployment
    for held in kube.claimed_by(namespace, name):
        kube.forget(namespace, held.name)  # keep the replicas someone chose; drop our claim
    if deployment is not None and deployment.managed_by == name:
        deployment = kube.read_deployment(namespace, target)
    replicas = "no" if deployment is None else deployment.replicas
    kopf.event(
        body,
        type=str(EventType.NORMAL),
        reason=str(Reason.MANUAL_OVERRIDE),
        message=f"spec changed after a manual override: starting over from the {replicas} "
        f"replicas deployment/{target} runs now; the earlier hold is forgotten",
    )
    return State(name=name), deployment


def _settle_holds(
    body: kopf.Body,
    spec: WorkloadPlacementSpec,
    state: State,
    deployment: DeploymentState | None,
    kube: KubeAdapter,
    now: dt.datetime,
    logger: Logger,
    spec_unchanged: bool = False,
) -> State | str:
    """Make status agree with what the Deployments' annotations say is held, before deciding.

    The hold annotation, written in the same patch as the scale-down, is the only record of
    the count to restore: status.originalReplicas mirrors it and is never restored from
    (anyone who may patch the status subresource could write it).

    Returns the state to decide from, or why the placement must stop acting (a Deployment
    changed outside the operator)."""
    name = str(body.metadata.name)
    target = spec.target.deployment
    if deployment is not None and deployment.managed_by == name:
        if deployment.original_replicas is None:
            return (
                f"deployment/{target} carries this placement's hold but no valid "
                f"{ORIGINAL_REPLICAS_ANNOTATION} annotation (a whole number of replicas), so "
                "the count to restore is unknown; set it, or remove the "
                "placement.runplacement.io/ annotations, then change the spec"
            )
        if state.original_replicas is None:
            # Scale-down and annotations are one write, the status patch a second one: the
            # operator died between them. The annotations know what to restore, since when,
            # and the utilization the savings rest on, so the missed-window fallback works.
            jobs = ", ".join(
                f"job {job.name} ({job.outcome})"
                for job in kube.placement_jobs(str(body.metadata.namespace), name)
            )
            kopf.event(
                body,
                type=str(EventType.NORMAL),
                reason=str(Reason.RECOVERED),
                message=f"found deployment/{target} held at {deployment.replicas} replicas by "
                f"this placement ({deployment.original_replicas} to restore, held since "
                f"{_when(deployment.held_since)}) with no record in status"
                + (f"; found {jobs}" if jobs else "; no Job yet")
                + ": continuing the hold",
            )
            return replace(
                state,
                original_replicas=deployment.original_replicas,
                phase=Phase.BATCH,
                batch_since=state.batch_since or deployment.held_since or now,
                baseline_utilization=state.baseline_utilization or deployment.baseline_utilization,
            )
        if deployment.replicas != spec.target.warm_replicas and spec_unchanged:
            # Same spec as when we scaled it, other replicas: a person or GitOps changed it.
            return (
                f"deployment/{target} was scaled to {deployment.replicas} replicas outside the "
                f"operator while held at {spec.target.warm_replicas} "
                f"({deployment.original_replicas} to restore); the operator stops acting on "
                "this placement until its spec changes"
            )
        if state.original_replicas != deployment.original_replicas:
            logger.warning(
                "status.originalReplicas %s differs from the hold annotation of "
                "deployment/%s (%s): the annotation is the record, status is corrected",
                state.original_replicas,
                target,
                deployment.original_replicas,
            )
        return replace(state, original_replicas=deployment.original_replicas)
    if state.original_replicas is None:
        return state
    # Status says something is held, but not the target: the target changed, or someone
    # changed the Deployment. The annotations tell which.
    elsewhere = [d for d in kube.held_by(str(body.metadata.namespace), name) if d.name != target]
    if elsewhere:
        for held in elsewhere:
            assert held.original_replicas is not None
            _give_back(
                body, kube, held, held.original_replicas, f"target changed to deployment/{target}"
            )
        return State(name=name)  # the new target is evaluated from scratch
    if deployment is None or deployment.replicas == state.original_replicas:
        # Gone (TargetMissing decides), or the restore landed and its status patch did not.
        return state if deployment is None else replace(state, original_replicas=None)
    return (
        f"deployment/{target} was changed outside the operator: it runs "
        f"{deployment.replicas} replicas without the hold annotations (held at "
        f"{spec.target.warm_replicas}, {state.original_replicas} to restore); the operator "
        "stops acting on this placement until its spec changes"
    )


@dataclass(frozen=True)
class _Actuation:
    refusal: str | None = None  # why the API server refused the Job
    holder: str | None = None  # the placement that took the hold first; nothing was done
    holding: bool = False  # this placement holds the Deployment afterwards


def _actuate(
    decision: Decision,
    spec: WorkloadPlacementSpec,
    body: kopf.Body,
    before: State,
    deployment: DeploymentState | None,
    kube: KubeAdapter,
    now: dt.datetime,
    job_pod_policy: JobPodPolicy | None = None,
) -> _Actuation:
    """Carry out the decision.

    A move validates the window's Job first (server-side dry run: a template the API server
    refuses must not cost the realtime replicas), then takes the hold with a write
    conditional on the Deployment as read (so of two placements only one holds it), and only
    then creates the Job: a placement that lost the race has created nothing."""
    name, namespace = body.metadata.name, body.metadata.namespace
    assert name is not None and namespace is not None
    target = spec.target.deployment
    moving = before.original_replicas is None and decision.state.original_replicas is not None
    manifest: dict[str, Any] | None = None
    job = decision.job_name
    if job or moving:
        # Outside the window the next window's Job is only validated.
        window = current_or_next_window(spec.batch.window, now)
        job = job or window_job_name(name, window)
        manifest = job_manifest(
            spec,
            placement=name,
            job_name=job,
            window_label=window.label,
            work_replica_hours=decision.job_work_replica_hours,
        )
        held = deployment.replicas if deployment is not None else "?"
        violations = pod_violations(
            manifest["spec"]["template"]["spec"], job_pod_policy or JobPodPolicy()
        )
        if violations:
            # The Job would run with the operator's rights, not its author's: never created.
            return _Actuation(
                refusal=f"job {job} refused by the operator's job pod policy: "
                f"{'; '.join(violations)}; deployment/{target} left at {held} replicas"
            )
        kopf.adopt(manifest, owner=body)  # the Job goes when its placement goes
        if moving:
            current = "?" if deployment is None else deployment.replicas
            refusal = _create_job(kube, namespace, manifest, target, current, dry_run=True)
            if refusal is not None:
                return _Actuation(refusal=refusal)
    holding = before.holding
    desired = decision.desired_replicas
    if deployment is not None and desired is not None and desired != deployment.replicas:
        original = decision.state.original_replicas
        if original is not None:
            holder = _take_hold(kube, namespace, name, deployment, desired, original, decision, now)
            if holder is not None:
                return _Actuation(holder=holder, holding=holding)
            holding = True
        else:
            _restore_recorded(kube, namespace, name, deployment, desired)
            holding = False
    elif (
        deployment is not None
        and decision.state.original_replicas is None
        and deployment.managed_by == name
    ):
        kube.forget(namespace, target)
    if decision.job_name is not None and manifest is not None:
        held = desired if desired is not None else "?"
        refusal = _create_job(kube, namespace, manifest, target, held, dry_run=False)
        if refusal is not None:
            return _Actuation(refusal=refusal, holding=holding)
    return _Actuation(holding=holding)


def _create_job(
    kube: KubeAdapter,
    namespace: str,
    manifest: dict[str, Any],
    target: str,
    replicas: int | str,
    *,
    dry_run: bool,
) -> str | None:
    """Create (or validate) the Job; the refusal message when the API server refuses it."""
    try:
        kube.create_job(namespace, manifest, dry_run=dry_run)
    except ApiException as error:
        if error.status is None or error.status >= 500 or error.status == 429:
            raise  # transient: kopf retries the handler
        return (
            f"job {manifest['metadata']['name']} refused by the API server ({error.status}: "
            f"{_api_message(error)}); deployment/{target} left at {replicas} replicas"
        )
    return None


HOLD_ATTEMPTS = 5


def _take_hold(
    kube: KubeAdapter,
    namespace: str,
    name: str,
    deployment: DeploymentState,
    replicas: int,
    original: int,
    decision: Decision,
    now: dt.datetime,
) -> str | None:
    """Scale down and annotate the Deployment as read; None when done, else the placement
    that holds it now. A 409 for any other change (e.g. its status) is retried on a fresh
    read; a change to its replicas in between means the decision is stale: retried later."""
    current = deployment
    for _ in range(HOLD_ATTEMPTS):
        try:
            kube.scale_for_batch(
                namespace,
                deployment.name,
                replicas=replicas,
                original=original,
                placement=name,
                since=decision.state.batch_since or now,
                baseline_utilization=decision.state.baseline_utilization,
                resource_version=current.resource_version,
            )
            return None
        except HoldConflict:
            fresh = kube.read_deployment(namespace, deployment.name)
            if fresh is not None and fresh.managed_by and fresh.managed_by != name:
                return fresh.managed_by
            if fresh is None or fresh.replicas != current.replicas:
                break
            current = fresh
    raise kopf.TemporaryError(
        f"deployment/{deployment.name} changed while being moved; deciding again", delay=1
    )


def _restore_recorded(
    kube: KubeAdapter, namespace: str, name: str, deployment: DeploymentState, replicas: int
) -> None:
    """Restore, never above the count the hold annotation records (validated when read)."""
    recorded = deployment.original_replicas if deployment.managed_by == name else None
    if recorded is None:
        log.warning(
            "%s/%s: not restoring deployment/%s: it carries no hold of this placement",
            namespace,
            name,
            deployment.name,
        )
        return
    kube.restore(namespace, deployment.name, replicas=min(replicas, recorded))


def _when(moment: dt.datetime | None) -> str:
    return "an unknown time" if moment is None else moment.isoformat(timespec="seconds")


def _api_message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "")["message"])[:500]
    except (TypeError, ValueError, KeyError):
        return str(error.reason)


def _parse_status(raw_status: dict[str, Any], logger: Logger) -> WorkloadPlacementStatus | None:
    if not raw_status:
        return None
    try:
        return WorkloadPlacementStatus.model_validate(
            {k: v for k, v in raw_status.items() if k != "kopf"}
        )
    except ValidationError as error:
        logger.warning("status could not be read, starting from scratch: %s", error)
        return None


def _report_invalid_spec(
    body: kopf.Body,
    patch: kopf.Patch,
    raw_status: dict[str, Any],
    error: ValidationError | ScopeError,
) -> None:
    # The CRD's schema rejects nearly everything at `kubectl apply`; what slips through (e.g.
    # a CRD older than the operator, a query for another namespace) blocks the placement with
    # the field named, never a crash.
    if isinstance(error, ScopeError):
        problems = str(error)
    else:
        problems = "; ".join(
            f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:5]
        )
    _report_blocked(
        body, patch, raw_status, Reason.INVALID_SPEC, f"invalid spec, nothing done: {problems}"
    )


def _report_blocked(
    body: kopf.Body, patch: kopf.Patch, raw_status: dict[str, Any], reason: Reason, message: str
) -> None:
    """Phase Blocked, Ready=False with the reason, and one Warning Event per new message."""
    ready: dict[str, Any] = next(
        (c for c in raw_status.get("conditions") or [] if c.get("type") == "Ready"), {}
    )
    if raw_status.get("phase") == Phase.BLOCKED and ready.get("message") == message:
        return  # already said
    kopf.event(body, type=str(EventType.WARNING), reason=str(reason), message=message)
    patch.status["phase"] = str(Phase.BLOCKED)
    patch.status["observedGeneration"] = body.metadata.get("generation")
    patch.status["conditions"] = [
        {
            "type": "Ready",
            "status": "False",
            "reason": str(reason),
            "message": message[:2048],
            "lastTransitionTime": utc_now().isoformat().replace("+00:00", "Z"),
        }
    ]


# -- deletion and retargeting --------------------------------------------------------------


def restore_for_deletion(body: kopf.Body, kube: KubeAdapter, logger: Logger) -> None:
    """Give back every Deployment this placement holds before the finalizer lets it go, with
    the count its hold annotation records; after a manual override, only drop the hold.

    Status is not read for a count: a hold whose annotations are gone is not restored."""
    name, namespace = str(body.metadata.name), str(body.metadata.namespace)
    raw_status = dict(body.get("status") or {})
    overridden = _overridden(raw_status)
    target = (body.spec.get("target") or {}).get("deployment")
    warm = (body.spec.get("target") or {}).get("warmReplicas")
    spec_unchanged = raw_status.get("observedGeneration") == body.metadata.get("generation")
    claimed = kube.claimed_by(namespace, name)
    for holding in claimed:
        # Scaled outside the operator, whether or not an evaluation has noticed it yet.
        moved = (
            spec_unchanged
            and holding.name == target
            and isinstance(warm, int)
            and holding.replicas != warm
        )
        try:
            if holding.original_replicas is None or overridden or moved:
                _drop_hold(body, kube, holding, overridden or moved, logger)
            else:
                _give_back(body, kube, holding, holding.original_replicas, "placement deleted")
        except ApiException as error:
            if error.status not in PERMANENT_REFUSALS:
                raise  # transient (5xx, 429, timeout): kopf retries the delete handler
            _report_refused_restore(body, holding, error, logger)
    if not claimed and raw_status.get("originalReplicas") is not None:
        logger.info(
            "status.originalReplicas is %s but no Deployment carries this placement's hold "
            "annotations: nothing restored",
            raw_status["originalReplicas"],
        )


# Refusals that no retry will change (a policy, a webhook, lost rights, the Deployment gone):
# retrying would keep the finalizer, and the placement and its namespace, forever.
PERMANENT_REFUSALS = frozenset({400, 403, 404, 422})


def _report_refused_restore(
    body: kopf.Body, deployment: DeploymentState, error: ApiException, logger: Logger
) -> None:
    """The placement goes anyway; the Event says what to do by hand."""
    count = deployment.original_replicas
    todo = (
        f"scale it back by hand to {count} replicas and remove its placement annotations"
        if count is not None
        else "remove its placement annotations by hand"
    )
    message = (
        f"placement deleted, but deployment/{deployment.name} could not be given back "
        f"({error.status}: {_api_message(error)}): {todo}"
    )
    logger.warning(message)
    kopf.event(body, type=str(EventType.WARNING), reason=str(Reason.RESTORED), message=message)


def _drop_hold(
    body: kopf.Body,
    kube: KubeAdapter,
    deployment: DeploymentState,
    overridden: bool,
    logger: Logger,
) -> None:
    namespace = str(body.metadata.namespace)
    kube.forget(namespace, deployment.name)
    if overridden:
        why = (
            f"placement deleted after a manual override: deployment/{deployment.name} keeps "
            f"the {deployment.replicas} replicas set outside the operator (not restored to "
            f"{deployment.original_replicas}); its hold annotations are removed"
        )
    else:
        why = (
            f"placement deleted: deployment/{deployment.name} keeps its {deployment.replicas} "
            "replicas; its hold annotations had no valid count to restore and are removed"
        )
    logger.info(why)
    kopf.event(body, type=str(EventType.NORMAL), reason=str(Reason.MANUAL_OVERRIDE), message=why)


def _give_back(
    body: kopf.Body, kube: KubeAdapter, deployment: DeploymentState, replicas: int, why: str
) -> None:
    namespace = body.metadata.namespace
    assert namespace is not None
    kube.restore(namespace, deployment.name, replicas=replicas)
    kopf.event(
        body,
        type=str(EventType.NORMAL),
        reason=str(Reason.RESTORED),
        message=f"{why}; deployment/{deployment.name} {deployment.replicas} -> {replicas} "
        "replicas restored",
    )
