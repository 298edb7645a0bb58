"""Replay a recorded series through the operator's own reconcile(), and against the oracle.
Pure.

The simulated clock steps through the series; every `evaluationInterval` the placement is
decided exactly as the operator would (same `reconcile()` and `decide()`, with the
utilization averaged over `metrics.lookback` the way the operator's query is), and the plan
is carried out by the operator's own executor on a simulated Deployment and simulated Jobs.
Three costs come out, in the spec's currency:

- always realtime: the series' replicas * realtimeReplicaHourly, all the time;
- the operator: the Deployment's replicas as the decisions set them, plus every Job's
  pod-hours * batchPodHourly (failed pods included: retries cost what they cost), staging
  per Job, and operationsPerDay for every daily cycle in which the batch path was used;
- the oracle: the cheapest placement knowing the whole series in advance, under the same
  constraints (below), computed with the same accounting.

Work. While the Deployment is held, the work that arrives (replicas * utilization per hour,
as the formula counts it: warm replicas are charged nothing for it) queues for the batch
Job. A Job drains its queue at `pods * batchEfficiency * (1 - retryRate)` replica-hours per
hour, where pods are the placement's parallel pods and efficiency and retry rate are the true
ones (`ReplayOptions`; by default the declared ones), and keeps draining what arrives while
it runs; it succeeds when its queue is empty. Its pod-hours are pods * running time, the
failed share `retryRate` of them. A `failed` job_outcome in the series fails the running Job
there: its pod-hours so far are wasted and its work waits again. A finished Job reports the
work it did (as a Job that counts its tokens would, overwriting the operator's estimate in the
annotation placement.runplacement.io/work-replica-hours), so learning measures the true
efficiency. Held work no Job took when realtime is restored (e.g. before a window it would
miss) is served by the restored fleet with the capacity its load leaves, at no extra cost, as a
real fleet drains the queue it finds; not after a planned restore (a hold that ended before
its window, status.batch.waitingHold): that work waits for the window's Job, created while
realtime, and a window that ends without it succeeding is missed. Work still queued when the
series ends is charged as batch work (and one staging), so a hold at the end is not free.
The first `metrics.lookback` of the series is history only: it fills the operator's average
(as Prometheus' history before the replayed range would); nothing is decided or priced in it.

Async (spec.async). While the operator's ScaledObject exists, the simulated KEDA sets the
Deployment to ceil(work arriving / targetUtilization) replicas, the work being the series'
replicas * utilization, bounded by the ScaledObject's [minReplicaCount, maxReplicaCount]
(warmReplicas and the original count); the work is served as it arrives, nothing queues for
a Job. The queue query reads the series' queue_depth (none: an empty queue) and KEDA counts
as installed. Every cycle in which async was used costs queuePerDay and operationsPerDay.
What the operator reads (every reading averaged over `metrics.lookback`, as its queries are):
- utilization: the series' utilization while realtime. While held the fleet is the warm
  replicas, and they serve none of the held work (it waits for the Job; the accounting above
  charges them nothing for it), so the reading is 0, as a real cluster's would be: the
  utilization no longer says what the load is.
- demand (`metrics.demand`, when the spec has it): the series' load in work units per second,
  replicas * utilization * `ReplayOptions.capacity_per_replica`, whatever the fleet.
- queue depth (`metrics.queueDepth`, when the spec has it): the work waiting, in the same
  units: the held work not done yet (queued for a Job, or in a running one) plus, while
  realtime, the series' own queue_depth.
- history: a LoadHistory of demand (of the utilization as read, without `metrics.demand`)
  over `metrics.history` before the evaluation, refreshed every
  `ReplayOptions.history_refresh`, as the operator's range query is.

The oracle. Daily cycles end with each batch window (a cycle is the time whose work the
window's Job does). Per cycle it chooses realtime, batch or async. Batch: it may hold the
Deployment for one contiguous interval, which must lie within `acceptableDelay` before the
window ends (so the work still meets its delay), whose work must fit the window on the
parallel pods, and which must pay for the cycle's staging and operations; it holds the
interval that saves most. Async (where spec.async is set and acceptableDelay is longer than
its scaleUpTime): the whole cycle on the simulated KEDA fleet, paying the cycle's queue and
operations. The cheaper of the two wins (a tie to the cent goes to async, as in the
operator), or realtime when neither saves. It acts only where the operator may: an owner,
not user visible, productRisk not High (mode is taken as Enforce: a replay asks what Enforce
would do). Its Jobs do not fail.
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from placement.core.api import Action, Mode, Phase, ProductRisk, WorkloadPlacementSpec
from placement.core.asyncmode import async_replicas
from placement.core.costs import parallel_pods
from placement.core.executor import execute, release
from placement.core.learning import Learned, Measured
from placement.core.observation import (
    DeploymentState,
    LoadHistory,
    Observation,
    Outcome,
    Reading,
    ScaledObjectHolder,
    ScaledObjectState,
)
from placement.core.perrequest import unit_of
from placement.core.policy import Decision, JobObservation, JobOutcome, State
from placement.core.reconcile import Decided, Event, LogLine, Placement, Settings, reconcile
from placement.core.reconcile import release as release_steps
from placement.core.window import WindowSpan, current_or_next_window
from placement.replay.series import Sample, step_hours

_EPSILON = 1e-9
_NAMESPACE = "replay"
# A replay asks what the decisions cost: the Job template is not the operator's to refuse
# here, and status lives in memory.
_SETTINGS = Settings(scope_metrics=False, job_pod_policy=None, write_status=False)


@dataclass(frozen=True)
class ReplayOptions:
    """What the series cannot say: how the batch path really behaves."""

    batch_efficiency: float | None = None  # true work per pod-hour; None: the declared one
    retry_rate: float | None = None  # true failed share of pod-hours; None: the declared one
    enforce: bool = True  # replay as mode Enforce (False: keep the spec's mode)
    delete_at_end: bool = False  # the placement is deleted after the last sample
    # Work units per second one replica serves at utilization 1: demand is the series'
    # replicas * utilization * this, queue depth the waiting work in the same units.
    capacity_per_replica: float = 1000.0
    history_refresh: timedelta = timedelta(hours=1)  # how often the history is read again
    read_history: bool = True  # False: the operator is given no history (as a new install)


@dataclass
class SimJob:
    name: str
    window: WindowSpan
    created: datetime
    pods: int
    queue: float  # replica-hours of work still to do
    work_done: float = 0.0  # replica-hours drained: what the Job reports when it finishes
    pod_hours: float = 0.0
    failed_pod_hours: float = 0.0
    outcome: JobOutcome = JobOutcome.RUNNING
    finished_at: datetime | None = None

    def observation(self) -> JobObservation:
        finished = self.outcome is not JobOutcome.RUNNING
        return JobObservation(
            name=self.name,
            outcome=self.outcome,
            finished_at=self.finished_at,
            pod_hours=self.pod_hours if finished else None,
            failed_pod_hours=self.failed_pod_hours,
            work_replica_hours=round(self.work_done, 4) if finished else None,
        )


@dataclass(frozen=True)
class Step:
    """One sample of the timeline."""

    at: datetime
    hours: float  # how long this sample stands for
    replicas: int  # the series: what always-realtime runs
    utilization: float
    observed_utilization: float | None  # averaged over the lookback, as the operator reads it
    deployment_replicas: int  # as the operator's decisions set it
    held: bool
    oracle_held: bool
    in_window: bool
    jobs_running: int
    cost_always: float  # cumulative
    cost_operator: float
    cost_oracle: float
    mode: Phase = Phase.REALTIME  # the operator's: Realtime, Batch (held) or Async
    oracle_mode: Phase = Phase.REALTIME


@dataclass(frozen=True)
class DecisionRecord:
    at: datetime
    action: str
    reason: str
    message: str


@dataclass(frozen=True)
class Costs:
    realtime: float = 0.0
    batch: float = 0.0
    staging: float = 0.0
    operations: float = 0.0
    queue: float = 0.0  # costs.queuePerDay for every cycle async was used

    @property
    def total(self) -> float:
        return self.realtime + self.batch + self.staging + self.operations + self.queue

    def rounded(self) -> dict[str, float]:
        return {
            "realtime": round(self.realtime, 2),
            "batch": round(self.batch, 2),
            "staging": round(self.staging, 2),
            "operations": round(self.operations, 2),
            "queue": round(self.queue, 2),
            "total": round(self.total, 2),
        }


@dataclass(frozen=True)
class OracleResult:
    held: tuple[bool, ...]  # per sample
    costs: Costs
    cycles_held: int
    modes: tuple[Phase, ...] = ()  # per sample: Realtime, Batch or Async
    cycles_async: int = 0


@dataclass(frozen=True)
class ReplayResult:
    name: str
    currency: str
    steps: tuple[Step, ...]
    decisions: tuple[DecisionRecord, ...]  # the noteworthy ones, as Events would show them
    jobs: tuple[SimJob, ...]
    always: Costs
    operator: Costs
    oracle: OracleResult
    mode_changes: int
    oracle_mode_changes: int
    missed_windows: int
    fallbacks: int
    pending_work: float  # replica-hours still queued at the end (charged as batch)
    learned: Learned | None
    true_batch_efficiency: float
    true_retry_rate: float
    # Per evaluation (and the deletion, if any): when, and the steps the executor carried out.
    trace: tuple[tuple[datetime, tuple[str, ...]], ...] = ()
    # Requests (or tokens) over the series, from its requests column; None: no such column.
    requests: float | None = None
    requests_unit: str = "Requests"

    def cost_per_request(self) -> dict[str, object] | None:
        """Each placement's cost per 1,000 requests (or 1M tokens) over the whole series."""
        if not self.requests:
            return None
        unit, per = unit_of(self.requests_unit)
        return {
            "unit": unit,
            "requests": round(self.requests, 2),
            "alwaysRealtime": round(self.always.total / self.requests * per, 6),
            "operator": round(self.operator.total / self.requests * per, 6),
            "oracle": round(self.oracle.costs.total / self.requests * per, 6),
        }

    # Of missed_windows, those in which the series failed a Job (job_outcome `failed`).
    missed_windows_failed_jobs: int = 0

    @property
    def missed_windows_load(self) -> int:
        """Missed windows no injected Job failure explains: the decision's own misses."""
        return self.missed_windows - self.missed_windows_failed_jobs

    @property
    def operator_saving(self) -> float:
        return self.always.total - self.operator.total

    @property
    def oracle_saving(self) -> float:
        return self.always.total - self.oracle.costs.total

    @property
    def captured_share(self) -> float:
        """The operator's saving over the oracle's. With nothing to capture: 1.0 when the
        operator lost nothing either, 0.0 when it lost money."""
        if self.oracle_saving > _EPSILON:
            return self.operator_saving / self.oracle_saving
        return 1.0 if self.operator_saving >= -0.005 else 0.0

    def summary(self) -> dict[str, object]:
        """The JSON summary."""
        first, last = self.steps[0].at, self.steps[-1].at
        jobs = self.jobs
        learned = self.learned
        return {
            "placement": self.name,
            "currency": self.currency,
            "series": {
                "start": _iso(first),
                "end": _iso(last),
                "samples": len(self.steps),
                "days": round((last - first).total_seconds() / 86400, 3),
            },
            "cost": {
                "alwaysRealtime": round(self.always.total, 2),
                "operator": round(self.operator.total, 2),
                "oracle": round(self.oracle.costs.total, 2),
            },
            "saving": {
                "operator": round(self.operator_saving, 2),
                "oracle": round(self.oracle_saving, 2),
            },
            "captured_share": round(self.captured_share, 4),
            "costPerRequest": self.cost_per_request(),
            "missed_windows": self.missed_windows,
            "missed_windows_load": self.missed_windows_load,
            "missed_windows_failed_jobs": self.missed_windows_failed_jobs,
            "fallbacks": self.fallbacks,
            "mode_changes": self.mode_changes,
            "oracle_mode_changes": self.oracle_mode_changes,
            "operator": {
                "costs": self.operator.rounded(),
                "heldHours": round(_held_hours(self.steps, oracle=False), 2),
                "asyncHours": round(_async_hours(self.steps, oracle=False), 2),
                "jobs": len(jobs),
                "jobsSucceeded": sum(j.outcome is JobOutcome.SUCCEEDED for j in jobs),
                "jobsFailed": sum(j.outcome is JobOutcome.FAILED for j in jobs),
                "pendingWorkReplicaHours": round(self.pending_work, 3),
            },
            "oracle": {
                "costs": self.oracle.costs.rounded(),
                "heldHours": round(_held_hours(self.steps, oracle=True), 2),
                "asyncHours": round(_async_hours(self.steps, oracle=True), 2),
                "cyclesHeld": self.oracle.cycles_held,
                "cyclesAsync": self.oracle.cycles_async,
            },
            "batch": {
                "trueBatchEfficiency": self.true_batch_efficiency,
                "trueRetryRate": self.true_retry_rate,
                "learning": None
                if learned is None
                else {
                    "batchEfficiency": _measured_json(learned.batch_efficiency),
                    "retryRate": _measured_json(learned.retry_rate),
                },
            },
        }


def replay(
    spec: WorkloadPlacementSpec,
    samples: Sequence[Sample],
    *,
    name: str,
    options: ReplayOptions | None = None,
) -> ReplayResult:
    """Run the series through reconcile() on a simulated clock, and price it three ways."""
    options = options or ReplayOptions()
    if options.enforce and spec.mode is not Mode.ENFORCE:
        spec = spec.model_copy(update={"mode": Mode.ENFORCE})
    # The first lookback is history only: it fills the operator's average, as the Prometheus
    # history before a replayed range would.
    warm_up = samples[0].at + spec.metrics.lookback.timedelta
    history = [sample for sample in samples if sample.at < warm_up]
    samples = samples[len(history) :]
    if len(samples) < 2:
        raise ValueError(
            f"the series needs at least two samples after its first metrics.lookback "
            f"({spec.metrics.lookback}), which only fills the operator's average"
        )
    efficiency = options.batch_efficiency or spec.costs.batch_efficiency
    retry = spec.costs.retry_rate if options.retry_rate is None else options.retry_rate
    if not 0 <= retry < 1 or efficiency <= 0:
        raise ValueError("true batch efficiency must be > 0 and retry rate in [0,1)")
    if options.capacity_per_replica <= 0 or options.history_refresh <= timedelta(0):
        raise ValueError("capacity per replica and history refresh must be positive")
    sim = _Simulation(spec, samples, name, efficiency, retry, options=options, history=history)
    sim.run()
    if options.delete_at_end:
        sim.delete(samples[-1].at)
    oracle = oracle_placement(spec, samples, batch_efficiency=efficiency, retry_rate=retry)
    steps = tuple(_with_oracle(sim.steps, oracle, spec, samples))
    missed = sim.missed_windows()
    return ReplayResult(
        name=name,
        currency=spec.costs.currency,
        steps=steps,
        decisions=tuple(sim.decisions),
        jobs=tuple(sim.jobs.values()),
        always=Costs(realtime=sim.cost_always),
        operator=sim.costs(),
        oracle=oracle,
        mode_changes=_changes(s.mode for s in steps),
        oracle_mode_changes=_changes(s.oracle_mode for s in steps),
        missed_windows=len(missed),
        fallbacks=sim.fallbacks,
        pending_work=sim.pending_work(),
        learned=sim.learned,
        true_batch_efficiency=efficiency,
        true_retry_rate=retry,
        trace=tuple(sim.trace),
        missed_windows_failed_jobs=sum(
            any(s.job_fails and window.contains(s.at) for s in samples) for window in missed
        ),
        requests=_requests(samples),
        requests_unit=spec.metrics.requests_unit,
    )


def _requests(samples: Sequence[Sample]) -> float | None:
    """Requests over the series: each sample's rate for the time it stands for."""
    if all(sample.requests is None for sample in samples):
        return None
    return sum(
        (sample.requests or 0.0) * hours * 3600
        for sample, hours in zip(samples, step_hours(samples), strict=True)
    )


class _Simulation:
    """The operator, a Deployment and its Jobs, stepping through the series."""

    def __init__(
        self,
        spec: WorkloadPlacementSpec,
        samples: Sequence[Sample],
        name: str,
        efficiency: float,
        retry: float,
        *,
        options: ReplayOptions,
        history: Sequence[Sample] = (),
    ) -> None:
        self.spec = spec
        self.options = options
        self.samples = samples
        self.hours = step_hours(samples)
        self.rate_per_pod = efficiency * (1 - retry)  # replica-hours of work per pod-hour
        self.retry = retry
        self.pods = parallel_pods(spec.costs, spec.batch.job_template)
        self.state = State(name=name)
        self.placement = Placement(name, _NAMESPACE, None, {}, {})
        self.world = _World(self, spec.target.deployment)
        self.trace: list[tuple[datetime, tuple[str, ...]]] = []  # executed steps, per evaluation
        self.backlog = 0.0  # held work with no Job yet
        self.jobs: dict[str, SimJob] = {}
        self.decisions: list[DecisionRecord] = []
        self.steps: list[Step] = []
        self.fallbacks = 0
        self.learned: Learned | None = None
        self.cost_always = self.realtime = self.batch = self.staging = 0.0
        self.cycles_held: set[str] = set()
        self.cycles_async: set[str] = set()
        self.windows_held: dict[str, WindowSpan] = {}
        lookback = spec.metrics.lookback.timedelta
        self._utilization = _Averaged(lookback)
        self._demand = _Averaged(lookback)
        self._queue = _Averaged(lookback)
        self._history_source = "demand" if spec.metrics.demand else "utilization"
        self._history_times: list[datetime] = []
        self._history_values: list[float] = []
        self._history: LoadHistory | None = None
        for sample in history:
            self._read(sample)

    def run(self) -> None:
        interval = self.spec.evaluation_interval.timedelta
        next_evaluation = self.samples[0].at
        for sample, hours in zip(self.samples, self.hours, strict=True):
            readings = self._read(sample)
            if sample.job_fails:
                self._fail_running_jobs(sample.at)
            if sample.at >= next_evaluation:
                self._evaluate(sample, readings)
                next_evaluation = sample.at + interval
            self._advance(sample, hours, readings.utilization)

    # -- the operator ------------------------------------------------------------------

    def _read(self, sample: Sample) -> _Readings:
        """The metrics as the operator reads them at this sample, each averaged over
        metrics.lookback (module docstring: what the operator reads)."""
        capacity = self.options.capacity_per_replica
        utilization = 0.0 if self.held else sample.utilization
        demand = sample.replicas * sample.utilization * capacity
        queue = self.pending_work() * capacity * 3600
        if not self.held:
            queue += sample.queue_depth or 0.0
        self._history_times.append(sample.at)
        self._history_values.append(demand if self._history_source == "demand" else utilization)
        return _Readings(
            utilization=min(self._utilization.add(sample.at, utilization), 1.0),
            demand=self._demand.add(sample.at, demand),
            queue_depth=self._queue.add(sample.at, queue),
        )

    def _load_history(self, now: datetime) -> LoadHistory:
        """The history range query as the operator runs it: metrics.history before now,
        read again once `history_refresh` has passed."""
        if self._history is not None and now - self._history.fetched_at < (
            self.options.history_refresh
        ):
            return self._history
        since = now - self.spec.metrics.history.timedelta
        first = bisect.bisect_left(self._history_times, since)
        last = bisect.bisect_left(self._history_times, now)
        self._history = LoadHistory(
            source=self._history_source,
            step=timedelta(hours=statistics.median(self.hours)),
            samples=tuple(
                zip(self._history_times[first:last], self._history_values[first:last], strict=True)
            ),
            fetched_at=now,
        )
        return self._history

    def _evaluate(self, sample: Sample, readings: _Readings) -> None:
        """One evaluation as the operator runs it: the same reconcile() and executor, on the
        simulated Deployment and Jobs."""
        plan = reconcile(
            self.placement,
            self.spec,
            self._observation(sample, readings),
            sample.at,
            _SETTINGS,
            state=self.state,
        )
        self.world.now = sample.at
        executed = execute(
            plan, self.world, _Quiet(), namespace=_NAMESPACE, placement=self.placement.name
        )
        self.trace.append((sample.at, executed.steps))
        decision = executed.report.decision
        if decision is None:
            return  # blocked: nothing decided, nothing remembered
        self.state = decision.state
        self.learned = decision.learned
        if decision.action is Action.FALLBACK:
            self.fallbacks += 1
        if decision.noteworthy:
            self.decisions.append(
                DecisionRecord(
                    at=sample.at,
                    action=str(decision.action),
                    reason=str(decision.reason),
                    message=decision.message,
                )
            )

    def _observation(self, sample: Sample, readings: _Readings) -> Observation:
        deployment = self.world.deployment(self._deployment_replicas(sample))
        queue = sample.queue_depth
        scaled = self.world.scaled_object
        metrics = self.spec.metrics

        def reading(name: str, query: str | None, value: float) -> Reading | None:
            if not query:
                return None  # not configured: the operator does not read it
            return Reading(name, query, Outcome.OK, value, sampled_at=sample.at)

        return Observation(
            # The async path: the queue reads the series' queue depth (none: empty), KEDA is
            # there, and our ScaledObject as last applied.
            async_queue=Reading("async.queue", "", Outcome.OK, queue or 0.0, sampled_at=sample.at),
            keda_installed=True,
            requests=None
            if sample.requests is None
            else Reading("requests", "", Outcome.OK, sample.requests, sampled_at=sample.at),
            scaled_object=None
            if scaled is None
            else ScaledObjectState(
                name=str(scaled["metadata"]["name"]),
                deployment=str(scaled["spec"]["scaleTargetRef"]["name"]),
                min_replicas=int(scaled["spec"]["minReplicaCount"]),
                max_replicas=int(scaled["spec"]["maxReplicaCount"]),
            ),
            deployment=deployment,
            claimed=(deployment,) if deployment.managed_by else (),
            jobs=tuple(job.observation() for job in self.jobs.values()),
            utilization=reading("utilization", metrics.utilization, readings.utilization),
            queue_depth=reading("queueDepth", metrics.queue_depth, readings.queue_depth),
            demand=reading("demand", metrics.demand, readings.demand),
            history=self._load_history(sample.at) if self.options.read_history else None,
        )

    def delete(self, now: datetime) -> None:
        """The placement is deleted: the operator's release steps, on the simulation."""
        deployment = self.world.deployment(self._deployment_replicas(self.samples[-1]))
        claimed = (deployment,) if deployment.managed_by else ()
        placement = self.placement
        if self.world.scaled_object is not None:  # as status.async records it
            name = str(self.world.scaled_object["metadata"]["name"])
            placement = replace(placement, status={"async": {"scaledObject": name}})
        steps = release_steps(placement, claimed)
        self.trace.append((now, release(steps, self.world, _Quiet(), namespace=_NAMESPACE)))

    @property
    def held(self) -> bool:
        return self.world.hold is not None

    @property
    def in_async(self) -> bool:
        return self.world.scaled_object is not None

    def _deployment_replicas(self, sample: Sample) -> int:
        if self.in_async:
            return self._keda_replicas(sample)
        return self.spec.target.warm_replicas if self.held else sample.replicas

    def _keda_replicas(self, sample: Sample) -> int:
        """KEDA on the queue: the work arriving at targetUtilization, whole replicas, bounded
        by the ScaledObject's [minReplicaCount, maxReplicaCount]."""
        assert self.world.scaled_object is not None
        bounds = self.world.scaled_object["spec"]
        target = self.spec.async_.target_utilization if self.spec.async_ else 1.0
        return async_replicas(
            sample.replicas * sample.utilization,
            target=target,
            warm=int(bounds["minReplicaCount"]),
            maximum=int(bounds["maxReplicaCount"]),
        )

    def create_job(self, name: str, now: datetime) -> None:
        window = current_or_next_window(self.spec.batch.window, now)
        self.jobs[name] = SimJob(
            name=name,
            window=window,
            created=now,
            pods=self.pods,
            queue=self.backlog,
        )
        self.backlog = 0.0
        self.staging += self.spec.costs.data_staging_per_run

    # -- the world -----------------------------------------------------------------------

    def _fail_running_jobs(self, now: datetime) -> None:
        for job in self._running():
            job.outcome, job.finished_at = JobOutcome.FAILED, now
            job.failed_pod_hours = job.pod_hours  # all of its time went to nothing
            self.backlog += job.queue + job.work_done  # its work waits again
            job.queue = job.work_done = 0.0

    def _running(self) -> list[SimJob]:
        return [job for job in self.jobs.values() if job.outcome is JobOutcome.RUNNING]

    def _advance(self, sample: Sample, hours: float, observed_utilization: float) -> None:
        """Costs and work over the time this sample stands for."""
        replicas = self._deployment_replicas(sample)
        price = self.spec.costs.realtime_replica_hourly
        self.cost_always += sample.replicas * price * hours
        self.realtime += replicas * price * hours
        window = current_or_next_window(self.spec.batch.window, sample.at)
        in_window = window.contains(sample.at)
        if self.in_async:
            self.cycles_async.add(window.label)  # the async fleet serves the work as it comes
        elif self.held:
            self.cycles_held.add(window.label)
            if in_window:
                self.windows_held[window.label] = window
            arriving = sample.replicas * sample.utilization * hours
            running = [job for job in self._running() if job.window.label == window.label]
            if running:
                running[0].queue += arriving
            else:
                self.backlog += arriving
        elif self.state.waiting_hold is not None:
            # A planned restore (a hold that ended before its window): the held work waits
            # for the window's Job, which the operator creates while realtime. The realtime
            # fleet does not drain it for free, and the window counts as held for (a window
            # that ends without that Job succeeding missed the work).
            waiting = current_or_next_window(self.spec.batch.window, self.state.waiting_hold[1])
            if waiting.contains(sample.at):
                self.windows_held[waiting.label] = waiting
        elif self.backlog > _EPSILON:
            # Restored with held work still waiting and no Job for it: the realtime fleet
            # serves it with the capacity its own load leaves (already paid for), as a real
            # fleet drains the queue it finds.
            spare = sample.replicas * (1 - sample.utilization) * hours
            self.backlog = max(self.backlog - spare, 0.0)
        for job in self._running():
            self._work(job, sample.at, hours)
        self.steps.append(
            Step(
                at=sample.at,
                hours=hours,
                replicas=sample.replicas,
                utilization=sample.utilization,
                observed_utilization=observed_utilization,
                deployment_replicas=replicas,
                held=self.held and not self.in_async,
                oracle_held=False,
                in_window=in_window,
                jobs_running=len(self._running()),
                cost_always=self.cost_always,
                cost_operator=self.costs().total,
                cost_oracle=0.0,
                mode=Phase.ASYNC
                if self.in_async
                else (Phase.BATCH if self.held else Phase.REALTIME),
            )
        )

    def _work(self, job: SimJob, now: datetime, hours: float) -> None:
        capacity = job.pods * self.rate_per_pod * hours
        used = hours if job.queue > capacity else job.queue / (job.pods * self.rate_per_pod)
        job.work_done += min(job.queue, capacity)
        job.queue = max(job.queue - capacity, 0.0)
        pod_hours = job.pods * used
        job.pod_hours += pod_hours
        job.failed_pod_hours += pod_hours * self.retry
        self.batch += pod_hours * self.spec.costs.batch_pod_hourly
        if job.queue <= _EPSILON:
            job.queue = 0.0
            job.outcome, job.finished_at = JobOutcome.SUCCEEDED, now + timedelta(hours=used)

    # -- results -----------------------------------------------------------------------

    def pending_work(self) -> float:
        return self.backlog + sum(job.queue for job in self._running())

    def costs(self) -> Costs:
        cycles = len(self.cycles_held | self.cycles_async)
        operations = cycles * self.spec.costs.operations_per_day
        pending = self.pending_work()
        pending_batch = pending / self.rate_per_pod * self.spec.costs.batch_pod_hourly
        pending_staging = self.spec.costs.data_staging_per_run if self.backlog > _EPSILON else 0
        return Costs(
            realtime=self.realtime,
            batch=self.batch + pending_batch,
            staging=self.staging + pending_staging,
            operations=operations,
            queue=len(self.cycles_async) * self.spec.costs.queue_per_day,
        )

    def missed_windows(self) -> list[WindowSpan]:
        """Windows the operator held through that ended, within the series, with no Job of
        theirs succeeded before their end."""
        end = self.samples[-1].at
        missed = []
        for label, window in self.windows_held.items():
            if window.end > end:
                continue
            succeeded = any(
                job.window.label == label
                and job.outcome is JobOutcome.SUCCEEDED
                and job.finished_at is not None
                and job.finished_at <= window.end
                for job in self.jobs.values()
            )
            if not succeeded:
                missed.append(window)
        return missed


@dataclass(frozen=True)
class _Readings:
    """The metrics at one sample as the operator reads them (averaged over the lookback)."""

    utilization: float
    demand: float
    queue_depth: float


class _Averaged:
    """One metric averaged over metrics.lookback, as the operator's avg_over_time query."""

    def __init__(self, lookback: timedelta) -> None:
        self.lookback = lookback
        self.points: deque[tuple[datetime, float]] = deque()
        self.total = 0.0

    def add(self, at: datetime, value: float) -> float:
        self.points.append((at, value))
        self.total += value
        while self.points[0][0] <= at - self.lookback:
            self.total -= self.points.popleft()[1]
        return max(self.total / len(self.points), 0.0)  # no float residue below zero


@dataclass
class _Hold:
    original: int
    since: datetime
    baseline_utilization: float | None


class _World:
    """The simulated Deployment and Jobs, as the executor's Cluster: the plan's steps land
    here exactly as they land on the API server."""

    def __init__(self, simulation: _Simulation, deployment: str) -> None:
        self.simulation = simulation
        self.name = deployment
        self.hold: _Hold | None = None
        self.placement = ""
        self.now = datetime.min
        self.version = 0
        self.scaled_object: dict[str, Any] | None = None  # the async path's ScaledObject

    def deployment(self, replicas: int) -> DeploymentState:
        hold = self.hold
        return DeploymentState(
            name=self.name,
            replicas=replicas,
            original_replicas=None if hold is None else hold.original,
            managed_by=None if hold is None else self.simulation.state.name,
            held_since=None if hold is None else hold.since,
            baseline_utilization=None if hold is None else hold.baseline_utilization,
            resource_version=str(self.version),
        )

    def read_deployment(self, namespace: str, name: str) -> DeploymentState | None:
        return None  # a hold is never contested in a replay

    def claimed_by(self, namespace: str, placement: str) -> list[DeploymentState]:
        return []

    def placement_exists(self, namespace: str, name: str) -> bool:
        return True

    def conflicting_autoscalers(self, namespace: str, deployment: str) -> list[str]:
        return []

    def keda_installed(self) -> bool:
        return True

    def placement_scaled_object(self, namespace: str, placement: str) -> None:
        return None  # a replay builds its observations itself

    def placement_jobs(self, namespace: str, placement: str) -> list[JobObservation]:
        return [job.observation() for job in self.simulation.jobs.values()]

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
        self.hold = _Hold(original, since, baseline_utilization)
        self.version += 1

    def restore(self, namespace: str, name: str, *, replicas: int) -> None:
        self.hold = None
        self.version += 1

    def forget(self, namespace: str, name: str) -> None:
        self.hold = None
        self.version += 1

    def create_job(
        self, namespace: str, manifest: dict[str, Any], *, dry_run: bool = False
    ) -> bool:
        name = str(manifest["metadata"]["name"])
        if dry_run:
            return True
        if name in self.simulation.jobs:
            return False
        self.simulation.create_job(name, self.now)
        return True

    def delete_job(self, namespace: str, name: str) -> bool:
        return False  # finished Jobs stay: the replay prices every one

    def scaled_object_placement(self, namespace: str, name: str) -> str | None:
        return None  # a replay's cluster has no one else's

    def scaled_object_holder(self, namespace: str, name: str) -> ScaledObjectHolder | None:
        return None

    def cached_scaled_object_placement(self, namespace: str, name: str) -> str | None:
        return None

    def cached_keda_hpa_taken(self, namespace: str, scaled_object: str) -> str | None:
        return None

    def keda_hpa_taken(self, namespace: str, scaled_object: str) -> str | None:
        return None

    def create_scaled_object(self, namespace: str, manifest: dict[str, Any]) -> bool:
        self.scaled_object = manifest
        return True

    def apply_scaled_object(
        self, namespace: str, manifest: dict[str, Any], *, resource_version: str | None = None
    ) -> None:
        self.scaled_object = manifest

    def delete_scaled_object(self, namespace: str, name: str) -> bool:
        existed, self.scaled_object = self.scaled_object is not None, None
        return existed

    def patch_placement_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        pass


class _Quiet:
    """A replay posts no Events and logs nothing: its decisions are its record."""

    def post(self, event: Event) -> None:
        pass

    def log(self, line: LogLine) -> None:
        pass

    def own(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        return dict(manifest)

    def decided(self, decided: Decided) -> None:
        pass

    def log_decision(self, decision: Decision, deployment: DeploymentState | None) -> None:
        pass


# -- the oracle ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldShape:
    """What the oracle's holds may be: by default anything the module docstring allows. The
    operator's own constraints, one at a time, measure what each of them costs against the
    bound (bench/oracle_bounds.py)."""

    ends_with_window: bool = False  # the hold ends at its window's end, as a planned hold does
    # It starts a whole number of steps before the window's end: planning's whole hours
    # (WHOLE_HOURS), or a finer grid to measure what the hour's grain costs; None, anywhere.
    step: timedelta | None = None
    # It starts as early as acceptableDelay allows, as bursty's planned holds do (at the
    # previous window's end): what knowing where the bursts fall is worth at the start.
    starts_earliest: bool = False
    margin: float = 1.0  # its work fits this share of the window (planning's HOLD_MARGIN...)


ANY_HOLD = HoldShape()
WHOLE_HOURS = timedelta(hours=1)


def oracle_placement(
    spec: WorkloadPlacementSpec,
    samples: Sequence[Sample],
    *,
    batch_efficiency: float | None = None,
    retry_rate: float | None = None,
    shape: HoldShape = ANY_HOLD,
) -> OracleResult:
    """The cheapest mode per daily cycle, knowing the whole series (module docstring); with a
    `shape`, the cheapest whose holds have that shape."""
    costs = spec.costs
    efficiency = batch_efficiency or costs.batch_efficiency
    retry = costs.retry_rate if retry_rate is None else retry_rate
    hours = step_hours(samples)
    always = [
        s.replicas * costs.realtime_replica_hourly * h for s, h in zip(samples, hours, strict=True)
    ]
    held = [False] * len(samples)
    modes = [Phase.REALTIME] * len(samples)
    if not _may_act(spec):
        return OracleResult(tuple(held), Costs(realtime=sum(always)), 0, tuple(modes))
    fleet = _async_fleet(spec, samples)  # None: async does not fit
    warm = spec.target.warm_replicas
    rate = parallel_pods(costs, spec.batch.job_template) * efficiency * (1 - retry)
    work = [s.replicas * s.utilization * h for s, h in zip(samples, hours, strict=True)]
    # What holding one sample saves: capacity avoided minus the batch pod-hours of its work.
    gain = [
        always[i]
        - warm * costs.realtime_replica_hourly * hours[i]
        - work[i] / (efficiency * (1 - retry)) * costs.batch_pod_hourly
        for i in range(len(samples))
    ]
    cycles_held, cycles_async = _choose_per_cycle(
        spec,
        samples,
        held,
        modes,
        gain=gain,
        work=work,
        always=always,
        fleet=fleet,
        rate=rate,
        shape=shape,
    )
    serving = [
        warm if mode is Phase.BATCH else (fleet[i] if fleet is not None else 0)
        for i, mode in enumerate(modes)
    ]
    realtime = sum(
        always[i] if mode is Phase.REALTIME else serving[i] * costs.realtime_replica_hourly * h
        for i, (mode, h) in enumerate(zip(modes, hours, strict=True))
    )
    batch_work = sum(work[i] for i in range(len(samples)) if held[i])
    return OracleResult(
        held=tuple(held),
        costs=Costs(
            realtime=realtime,
            batch=batch_work / (efficiency * (1 - retry)) * costs.batch_pod_hourly,
            staging=cycles_held * costs.data_staging_per_run,
            operations=(cycles_held + cycles_async) * costs.operations_per_day,
            queue=cycles_async * costs.queue_per_day,
        ),
        cycles_held=cycles_held,
        modes=tuple(modes),
        cycles_async=cycles_async,
    )


def _choose_per_cycle(
    spec: WorkloadPlacementSpec,
    samples: Sequence[Sample],
    held: list[bool],
    modes: list[Phase],
    *,
    gain: list[float],
    work: list[float],
    always: list[float],
    fleet: list[int] | None,
    rate: float,
    shape: HoldShape,
) -> tuple[int, int]:
    """Per cycle, the batch interval that saves most or the whole cycle in async, whichever
    saves more (marked in `held` and `modes`); returns the cycles held and in async."""
    costs = spec.costs
    hours = step_hours(samples)
    delay = spec.latency.acceptable_delay.timedelta
    fixed = costs.data_staging_per_run + costs.operations_per_day
    cycles_held = cycles_async = 0
    for window, indices in _cycles(spec, samples):
        best = _best_interval(
            [samples[i].at for i in indices],
            [gain[i] for i in indices],
            [work[i] for i in indices],
            window,
            earliest=window.end - delay,
            rate=rate,
            shape=shape,
        )
        batch_saving = -math.inf if best is None else best[2] - fixed
        mode = _cheaper(batch_saving, _async_saving(spec, fleet, always, hours, indices))
        if mode is Phase.ASYNC:
            for i in indices:
                modes[i] = Phase.ASYNC
            cycles_async += 1
        elif mode is Phase.BATCH and best is not None:
            first, last, _ = best
            for position in range(first, last + 1):
                held[indices[position]] = True
                modes[indices[position]] = Phase.BATCH
            cycles_held += 1
    return cycles_held, cycles_async


def _async_saving(
    spec: WorkloadPlacementSpec,
    fleet: list[int] | None,
    always: list[float],
    hours: list[float],
    indices: list[int],
) -> float:
    """What a whole cycle in async saves against realtime, its queue and operations paid;
    -inf where async does not fit."""
    if fleet is None:
        return -math.inf
    costs = spec.costs
    served = sum(fleet[i] * costs.realtime_replica_hourly * hours[i] for i in indices)
    fixed = costs.queue_per_day + costs.operations_per_day
    return sum(always[i] for i in indices) - served - fixed


def _cheaper(batch_saving: float, async_saving: float) -> Phase:
    """The mode that saves most, realtime when neither saves; a tie (to the cent) is async's."""
    if async_saving > _EPSILON and async_saving + 0.005 >= batch_saving:
        return Phase.ASYNC
    if batch_saving > _EPSILON:
        return Phase.BATCH
    return Phase.REALTIME


def _async_fleet(spec: WorkloadPlacementSpec, samples: Sequence[Sample]) -> list[int] | None:
    """The replicas KEDA would run per sample in async, or None where async may not be
    used: no spec.async, or acceptableDelay not longer than its scaleUpTime. (The queue and
    KEDA are taken as there: the replay asks what the modes cost.)"""
    spec_async = spec.async_
    if spec_async is None:
        return None
    if spec.latency.acceptable_delay.timedelta <= spec_async.scale_up_time.timedelta:
        return None
    warm = spec.target.warm_replicas
    return [
        async_replicas(
            s.replicas * s.utilization,
            target=spec_async.target_utilization,
            warm=warm,
            maximum=s.replicas,
        )
        for s in samples
    ]


def _may_act(spec: WorkloadPlacementSpec) -> bool:
    return (
        bool(spec.owner.strip())
        and not spec.latency.user_visible
        and spec.product_risk is not ProductRisk.HIGH
    )


def _cycles(
    spec: WorkloadPlacementSpec, samples: Sequence[Sample]
) -> list[tuple[WindowSpan, list[int]]]:
    """Samples grouped by the window whose Job does their work (the window they are in, else
    the next one), in order."""
    cycles: dict[str, tuple[WindowSpan, list[int]]] = {}
    for index, sample in enumerate(samples):
        window = current_or_next_window(spec.batch.window, sample.at)
        cycles.setdefault(window.label, (window, []))[1].append(index)
    return list(cycles.values())


def _best_interval(
    times: list[datetime],
    gain: list[float],
    work: list[float],
    window: WindowSpan,
    *,
    earliest: datetime,
    rate: float,
    shape: HoldShape = ANY_HOLD,
) -> tuple[int, int, float] | None:
    """The contiguous run of samples, all at or after `earliest`, whose work fits the window
    from its start (or from the hold's start, inside the window), with the largest total
    gain: (first, last, gain), or None when no sample may be held. With a `shape`, only runs
    of that shape (the cycle's last sample stands for the window's end)."""
    allowed = [
        i
        for i, at in enumerate(times)
        if at >= earliest and (shape.step is None or _on_step(window.end - at, shape.step))
    ]
    if not allowed:
        return None
    if shape.starts_earliest:
        allowed = allowed[:1]
    best: tuple[int, int, float] | None = None
    for first in allowed:
        start = max(times[first], window.start)
        room = max((window.end - start).total_seconds() / 3600, 0.0) * rate * shape.margin
        total_gain = total_work = 0.0
        for last in range(first, len(times)):
            total_gain += gain[last]
            total_work += work[last]
            if total_work > room + _EPSILON:
                break
            if shape.ends_with_window and last < len(times) - 1:
                continue
            if best is None or total_gain > best[2]:
                best = (first, last, total_gain)
    return best


def _on_step(delta: timedelta, step: timedelta) -> bool:
    return delta % step == timedelta(0)


# -- helpers -----------------------------------------------------------------------------------


def _with_oracle(
    steps: list[Step], oracle: OracleResult, spec: WorkloadPlacementSpec, samples: Sequence[Sample]
) -> list[Step]:
    """The timeline with the oracle's hold and its cumulative cost."""
    costs = spec.costs
    hours = step_hours(samples)
    warm = spec.target.warm_replicas
    efficiency_cost = oracle.costs.batch  # spread over the held samples by their work
    held_work = sum(
        s.replicas * s.utilization * h
        for s, h, held in zip(samples, hours, oracle.held, strict=True)
        if held
    )
    fixed_per_cycle = costs.data_staging_per_run + costs.operations_per_day
    fleet = _async_fleet(spec, samples)
    modes = oracle.modes or tuple(Phase.BATCH if h else Phase.REALTIME for h in oracle.held)
    seen_cycles: set[str] = set()
    total = 0.0
    result = []
    for index, (step, sample, h, held) in enumerate(
        zip(steps, samples, hours, oracle.held, strict=True)
    ):
        mode = modes[index]
        if mode is Phase.ASYNC and fleet is not None:
            total += fleet[index] * costs.realtime_replica_hourly * h
            label = current_or_next_window(spec.batch.window, sample.at).label
            if label not in seen_cycles:
                seen_cycles.add(label)
                total += costs.queue_per_day + costs.operations_per_day
        elif held:
            total += warm * costs.realtime_replica_hourly * h
            if held_work > 0:
                total += efficiency_cost * sample.replicas * sample.utilization * h / held_work
            label = current_or_next_window(spec.batch.window, sample.at).label
            if label not in seen_cycles:
                seen_cycles.add(label)
                total += fixed_per_cycle
        else:
            total += sample.replicas * costs.realtime_replica_hourly * h
        result.append(replace(step, oracle_held=held, oracle_mode=mode, cost_oracle=total))
    return result


def _changes(flags: Iterable[object]) -> int:
    values = list(flags)
    return sum(a != b for a, b in itertools.pairwise(values))


def _held_hours(steps: Sequence[Step], *, oracle: bool) -> float:
    return sum(step.hours for step in steps if (step.oracle_held if oracle else step.held))


def _async_hours(steps: Sequence[Step], *, oracle: bool) -> float:
    return sum(
        step.hours for step in steps if (step.oracle_mode if oracle else step.mode) is Phase.ASYNC
    )


def _measured_json(item: Measured) -> dict[str, object]:
    return {
        "declared": item.declared,
        "measured": None if item.measured is None else round(item.measured, 4),
        "runs": item.runs,
        "inUse": item.in_use,
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


__all__ = [
    "ANY_HOLD",
    "WHOLE_HOURS",
    "Costs",
    "DecisionRecord",
    "HoldShape",
    "OracleResult",
    "ReplayOptions",
    "ReplayResult",
    "Step",
    "oracle_placement",
    "replay",
]
