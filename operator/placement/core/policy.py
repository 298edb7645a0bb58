"""The decision: (spec, observed, state, now) -> Decision. Pure: no I/O, no clock, no kube.

The same function runs in the operator, in `placement explain` and in replays of recorded
metrics, so every input (time included) is a parameter and the output says everything the
handler must do: scale to `desired_replicas` if `actuate`, create `job_name`, post an Event
(`reason`, `event_type`, `message`) if `noteworthy`, and persist `state`.

Order of evaluation (each step yields a stable reason):

1. Blocked, nothing can be decided: TargetMissing, ConflictingAutoscaler.
2. While the operator holds the Deployment scaled down ("holding"): the window was missed or
   the Job failed past retryWindow -> Fallback (RestoreRealtime, or Alert only).
3. After a fallback, batch is not retried before the next window starts (no flapping).
4. Not holding and metrics missing, stale or out of range -> MetricsUnavailable, nothing
   changes. While holding, live metrics are not needed: the fleet is scaled down and cannot
   be measured, so the savings use the baseline measured before the move, and bad metrics
   never trigger a fallback.
5. Gates, in order: OwnerMissing, StayRealtime (userVisible), DelayNotTolerated,
   SavingsNegative, WindowTooShort. Failing one stays realtime, or restores it when holding.
   WindowTooShort: a run (the work of the hours held each day) must fit the window; a move
   that would act inside an open window must also fit the time left in it.
6. Recommend only (mode Recommend or productRisk High): BatchRecommended, touches nothing
   (and restores realtime if it was holding, e.g. the mode was switched back).
7. Enforce: MovedToBatch (plus this window's Job if the window is open); while in batch,
   BatchJobCreated / BatchSucceeded / BatchJobFailed / waiting.

Hysteresis: moving to batch needs savings > costs.savingsMargin; once in batch it leaves for
cost reasons only when savings < 0, computed from the frozen baseline, so live utilization
noise cannot flap it. The same band applies to recommendations.

Async (spec.async; the formula, gates and choice are core/asyncmode.py): while in async
(`_in_async`, right after 1.) the placement stays, or leaves with LeftAsync when a gate fails,
async loses money, or the mode is Recommend / productRisk High. Not held, after 4.
(`_choose_async`): MovedToAsync or AsyncRecommended when async fits and saves at least as
much as batch; ScaleUpTooSlow, AsyncQueueUnavailable or AsyncNeedsKeda when async would pay
but cannot run and batch does not fit either; otherwise the batch steps decide as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from placement.core import asyncmode
from placement.core.api import (
    MAX_MESSAGE_LENGTH,
    Action,
    CostsSpec,
    FallbackAction,
    Mode,
    Phase,
    ProductRisk,
    WorkloadPlacementSpec,
)
from placement.core.asyncmode import AsyncBreakdown, AsyncSeen, async_costs
from placement.core.backlog import Backlog, BacklogInputs, project_backlog
from placement.core.costs import (
    CostBreakdown,
    batch_duration,
    daily_costs,
    held_hours_per_day,
    number_text,
    parallel_pods,
)
from placement.core.durations import format_duration
from placement.core.frozen import replace
from placement.core.learning import Learned, Run, learn, record
from placement.core.memo import remembered_plan
from placement.core.observation import LoadHistory
from placement.core.perrequest import CostPerRequest, cost_per_request
from placement.core.planning import (
    GO_ON_MARGIN,
    STEADY_SPREAD,
    HoldPlan,
    Planner,
    Planning,
    WorkForecast,
    positive,
    replicas_per_demand,
    usable_demand,
    work_forecast,
)
from placement.core.reasons import ConditionType, EventType, Reason
from placement.core.scaledobject import scaled_object_name
from placement.core.window import (
    WindowSpan,
    current_or_next_window,
    job_name,
    last_ended_window,
    next_window_after,
)

# Reasons that describe the batch path running normally; a waiting decision keeps them so a
# quiet evaluation does not look like a change.
# Held past the end of the hold taken, the next planned hold not started yet, the hold goes
# on when the backlog of holding through fits this share of the next window. The projection is
# the high quantile of the work: on the 25 holds held on so in the DST scenario, the Job then
# took at most 0.993 of the projected pod-hours (median 0.98); a share of 1 would leave no room
# before the backlog watch restores (BacklogWillMissWindow). Between HOLD_MARGIN (the move)
# and 1 (the restore), as the gap's hours are few and the day's work is the plan's.
HOLD_THROUGH_MARGIN = 0.9
# Held at the end of the hold taken, the hold through to the next window's end not fitting:
# the next window's hold may start now and end before that window (_hold_on_early) when it
# saves at least this share of the plan's savings: one restore and one move fewer.
HOLD_ON_SHARE = 0.95
# While the history is younger than the forecast needs (the forecast is the lookback's average),
# the backlog watch projects the queue measured and the arrivals of this span, not the newest
# hour's level over every hour to the window: on seven hours of history (DST's first day) that
# restored a hold whose work came to 6.6 of the window's 8 pod-hours (8.33 projected), a
# restore and a move more. It restores where that passes HOLD_THROUGH_MARGIN of the window,
# the work waiting left to the window's Job (_young_restore).
YOUNG_WATCH_SPAN = timedelta(hours=1)
# A hold that went on until its window's start goes on inside it, an IN_WINDOW_STEP at a time,
# while the work the window's Job has left (measured) and what arrives until the next end fit
# this share of what the Job can still do by the window's end (_go_on_in_window).
IN_WINDOW_MARGIN = 0.95
# Ends inside the window this far apart (the default evaluationInterval): each is decided on
# the Job's progress, and the fleet's whole capacity of arrivals until the next is counted
# (a quarter hour counted 1.5 replica-hours of a 6-replica fleet; bursty saved 59, not 123).
IN_WINDOW_STEP = timedelta(minutes=5)
# The queue depth's average over the lookback is of samples this far apart at most (the
# replay's; Prometheus' subquery takes its evaluation interval, 1m by default): a mean of
# samples spans the lookback less one step, so the queue it reads is that much later.
_AVERAGE_STEP = timedelta(minutes=5)
# The window's Job created later than this after the window's start (the operator was down):
# no hold goes on inside the window, whose Job's progress is counted from its start.
IN_WINDOW_START = timedelta(minutes=5)
# A lookback over this is half as many hours: the time the averaged queue depth lags by.
_HALF_HOURS = timedelta(hours=2)
_BATCH_REASONS = frozenset(
    {
        Reason.MOVED_TO_BATCH,
        Reason.BATCH_JOB_CREATED,
        Reason.BATCH_SUCCEEDED,
        Reason.BATCH_JOB_FAILED,
    }
)
# Gates on what batch costs and whether it fits: their restore before the window leaves the
# work held to the window's Job (_leave_held_work). The others (an owner gone, a workload made
# user visible, a delay no longer tolerated) take the placement off batch.
_COST_GATES = frozenset({Reason.SAVINGS_NEGATIVE, Reason.WINDOW_TOO_SHORT, Reason.HOLD_PLANNED})
# Counters in status are int64 in the API server: one beyond would make every status write fail.
_INT64_MAX = 2**63 - 1
_FALLBACK_REASONS = frozenset(
    {
        Reason.FALLBACK_RESTORED,
        Reason.BATCH_WINDOW_MISSED,
        Reason.BATCH_JOB_FAILED,
        Reason.KUEUE_NOT_ADMITTED,
        Reason.BACKLOG_WILL_MISS_WINDOW,
    }
)
# Decisions about the async path: their savings are the async ones.
_ASYNC_REASONS = frozenset(
    {
        Reason.MOVED_TO_ASYNC,
        Reason.ASYNC_RECOMMENDED,
        Reason.ASYNC_NEEDS_KEDA,
        Reason.ASYNC_QUEUE_UNAVAILABLE,
        Reason.SCALE_UP_TOO_SLOW,
        Reason.LEFT_ASYNC,
    }
)


class JobOutcome(StrEnum):
    # Suspended, e.g. by Kueue until its queue admits it: not running, not failed, and its
    # window still counts.
    WAITING = "Waiting"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class JobObservation:
    """A batch Job owned by this placement."""

    name: str
    outcome: JobOutcome
    finished_at: datetime | None = None  # completion or failure time; None while running
    pod_hours: float | None = None  # once finished: wall-clock time * pods at once
    failed_pod_hours: float = 0.0  # the part of pod_hours spent in pods that failed
    work_replica_hours: float | None = None  # the work the operator gave it (annotation)

    def run(self) -> Run | None:
        """The measurement learning keeps, once the Job has finished. A figure that is no
        finite, non-negative number is not a measurement: the run is not kept (pod-hours) or
        kept without a work figure, like a Job created before work was annotated."""
        if self.finished_at is None or not _finite_count(self.pod_hours):
            return None
        assert self.pod_hours is not None
        failed = self.failed_pod_hours if _finite_count(self.failed_pod_hours) else 0.0
        work = self.work_replica_hours
        return Run(
            job=self.name,
            finished_at=self.finished_at,
            succeeded=self.outcome is JobOutcome.SUCCEEDED,
            pod_hours=round(self.pod_hours, 4),
            failed_pod_hours=round(min(failed, self.pod_hours), 4),
            work_replica_hours=work if _finite_count(work) else None,
        )


def _finite_count(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value >= 0


@dataclass(frozen=True)
class Observed:
    """What the adapters saw this evaluation."""

    replicas: int | None  # Deployment .spec.replicas; None: the Deployment does not exist
    utilization: float | None = None  # useful utilization of the realtime fleet, 0..1
    queue_depth: float | None = None
    metrics_error: str | None = None  # the query failed; None when it worked
    metrics_age: timedelta | None = None  # age of the newest utilization sample
    conflicting_autoscaler: str | None = None  # e.g. "horizontalpodautoscaler/summarizer"
    jobs: tuple[JobObservation, ...] = ()  # Jobs this placement owns
    requests: float | None = None  # metrics.requests per second; None: not read
    async_seen: AsyncSeen = field(default_factory=AsyncSeen)  # queue and KEDA (async gates)
    idle_hours: float | None = None  # hours a day with no work, from the history
    demand: float | None = None  # work arriving per second (metrics.demand), when read
    # metrics.demand / metrics.queueDepth is set: the backlog can be watched while held.
    backlog_metrics: bool = False
    history: LoadHistory | None = None  # the placement's own load, for the forecast

    def job(self, name: str) -> JobObservation | None:
        return next((job for job in self.jobs if job.name == name), None)


@dataclass(frozen=True)
class State:
    """What the operator remembers between evaluations (persisted in status)."""

    name: str  # metadata.name of the placement: Job names derive from it
    phase: Phase | None = None
    original_replicas: int | None = None  # set while holding the Deployment scaled down
    baseline_utilization: float | None = None  # measured before the move to batch
    last_action: Action | None = None
    last_reason: Reason | None = None
    batch_since: datetime | None = None
    current_job: str | None = None
    last_succeeded: datetime | None = None
    last_failed: datetime | None = None
    missed_windows: int = 0
    last_missed_window: str | None = None
    fallback_until: datetime | None = None
    runs: tuple[Run, ...] = ()  # the latest finished Jobs, measured (learning)
    # Set while the placement's ScaledObject sets the replicas (the hold records the original).
    async_since: datetime | None = None
    # While holding: the planned hold [from, until) taken at the move (kept until it ends).
    planned_hold: tuple[datetime, datetime] | None = None
    # Realtime replicas one unit of demand keeps busy, measured before the move: converts
    # demand and queue depth into replica-hours while held.
    replicas_per_demand: float | None = None
    # After a planned restore (a hold that ended before its window): that hold [from, until),
    # whose work waits for its window's Job, run while realtime. Cleared when the window ends.
    waiting_hold: tuple[datetime, datetime] | None = None
    # When the operator last restored the Deployment (status: the history's last Restore):
    # for one lookback after it the lookback still averages the held fleet.
    restored_at: datetime | None = None

    @property
    def holding(self) -> bool:
        """The operator scaled the Deployment down and has not restored it yet."""
        return self.original_replicas is not None

    @property
    def in_async(self) -> bool:
        return self.holding and self.async_since is not None


@dataclass(frozen=True)
class Inputs:
    """The numbers a decision used; shown in status and in `placement explain`."""

    replicas: int | None = None
    current_replicas: int | None = None
    warm_replicas: int | None = None
    utilization: float | None = None
    queue_depth: float | None = None
    demand: float | None = None
    work_replica_hours: float | None = None
    batch_pod_hours: float | None = None
    parallel_pods: int | None = None
    window_hours: float | None = None
    wait_hours: float | None = None
    acceptable_delay_hours: float | None = None
    held_hours_per_day: float | None = None
    metrics_age_seconds: float | None = None
    batch_efficiency: float | None = None  # the value the formula used
    retry_rate: float | None = None


@dataclass(frozen=True)
class ConditionReport:
    type: ConditionType
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Decision:
    action: Action
    phase: Phase
    reason: Reason
    message: str
    event_type: EventType
    actuate: bool  # False: recommendation only, the handler changes nothing
    desired_replicas: int | None  # None: leave the Deployment's replicas alone
    job_name: str | None  # Job to create (idempotent: the name is per window)
    breakdown: CostBreakdown | None
    inputs: Inputs
    state: State  # to persist
    evaluated_at: datetime
    noteworthy: bool = False  # differs from the last decision: post an Event, add history
    conditions: tuple[ConditionReport, ...] = field(default=())
    # The work the Job to create is given, in realtime replica-hours (annotated on the Job,
    # so learning can later set it against the pod-hours the Job took).
    job_work_replica_hours: float | None = None
    learned: Learned | None = None  # measured beside declared batchEfficiency and retryRate
    async_breakdown: AsyncBreakdown | None = None  # with spec.async and a utilization
    cost_per_request: CostPerRequest | None = None  # with metrics.requests

    @property
    def about_async(self) -> bool:
        """The decision is about the async path: its savings are the ones that count."""
        return self.phase is Phase.ASYNC or self.reason in _ASYNC_REASONS

    plan: HoldPlan | None = None  # the planned hold of the current or next window
    backlog: Backlog | None = None  # while holding: the projected work against the window
    # With state.waiting_hold: the window whose Job does that hold's work.
    waiting_window: WindowSpan | None = None

    @property
    def savings_per_day(self) -> float | None:
        if self.about_async and self.async_breakdown is not None:
            return round(self.async_breakdown.savings, 2)
        return None if self.breakdown is None else round(self.breakdown.savings, 2)


# -------------------------------------------------------------------------------------------
# context: everything derived once from the inputs
# -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    spec: WorkloadPlacementSpec
    observed: Observed
    state: State  # with this evaluation's Job outcomes recorded
    previous: State  # as given
    now: datetime
    window: WindowSpan  # the window now is in, else the next one
    inside_window: bool
    wait: timedelta
    metrics_problem: str | None
    # A number the formula cannot use (a baseline outside [0,1] in status, savings that are
    # not a finite number); the savings are then unknown. None: every figure is usable.
    numbers_problem: str | None
    replicas: int | None  # for the formula: the original count while holding
    utilization: float | None
    breakdown: CostBreakdown | None
    pods: int
    held_hours: float
    learned: Learned
    async_breakdown: AsyncBreakdown | None = None
    # The hold chosen for the current or next window; None: no load known to plan with.
    planning: Planning | None = None
    forecast: WorkForecast | None = None
    backlog: Backlog | None = None  # while holding
    replicas_per_demand: float | None = None
    # Held on past the hold taken into the next one (_hold_through): that backlog, which fits
    # (or, held on into an early-ending hold instead (_hold_on_early), which does not).
    held_through: Backlog | None = None

    @property
    def plan(self) -> HoldPlan | None:
        return None if self.planning is None else self.planning.plan

    @property
    def deployment(self) -> str:
        return f"deployment/{self.spec.target.deployment}"

    @property
    def plan_text(self) -> str:
        """What a hold held on past its end goes on into."""
        plan = self.plan
        if plan is not None and plan.start < self.now:  # an early end held on (_hold_through)
            return f"window's end ({plan.describe()})"
        return "next window's hold"

    @property
    def warm(self) -> int:
        return self.spec.target.warm_replicas

    @property
    def savings_text(self) -> str:
        if self.breakdown is None and self.numbers_problem is not None:
            return f"savings unknown ({self.numbers_problem})"
        if self.breakdown is None:
            return "savings unknown (no utilization measured)"
        text = self.breakdown.format(self.spec.costs.currency)
        if self.learned.in_use:
            text += f" ({self.learned.describe()})"
        return text


def decide(
    spec: WorkloadPlacementSpec, observed: Observed, state: State, *, now: datetime
) -> Decision:
    """Decide what to do now. See the module docstring for the order of the steps."""
    if now.tzinfo is None:
        raise ValueError("decide() needs an aware `now`")
    ctx = _context(spec, observed, state, now)
    decision = (
        _blocked(ctx)
        or _in_async(ctx)
        or _held_work_waiting(ctx)
        or _fallback(ctx)
        or _backlog_will_miss(ctx)
        or _planned_restore(ctx)
        or _fallback_hold(ctx)
        or _metrics_unavailable(ctx)
        or _choose_async(ctx)
        or _gates(ctx)
        or _recommend_only(ctx)
        or _enforce(ctx)
    )
    return _finish(ctx, decision)


def _context(
    spec: WorkloadPlacementSpec, observed: Observed, state: State, now: datetime
) -> _Context:
    window = current_or_next_window(spec.batch.window, now)
    problem = _metrics_problem(spec, observed)
    recorded = _waiting_done(spec, _record_job_outcomes(spec, state, observed), now)
    held_hours = held_hours_per_day(spec.latency.acceptable_delay.timedelta)
    learned = learn(
        spec.costs, spec.learning, recorded.runs, missed_windows=recorded.missed_windows
    )
    numbers_problem = None
    baseline = recorded.baseline_utilization
    if baseline is not None and not 0 <= baseline <= 1:  # NaN fails too
        # Only a status edited by hand holds one: forget it, as if none had been measured.
        numbers_problem = (
            f"status.batch.baselineUtilization {number_text(baseline)} is outside [0,1]"
        )
        recorded = replace(recorded, baseline_utilization=None)
    if recorded.holding:
        replicas = recorded.original_replicas
        utilization = recorded.baseline_utilization
    else:
        replicas = observed.replicas
        utilization = observed.utilization if problem is None else None
    costs = learned.costs(spec.costs)
    pods = parallel_pods(spec.costs, spec.batch.job_template)
    settled = _settled(spec, recorded, now)
    ratio = _demand_ratio(
        observed, recorded, now, settled, replicas, utilization, spec.metrics.lookback.timedelta
    )
    forecast = _forecast(observed, recorded, now, window, replicas, utilization, problem, ratio)
    planning = None
    if forecast is not None and replicas is not None:
        queued = _left_over(spec, recorded, now, forecast)
        planner = Planner(
            costs,
            replicas,
            spec.target.warm_replicas,
            pods,
            window,
            forecast,
            queued=queued,
            goes_on=observed.backlog_metrics and ratio is not None,
        )
        planning = _planning(planner, recorded, now, held_hours, settled)
    breakdown = None
    if planning is not None and planning.plan is not None:
        breakdown = planning.plan.breakdown
    elif replicas is not None and utilization is not None:
        breakdown = daily_costs(
            costs,
            replicas=replicas,
            warm_replicas=spec.target.warm_replicas,
            utilization=utilization,
            held_hours=held_hours,
        )
    if breakdown is not None:
        # The boundary guard. Every input is bounded (spec by the models, learned values
        # like declared ones, utilization in [0,1]), so this does not happen unless a count
        # is beyond any real one (a forged status). Savings that are no number are unknown,
        # not zero and not huge: nothing moves on them, as with a missing metric (the
        # decision is MetricsUnavailable and names the number); while holding, the batch
        # path and its fallback go on as when no baseline was recorded.
        bad = breakdown.non_finite()
        if bad is not None:
            numbers_problem = bad
            breakdown, planning = None, None
    async_breakdown = _async_breakdown(spec, observed, replicas, utilization)
    backlog = None
    lookback = spec.metrics.lookback.timedelta
    held_through = None
    if recorded.holding and planning is not None and forecast is not None:
        planning, recorded, held_through = _hold_through(
            planner, planning, observed, recorded, now, forecast, ratio, costs, pods, spec
        )
        planning, recorded, backlog = _shorten_early(
            planner, planning, recorded, now, observed, forecast, ratio, costs, pods, lookback
        )
    # Built once from the final planning and state: the held projection and the watch share it.
    held = _held_inputs(
        observed, recorded, ratio, None if planning is None else planning.plan, lookback
    )
    backlog = _held_backlog(backlog, held, recorded, observed, now, window, forecast, costs, pods)
    return _Context(
        spec=spec,
        observed=observed,
        state=recorded,
        previous=state,
        now=now,
        window=window,
        inside_window=window.contains(now),
        wait=window.end - now,
        metrics_problem=problem,
        numbers_problem=numbers_problem,
        replicas=replicas,
        utilization=utilization,
        breakdown=breakdown,
        pods=pods,
        held_hours=planning.plan.hours if planning and planning.plan else held_hours,
        learned=learned,
        async_breakdown=async_breakdown,
        planning=planning,
        forecast=forecast,
        backlog=backlog,
        replicas_per_demand=ratio,
        held_through=held_through,
    )


def _left_over(
    spec: WorkloadPlacementSpec, state: State, now: datetime, forecast: WorkForecast
) -> float:
    """Held on past the last window's end: the work that arrived after its Job succeeded
    (the Job ended with its queue empty) waits for this window's Job, beside the hold's own
    (forecast replica-hours). With a hold that ends before its window, the next hold starts
    right at the last window's end: without it, the plan filled 0.95 of the window and the
    Job missed it (falls, 11-04)."""
    if not state.holding:
        return 0.0
    last = last_ended_window(spec.batch.window, now)
    since, done = state.batch_since, state.last_succeeded
    if since is None or since >= last.end or done is None or not last.start <= done < last.end:
        return 0.0
    return forecast.work(max(since, done), last.end)


def _waiting_done(spec: WorkloadPlacementSpec, state: State, now: datetime) -> State:
    """The held work waiting for a window is done once that window has ended with a
    succeeded Job (until then the window stays the Job's: no new hold is planned in it)."""
    waiting = state.waiting_hold
    if waiting is None or state.holding:
        return state
    span = current_or_next_window(spec.batch.window, waiting[1])
    done = state.last_succeeded is not None and state.last_succeeded >= span.start
    return replace(state, waiting_hold=None) if done and now >= span.end else state


def _settled(spec: WorkloadPlacementSpec, state: State, now: datetime) -> datetime:
    """Until when the lookback still covers held hours: the last window's end (or the end of
    a hold that ended before its window) plus metrics.lookback."""
    lookback = spec.metrics.lookback.timedelta
    settled = last_ended_window(spec.batch.window, now).end + lookback
    if state.waiting_hold is not None:
        settled = max(settled, state.waiting_hold[1] + lookback)
    return settled


def _planning(
    planner: Planner, state: State, now: datetime, held_hours: float, settled: datetime
) -> Planning:
    """While holding, the hold taken at the move. Realtime right after a restore (until
    `settled`: the last window's end plus metrics.lookback), the plan announced at the
    restore is kept: the lookback's utilization still covers the held hours (near zero) and
    would plan a hold the load does not allow. Otherwise the best plan for the window."""
    if state.holding:
        return remembered_plan(planner, state.planned_hold, held_hours, now)
    waiting = state.waiting_hold
    if waiting is not None and planner.of_window(waiting):
        # The hold taken for this window ended before it: its plan, not a new one.
        return Planning(planner.hold(*waiting), longest_hours=held_hours)
    fresh = remembered_plan(planner, None, held_hours, now)
    kept = state.planned_hold
    if (
        kept is not None
        and state.last_reason in (Reason.HOLD_PLANNED, Reason.RESTORED)
        and now < settled
        and now < kept[0]
        and planner.of_window(kept)
    ):
        return Planning(
            planner.hold(*kept), longest_hours=held_hours, longer_fits=fresh.longer_fits
        )
    return fresh


def _hold_through(
    planner: Planner,
    planning: Planning,
    observed: Observed,
    state: State,
    now: datetime,
    forecast: WorkForecast,
    ratio: float | None,
    costs: CostsSpec,
    pods: int,
    spec: WorkloadPlacementSpec,
) -> tuple[Planning, State, Backlog | None]:
    """Held past the end of the hold taken, the next planned hold not started yet: hold on
    until it (one hold from now to the next window's end, no restore and move back a few
    hours later) when the backlog of holding through, projected as the backlog watch
    projects it, fits HOLD_THROUGH_MARGIN of that window. So too at the end of a hold taken
    that ends before its window (planning.EARLY_END): held on until the window's end where
    that backlog fits (the load fell below the plan's), instead of the planned restore; in
    the window, on the Job's progress (_go_on_in_window). Returns the planning and state to
    go on with, and that backlog when the hold goes on."""
    plan = planning.plan
    taken = state.planned_hold
    if plan is None or taken is None or state.in_async:
        return planning, state, None
    early = plan.ends_early and (plan.start, plan.end) == taken and now >= plan.end
    if not early and not taken[1] <= now < plan.start:
        return planning, state, None
    if state.fallback_until is not None and now < state.fallback_until:
        return planning, state, None
    if not early and planner.window.end - now > timedelta(hours=planning.longest_hours):
        return planning, state, None  # work arriving now would wait past acceptableDelay
    through_inputs = BacklogInputs(
        demand=_usable_demand(observed),
        queue=usable_demand(observed.queue_depth),
        replicas_per_demand=ratio,
        configured=observed.backlog_metrics,
        held_since=state.batch_since,
        hold_start=now,  # what arrives from now on waits for the window too
        hold_end=None if early else plan.end,
        lookback=spec.metrics.lookback.timedelta,
        history=observed.history,
    )
    if early and now >= planner.window.start:
        return _hold_in_window(planner, planning, observed, state, now, through_inputs, spec)
    through = _project(through_inputs, now, planner.window, forecast, costs, pods)
    if _through_fits(through):
        hold = planner.hold(plan.start) if early else planner.hold(now, plan.end)
        return (*_take(planning, state, hold), through)
    if early:
        on, through = _go_on_early(planner, plan, now, through_inputs, forecast, costs)
    else:
        on = _hold_on_early(planner, plan, now)
    if on is None:
        return planning, state, None
    return (*_take(planning, state, on), through)


def _through_fits(through: Backlog) -> bool:
    """The backlog of holding through to the window's end fits HOLD_THROUGH_MARGIN of it."""
    return through.watched and through.batch_pod_hours <= (
        through.capacity_pod_hours * HOLD_THROUGH_MARGIN
    )


def _hold_in_window(
    planner: Planner,
    planning: Planning,
    observed: Observed,
    state: State,
    now: datetime,
    inputs: BacklogInputs,
    spec: WorkloadPlacementSpec,
) -> tuple[Planning, State, Backlog | None]:
    """_hold_through in the window, at the end of a hold that ends before the window's end:
    at its first evaluation there, held through to the window's end where that backlog fits
    HOLD_THROUGH_MARGIN, as before the window; else, and once gone on inside the window, on
    the Job's progress alone (_go_on_in_window)."""
    plan, forecast = planning.plan, planner.forecast
    assert plan is not None  # _hold_through's
    costs, pods = planner.costs, planner.pods
    if plan.end <= planner.window.start:
        through = _project(inputs, now, planner.window, forecast, costs, pods)
        if _through_fits(through):
            return (*_take(planning, state, planner.hold(plan.start)), through)
    job = _window_job(observed, state, now, planner.window)
    interval = spec.evaluation_interval.timedelta
    on, through = _go_on_in_window(
        planner, plan, now, inputs, forecast, costs, job=job, interval=interval
    )
    if on is None:
        return planning, state, None
    return (*_take(planning, state, on), through)


def _take(planning: Planning, state: State, hold: HoldPlan) -> tuple[Planning, State]:
    """The planning and state of going on in `hold` (a hold changed while held)."""
    return (
        replace(planning, plan=hold, longer_fits=False),
        replace(state, planned_hold=(hold.start, hold.end)),
    )


def _project(
    inputs: BacklogInputs,
    now: datetime,
    window: WindowSpan,
    forecast: WorkForecast | None,
    costs: CostsSpec,
    pods: int,
) -> Backlog:
    """The backlog watch's projection with the placement's efficiency and retry rate."""
    return project_backlog(
        inputs,
        now=now,
        window=window,
        forecast=forecast,
        batch_efficiency=costs.batch_efficiency,
        retry_rate=costs.retry_rate,
        pods=pods,
    )


def _go_on_early(
    planner: Planner,
    plan: HoldPlan,
    now: datetime,
    inputs: BacklogInputs,
    forecast: WorkForecast,
    costs: CostsSpec,
) -> tuple[HoldPlan | None, Backlog]:
    """At the end of a hold taken that ends before its window, holding through to the
    window's end not fitting: the same hold to a later end before the window, the latest
    whose backlog (the work waiting, measured, and the arrivals until that end, projected as
    the backlog watch projects them) fits GO_ON_MARGIN of the window. The plan's end was
    fitted to a forecast of the whole hold; at its end most of that work is measured. A
    plan priced as steady load fills that share already and ends as planned, unless the
    work measured fell short of it (_fell_short: bursty, 11-14, re-priced as steady at its
    end, 26.5 replica-hours held of 31.8 forecast, its Job done in 2h20m of the 4h).
    Returns the hold (None: it ends as planned) and the backlog of the end reached."""
    if plan.margin >= GO_ON_MARGIN and not _fell_short(plan, inputs, now, forecast, costs):
        return None, Backlog(False, "steady load")  # the plan fills that share already
    end, backlog = _latest_fitting_end(planner, inputs, now, None, forecast, costs)
    return (None if end is None else planner.hold(plan.start, end)), backlog


def _go_on_in_window(
    planner: Planner,
    plan: HoldPlan,
    now: datetime,
    inputs: BacklogInputs,
    forecast: WorkForecast,
    costs: CostsSpec,
    *,
    job: JobOutcome | None,
    interval: timedelta,
) -> tuple[HoldPlan | None, Backlog]:
    """At the end of a hold that went on until its window's start (or, here, further into
    it), the window's Job running on the work held: the same hold to the next IN_WINDOW_STEP
    inside the window while the work the Job has left at most (_job_left, from the queue
    depth measured) and the fleet's whole capacity of arrivals until that end fit
    IN_WINDOW_MARGIN of what the Job can still do by the window's end. Decided again at each
    end on the Job's progress, never on a forecast of the window's hours (an end inside the
    window fixed at its start missed 11-05's window: a burst in it). Only while the Job runs
    (at the window's start: is created now), has not succeeded (work arriving after that
    would wait for the next window) and the plan left room (as _go_on_early). Returns the
    hold (None: it ends now, the Job keeping the work) and that backlog."""
    if job not in (None, JobOutcome.RUNNING):
        return None, Backlog(False, f"the window's job is {job}")
    if plan.margin >= GO_ON_MARGIN and not _fell_short(plan, inputs, now, forecast, costs):
        return None, Backlog(False, "steady load")
    window = planner.window
    epoch = datetime(2000, 1, 1, tzinfo=now.tzinfo)
    end = epoch + (now - epoch) // IN_WINDOW_STEP * IN_WINDOW_STEP + IN_WINDOW_STEP
    left = _job_left(inputs, now, window.start, costs, planner.pods, running=job is not None)
    if end >= window.end or left is None:
        return None, Backlog(False, "no later end inside the window")
    # The fleet busy (a burst at most) until the evaluation that decides again, at most an
    # evaluationInterval after that end.
    arriving = planner.replicas * _hours(end - now + interval)
    pods = planner.pods
    backlog = Backlog(
        watched=True,
        note="the work the window's job has left at most, and the fleet busy until the end",
        waiting_replica_hours=left,
        arriving_replica_hours=arriving,
        batch_pod_hours=(left + arriving) / costs.batch_efficiency * (1 + costs.retry_rate),
        capacity_pod_hours=pods * _hours(window.end - now),
        pods=pods,
        window=window,
        share=IN_WINDOW_MARGIN,
    )
    return (planner.hold(plan.start, end) if backlog.fits else None), backlog


def _window_job(
    observed: Observed, state: State, now: datetime, window: WindowSpan
) -> JobOutcome | None:
    """How the window's Job stands for going on inside it (_go_on_in_window): None where it
    is created now, at the window's start (within IN_WINDOW_START of it, so the Job's rate
    counted from the window's start is not counted for long before it ran); FAILED where one
    failed in this window (deleted for its retry, or created late)."""
    job = observed.job(job_name(state.name, window))
    if state.last_failed is not None and state.last_failed >= window.start:
        return JobOutcome.FAILED
    if job is not None:
        return job.outcome
    return None if now < window.start + IN_WINDOW_START else JobOutcome.WAITING


def _job_left(
    inputs: BacklogInputs,
    now: datetime,
    start: datetime,
    costs: CostsSpec,
    pods: int,
    *,
    running: bool,
) -> float | None:
    """The replica-hours the window's Job has left at most, `now` a time tau into the window
    whose Job has run since its start at its rate R (pods x batchEfficiency / (1 +
    retryRate)), the queue depth averaged over the lookback L. Held, the queue rose by the
    arrivals before the window and falls by R less them in it, so the queue now is the
    average less R x (tau (L - tau/2) / L, L/2 after a whole lookback in the window) plus
    the arrivals' part, at most the lookback's arrivals (the demand measured x L). Not
    running yet (created now): nothing done. None: no queue or demand measured."""
    ratio = inputs.replicas_per_demand
    if inputs.queue is None or inputs.demand is None or not ratio:
        return None
    lookback = _hours(inputs.lookback - _AVERAGE_STEP)
    tau = min(_hours(now - start), lookback) if running else 0.0
    done = tau * (lookback - tau / 2) / lookback if lookback > 0 else 0.0
    rate = pods * costs.batch_efficiency / (1 + costs.retry_rate)
    average = inputs.queue * ratio / 3600
    return max(average - rate * done + inputs.demand * ratio * _hours(inputs.lookback), 0.0)


def _fell_short(
    plan: HoldPlan,
    inputs: BacklogInputs,
    now: datetime,
    forecast: WorkForecast,
    costs: CostsSpec,
) -> bool:
    """At the end of a hold priced as steady load (its plan filling GO_ON_MARGIN of the
    window already), the work measured waiting (queue depth, plus the half lookback it lags
    by) came to less than its typical forecast over STEADY_SPREAD: the load was not as
    steady as the forecast read, and the window has room the plan did not count on."""
    if inputs.queue is None:
        return False  # the work waiting would be the forecast's own estimate
    waiting = _project(replace(inputs, hold_end=now), now, plan.window, forecast, costs, plan.pods)
    if not waiting.watched:
        return False
    measured = waiting.waiting_replica_hours + _lag(inputs)
    return measured * STEADY_SPREAD < plan.work_replica_hours


def _lag(inputs: BacklogInputs) -> float:
    """Replica-hours arrived since the queue depth averaged over the lookback was the queue:
    about half a lookback of the demand (_latest_fitting_end)."""
    if inputs.queue is None or inputs.demand is None or not inputs.replicas_per_demand:
        return 0.0
    return inputs.demand * inputs.replicas_per_demand * inputs.lookback / _HALF_HOURS


def _shorten_early(
    planner: Planner,
    planning: Planning,
    state: State,
    now: datetime,
    observed: Observed,
    forecast: WorkForecast,
    ratio: float | None,
    costs: CostsSpec,
    pods: int,
    lookback: timedelta,
) -> tuple[Planning, State, Backlog]:
    """Held in a hold taken that ends before its window, whose backlog no longer fits the
    window by its end: the same hold to an earlier end, the latest whose backlog fits
    GO_ON_MARGIN (it may go on again there, _go_on_early), instead of ending it now
    (_end_early_hold_now) with little waiting yet (bursty, 11-05: a hold ended 50 minutes
    in, 0.64 replica-hours waiting, its 10 hours projected at 1.32x the forecast). Returns
    the planning, state and backlog to go on with."""
    plan, taken = planning.plan, state.planned_hold
    inputs = _held_inputs(observed, state, ratio, plan, lookback)
    backlog = _project(inputs, now, planner.window, forecast, costs, pods)
    if backlog.fits or plan is None or not plan.ends_early or taken != (plan.start, plan.end):
        return planning, state, backlog
    if not plan.contains(now):
        return planning, state, backlog
    end, shorter = _latest_fitting_end(planner, inputs, now, plan.end, forecast, costs)
    if end is None:
        return planning, state, backlog
    return (*_take(planning, state, planner.hold(plan.start, end)), shorter)


def _latest_fitting_end(
    planner: Planner,
    inputs: BacklogInputs,
    now: datetime,
    before: datetime | None,
    forecast: WorkForecast,
    costs: CostsSpec,
) -> tuple[datetime | None, Backlog]:
    """The latest end after now (and before `before`) of a hold that ends before its window
    (planning.Planner.going_on_ends) whose projected backlog fits GO_ON_MARGIN of the window;
    None if none does (the arrivals grow with the end: the first that does not fit ends the
    search). The queue depth, averaged over the lookback, is the queue of about half a
    lookback ago: what arrived since (the demand over half a lookback) waits too. The
    backlog watch leaves that out before the window (backlog.py: counting it there restored
    bursty holds that fit), where a restore is the question, not how much longer to hold.
    Returns that end and its backlog (the lag counted among the work waiting), or None and
    the backlog of the first end that did not fit."""
    lag = _lag(inputs)
    lag_pod_hours = lag / costs.batch_efficiency * (1 + costs.retry_rate)
    found: tuple[datetime | None, Backlog] = (None, Backlog(False, "no later end"))
    for end in planner.going_on_ends(now):
        if before is not None and end >= before:
            break
        backlog = _project(
            replace(inputs, hold_end=end), now, planner.window, forecast, costs, planner.pods
        )
        backlog = replace(
            backlog,
            waiting_replica_hours=backlog.waiting_replica_hours + lag,
            batch_pod_hours=backlog.batch_pod_hours + lag_pod_hours,
        )
        if not backlog.watched or backlog.batch_pod_hours > backlog.capacity_pod_hours * (
            GO_ON_MARGIN
        ):
            return found if found[0] is not None else (None, backlog)
        found = (end, backlog)
    return found


def _hold_on_early(planner: Planner, plan: HoldPlan, now: datetime) -> HoldPlan | None:
    """Held at the end of the hold taken with its window, holding through to the next
    window's end not fitting: the next window's hold from now instead, ending before that
    window (planning.EARLY_END), when it fits and saves at least HOLD_ON_SHARE of the plan's.
    The hold goes on across the window's end and the restore comes once, at its end, where
    the plan restores now and moves back hours later (the oracle holds so across a change of
    level, and after a weekend)."""
    if not planner.early_end or plan.start <= now:
        return None
    on = planner.longest_early(now)
    if on is None or on.breakdown.savings <= 0:
        return None
    if on.breakdown.savings < plan.breakdown.savings * HOLD_ON_SHARE:
        return None
    return on


def _usable_demand(observed: Observed) -> float | None:
    return usable_demand(observed.demand)


def _demand_ratio(
    observed: Observed,
    state: State,
    now: datetime,
    settled: datetime,
    replicas: int | None,
    utilization: float | None,
    lookback: timedelta,
) -> float | None:
    """Realtime replicas per unit of demand: measured now while realtime; recorded at the
    move while held, and after a hold that ended with its window until `settled` (the window's
    end plus metrics.lookback): until then the lookback's utilization still averages the held
    fleet's and would make a unit of demand look nearly free (the HoldPlanned message after a
    restore forecast 3.67 replica-hours where the one at the restore said 43.03). The same for
    one lookback after any restore, whatever its reason (a SavingsNegative restore at 17:20
    moved back at 17:25 on a forecast of 7.2 replica-hours)."""
    recorded = positive(state.replicas_per_demand)
    if state.holding:
        return recorded
    restored = state.restored_at
    if recorded is not None and restored is not None and now < restored + lookback:
        return recorded
    if (
        recorded is not None
        and now < settled
        and (
            state.last_reason in (Reason.HOLD_PLANNED, Reason.RESTORED)
            or state.waiting_hold is not None
        )
    ):
        return recorded
    return replicas_per_demand(_usable_demand(observed), replicas, utilization)


def _forecast(
    observed: Observed,
    state: State,
    now: datetime,
    window: WindowSpan,
    replicas: int | None,
    utilization: float | None,
    problem: str | None,
    ratio: float | None,
) -> WorkForecast | None:
    """The forecast in replica-hours, with the demand conversion `ratio`; never from bad
    metrics."""
    if not state.holding and problem is not None:
        return None
    return work_forecast(
        observed.history,
        now=now,
        window=window,
        replicas=replicas,
        utilization=utilization,
        demand=_usable_demand(observed),
        replicas_per_demand=ratio,
        held_since=state.batch_since if state.holding else None,
    )


def _young_watch(
    forecast: WorkForecast | None, observed: Observed, now: datetime, window: WindowSpan
) -> bool:
    """Held before the window on a history younger than the forecast needs (the lookback's
    average stands for every hour), the queue measured: the young-history watch. Without a
    history read at all the lookback is all there is: the watch projects it, as before."""
    if forecast is None or forecast.forecast.from_history or observed.history is None:
        return False
    if now >= window.start:
        return False
    return observed.backlog_metrics and usable_demand(observed.queue_depth) is not None


def _held_backlog(
    backlog: Backlog | None,
    inputs: BacklogInputs,
    state: State,
    observed: Observed,
    now: datetime,
    window: WindowSpan,
    forecast: WorkForecast | None,
    costs: CostsSpec,
    pods: int,
) -> Backlog | None:
    """The backlog while held: as the hold's own checks projected it, else projected here.
    Where the young-history watch watches (_young_watch), its backlog instead: the work
    waiting (the queue measured) and what arrives over YOUNG_WATCH_SPAN, against
    HOLD_THROUGH_MARGIN of the window."""
    if state.holding and backlog is None:
        backlog = _project(inputs, now, window, forecast, costs, pods)
    if backlog is None or not _young_watch(forecast, observed, now, window):
        return backlog
    end = now + YOUNG_WATCH_SPAN
    if inputs.hold_end is not None:
        end = min(end, inputs.hold_end)
    backlog = _project(replace(inputs, hold_end=end), now, window, forecast, costs, pods)
    if not backlog.watched:
        return backlog
    note = (
        "young history (the forecast is the lookback's average): the work waiting and what "
        f"arrives in the next {format_duration(YOUNG_WATCH_SPAN)}"
    )
    return replace(backlog, share=HOLD_THROUGH_MARGIN, note=note)


def _held_inputs(
    observed: Observed,
    state: State,
    ratio: float | None,
    plan: HoldPlan | None,
    lookback: timedelta,
) -> BacklogInputs:
    return BacklogInputs(
        demand=_usable_demand(observed),
        queue=usable_demand(observed.queue_depth),  # same unit, same checks
        replicas_per_demand=ratio,
        configured=observed.backlog_metrics,
        held_since=state.batch_since,
        hold_start=None if plan is None else plan.start,
        hold_end=None if plan is None else plan.end,
        lookback=lookback,
        history=observed.history,
    )


def _async_breakdown(
    spec: WorkloadPlacementSpec, observed: Observed, replicas: int | None, utilization: float | None
) -> AsyncBreakdown | None:
    if spec.async_ is None or replicas is None or utilization is None:
        return None
    breakdown = async_costs(
        spec.costs,
        spec.async_,
        replicas=replicas,
        warm_replicas=spec.target.warm_replicas,
        utilization=utilization,
        idle_hours=observed.idle_hours or 0.0,
    )
    return None if breakdown.non_finite() is not None else breakdown


def _metrics_problem(spec: WorkloadPlacementSpec, observed: Observed) -> str | None:
    """Why the utilization cannot be trusted, or None. Bad data never scales anything down."""
    if observed.metrics_error is not None:
        return f"utilization query failed: {observed.metrics_error}"
    value = observed.utilization
    if value is None:
        return "utilization query returned no sample"
    if not 0 <= value <= 1:  # NaN fails too
        return (
            f"utilization {number_text(value)} is outside [0,1]: "
            "the query must return useful work / capacity"
        )
    lookback = spec.metrics.lookback.timedelta
    if observed.metrics_age is not None and observed.metrics_age > lookback:
        return (
            f"newest utilization sample is {format_duration(observed.metrics_age)} old, "
            f"older than metrics.lookback {spec.metrics.lookback}"
        )
    return None


def _record_job_outcomes(spec: WorkloadPlacementSpec, state: State, observed: Observed) -> State:
    """Remember the latest success and failure among the observed Jobs, and measure the
    finished ones not measured yet (learning)."""
    succeeded = [
        j.finished_at
        for j in observed.jobs
        if j.outcome is JobOutcome.SUCCEEDED and j.finished_at is not None
    ]
    failed = [
        j.finished_at
        for j in observed.jobs
        if j.outcome is JobOutcome.FAILED and j.finished_at is not None
    ]
    return replace(
        state,
        last_succeeded=max([*succeeded, *_present(state.last_succeeded)], default=None),
        last_failed=max([*failed, *_present(state.last_failed)], default=None),
        runs=record(
            state.runs,
            (run for job in observed.jobs if (run := job.run()) is not None),
            keep=spec.learning.max_runs,
        ),
    )


def _present(moment: datetime | None) -> list[datetime]:
    return [] if moment is None else [moment]


# -------------------------------------------------------------------------------------------
# steps; each returns a Decision or None to pass on
# -------------------------------------------------------------------------------------------


def _blocked(ctx: _Context) -> Decision | None:
    if ctx.observed.replicas is None:
        return _decision(
            ctx,
            Action.NONE,
            Phase.BLOCKED,
            Reason.TARGET_MISSING,
            EventType.WARNING,
            f"{ctx.deployment} not found in this namespace; nothing changed",
        )
    if ctx.observed.conflicting_autoscaler is not None:
        return _decision(
            ctx,
            Action.NONE,
            Phase.BLOCKED,
            Reason.CONFLICTING_AUTOSCALER,
            EventType.WARNING,
            f"{ctx.observed.conflicting_autoscaler} also sets {ctx.deployment} replicas; "
            "remove one of them; nothing changed",
        )
    return None


def _fallback(ctx: _Context) -> Decision | None:
    """Batch missed its window or failed past retryWindow while the operator held realtime."""
    if not ctx.state.holding:
        return None
    failure = _failed_past_retry(ctx)
    if failure is not None:
        span, cause = failure
        return _run_fallback(ctx, span, Reason.BATCH_JOB_FAILED, cause)
    missed = _missed_window(ctx)
    if missed is not None:
        not_admitted = _not_admitted(ctx, missed)
        if not_admitted is not None:
            return _run_fallback(ctx, missed, Reason.KUEUE_NOT_ADMITTED, not_admitted)
        cause = f"window {missed.describe()} ended without a succeeded Job"
        return _run_fallback(ctx, missed, Reason.BATCH_WINDOW_MISSED, cause)
    return None


def _not_admitted(ctx: _Context, span: WindowSpan) -> str | None:
    """Why the window was missed when its Job is still suspended (Kueue never admitted it)."""
    job = ctx.observed.job(job_name(ctx.state.name, span))
    if job is None or job.outcome is not JobOutcome.WAITING:
        return None
    late = (
        "it is deleted, so it cannot start late on work realtime serves now"
        if ctx.spec.fallback.action is FallbackAction.RESTORE_REALTIME
        else "it stays queued: Kueue may still run it"
    )
    return (
        f"Kueue did not admit job {job.name}{_local_queue(ctx)} before window "
        f"{span.describe()} ended; {late}"
    )


def _local_queue(ctx: _Context) -> str:
    queue = ctx.spec.batch.queue_name
    return f" from LocalQueue {queue}" if queue else ""


def _failed_past_retry(ctx: _Context) -> tuple[WindowSpan, str] | None:
    if not ctx.inside_window or _succeeded_in(ctx, ctx.window) or _already_missed(ctx, ctx.window):
        return None
    job = ctx.observed.job(job_name(ctx.state.name, ctx.window))
    if job is None or job.outcome is not JobOutcome.FAILED or job.finished_at is None:
        return None
    retry_window = ctx.spec.batch.retry_window
    if ctx.now < _later(job.finished_at, retry_window.timedelta):
        return None
    return ctx.window, (
        f"job {job.name} failed at {job.finished_at:%Y-%m-%d %H:%M} UTC and retryWindow "
        f"{retry_window} has passed"
    )


def _later(moment: datetime, delta: timedelta) -> datetime:
    """moment + delta, or the last representable moment when that is beyond year 9999."""
    try:
        return moment + delta
    except OverflowError:
        return datetime.max.replace(tzinfo=moment.tzinfo)


def _missed_window(ctx: _Context) -> WindowSpan | None:
    last = last_ended_window(ctx.spec.batch.window, ctx.now)
    since = ctx.state.batch_since
    if since is None or since >= last.end:
        return None  # the workload was not in batch during that window
    if _succeeded_in(ctx, last) or _already_missed(ctx, last):
        return None
    return last


def _succeeded_in(ctx: _Context, span: WindowSpan) -> bool:
    succeeded = ctx.state.last_succeeded
    return succeeded is not None and succeeded >= span.start


def _already_missed(ctx: _Context, span: WindowSpan) -> bool:
    return ctx.state.last_missed_window == span.label


def _run_fallback(ctx: _Context, span: WindowSpan, cause_reason: Reason, cause: str) -> Decision:
    retry_from = next_window_after(ctx.spec.batch.window, span.start).start
    state = replace(
        ctx.state,
        missed_windows=min(ctx.state.missed_windows + 1, _INT64_MAX),
        last_missed_window=span.label,
        fallback_until=retry_from,
    )
    hold_note = f"batch is retried from the window starting {retry_from:%Y-%m-%d %H:%M} UTC"
    ctx = replace(ctx, state=state)
    if ctx.spec.fallback.action is FallbackAction.RESTORE_REALTIME:
        # A Job Kueue never admitted keeps its own reason: the fix is in the queue.
        kueue = cause_reason is Reason.KUEUE_NOT_ADMITTED
        return _restore(
            ctx,
            Action.FALLBACK,
            Phase.FALLBACK,
            cause_reason if kueue else Reason.FALLBACK_RESTORED,
            EventType.WARNING,
            f"{cause}; {hold_note}",
        )
    return _decision(
        ctx,
        Action.FALLBACK,
        Phase.FALLBACK,
        cause_reason,
        EventType.WARNING,
        f"{cause}; fallback Alert: {ctx.deployment} left at {ctx.observed.replicas} "
        f"replicas; {hold_note}",
    )


def _backlog_will_miss(ctx: _Context) -> Decision | None:
    """Held, and the work the window will have to do no longer fits it: realtime comes back
    before the window is missed (or, with fallback Alert, a Warning says so)."""
    backlog = ctx.backlog
    if not ctx.state.holding or backlog is None or backlog.fits:
        return None
    if _succeeded_in(ctx, ctx.window) or ctx.now >= ctx.window.end:
        return None
    if ctx.plan is not None and not ctx.plan.contains(ctx.now):
        # The hold taken ended with its window and the next one has not started: the plan's
        # end, restored by the hold gate (HoldPlanned), not a window about to be missed.
        return None
    ended = _end_early_hold_now(ctx, backlog) or _young_restore(ctx, backlog)
    if ended is not None:
        return ended
    if ctx.spec.fallback.action is FallbackAction.RESTORE_REALTIME:
        state = replace(ctx.state, fallback_until=ctx.window.end)
        return _restore(
            replace(ctx, state=state),
            Action.FALLBACK,
            Phase.FALLBACK,
            Reason.BACKLOG_WILL_MISS_WINDOW,
            EventType.WARNING,
            f"{backlog.describe()}; realtime restored before the window is missed; batch "
            f"resumes with the next planned hold after {_utc(ctx.window.end)}",
        )
    job = _job_to_create(ctx)
    if job is not None:
        ctx = replace(ctx, state=replace(ctx.state, current_job=job))
    return _decision(
        ctx,
        Action.CREATE_JOB if job is not None else Action.WAIT,
        Phase.BATCH,
        Reason.BACKLOG_WILL_MISS_WINDOW,
        EventType.WARNING,
        f"{backlog.describe()}; fallback Alert: {ctx.deployment} left at "
        f"{ctx.observed.replicas} replicas" + (f"; job {job} created" if job else ""),
        desired_replicas=ctx.warm,
        job_name=job,
    )


def _end_early_hold_now(ctx: _Context, backlog: Backlog) -> Decision | None:
    """A hold that ends before its window, whose backlog will no longer fit the window by the
    hold's end, while the work waiting now still fits HOLD_THROUGH_MARGIN of it: the hold ends
    now instead of at its planned end, that work waiting for the window's Job as after a
    planned restore. Nothing is missed and nothing falls back (bursty, 11-25: the projection
    passed the window by 0.01 pod-hours three hours before the hold's end)."""
    plan, taken = ctx.plan, ctx.state.planned_hold
    if plan is None or not plan.ends_early or taken != (plan.start, plan.end):
        return None
    costs = ctx.learned.costs(ctx.spec.costs)
    waiting = backlog.waiting_replica_hours / costs.batch_efficiency * (1 + costs.retry_rate)
    if waiting > backlog.capacity_pod_hours * HOLD_THROUGH_MARGIN:
        return None
    state = replace(ctx.state, waiting_hold=(plan.start, ctx.now))
    return _restore(
        replace(ctx, state=state),
        Action.RESTORE,
        Phase.REALTIME,
        Reason.RESTORED,
        EventType.NORMAL,
        f"the hold ends before its plan's end ({_utc(plan.end)}): {backlog.describe()}; the "
        f"work held since {_utc(plan.start)} ({waiting:.2f} batch pod-hours, within "
        f"{HOLD_THROUGH_MARGIN:g} of the window) waits for the job of window "
        f"{ctx.window.describe()}",
    )


def _young_restore(ctx: _Context, backlog: Backlog) -> Decision | None:
    """The young-history watch's restore (_held_backlog): the work waiting fits the window
    (it fitted HOLD_THROUGH_MARGIN of it with an hour's arrivals on top a cycle ago) and is
    left to the window's Job (a waiting hold); no fallback. None: not that watch, or the
    work held would not fit (the fallback restore, as before)."""
    if backlog.share >= 1:
        return None
    ctx, waits = _leave_held_work(ctx)
    if not waits:
        return None
    return _restore(
        ctx,
        Action.RESTORE,
        Phase.REALTIME,
        Reason.RESTORED,
        EventType.NORMAL,
        f"{backlog.describe()}{waits}",
    )


def _planned_restore(ctx: _Context) -> Decision | None:
    """Held, the hold taken ends before its window and has ended: realtime comes back, the
    work held meanwhile waiting for the window's Job (created in the window while realtime)."""
    taken = ctx.state.planned_hold
    plan = ctx.plan
    if not ctx.state.holding or ctx.state.in_async or taken is None or plan is None:
        return None
    if not plan.ends_early or (plan.start, plan.end) != taken or ctx.now < plan.end:
        return None
    state = replace(ctx.state, waiting_hold=taken)
    return _restore(
        replace(ctx, state=state),
        Action.RESTORE,
        Phase.REALTIME,
        Reason.RESTORED,
        EventType.NORMAL,
        f"planned restore: the {plan.describe()}",
    )


def _leave_held_work(ctx: _Context) -> tuple[_Context, str]:
    """A restore before the window of a hold taken since the last window ended (a gate's, or
    the young-history watch's): the work held since the move waits for the window's Job, as
    after a planned restore (a waiting hold), where it fits HOLD_THROUGH_MARGIN of the
    window. Without it no Job did that work: the ramped replay's restored fleet drained it
    for nothing, and a placement moved back held it again. Else (in the window its Job has
    the work; a hold from before the last window; work that would not fit; a placement that
    does not act) the restored fleet takes it, as before. Returns the context to restore
    with and what the message adds."""
    state, since = ctx.state, ctx.state.batch_since
    if state.in_async or since is None or since >= ctx.now or ctx.inside_window:
        return ctx, ""
    if not _would_act(ctx) or since < last_ended_window(ctx.spec.batch.window, ctx.now).end:
        return ctx, ""
    held = _held_pod_hours(ctx, since)
    capacity = ctx.pods * _hours(ctx.window.length)
    if held is None or held > capacity * HOLD_THROUGH_MARGIN:
        return ctx, ""
    ctx = replace(ctx, state=replace(state, waiting_hold=(since, ctx.now)))
    return ctx, (
        f"; the work held since {_utc(since)} ({held:.2f} batch pod-hours, within "
        f"{HOLD_THROUGH_MARGIN:g} of the window) waits for the job of window "
        f"{ctx.window.describe()}"
    )


def _held_pod_hours(ctx: _Context, since: datetime) -> float | None:
    """The batch pod-hours of the work held since `since`: the queue measured (the backlog
    watch's), else the forecast of those hours (their demand, or the load learned around
    them: the held fleet's utilization is left out). None: nothing to tell it by."""
    backlog = ctx.backlog
    if (
        backlog is not None
        and backlog.watched
        and usable_demand(ctx.observed.queue_depth) is not None
    ):
        work = backlog.waiting_replica_hours
    elif ctx.forecast is not None:
        work = ctx.forecast.work(since, ctx.now)
    else:
        return None
    costs = ctx.learned.costs(ctx.spec.costs)
    return work / costs.batch_efficiency * (1 + costs.retry_rate)


def _held_work_waiting(ctx: _Context) -> Decision | None:
    """Realtime after a planned restore: the held work waits for its window's Job, created
    in the window while the Deployment is realtime. A Job that fails has nothing to restore:
    a Warning with the numbers; a window that ends without a succeeded Job missed that work."""
    waiting = ctx.state.waiting_hold
    if ctx.state.holding or waiting is None:
        return None
    span = current_or_next_window(ctx.spec.batch.window, waiting[1])
    held = f"the work held {_utc(waiting[0])} - {_utc(waiting[1])}"
    if ctx.plan is not None and (ctx.plan.start, ctx.plan.end) == waiting:
        # The work held, its hours past at their own day's load (not the plan's daily figure).
        work = ctx.plan.work_replica_hours
        if ctx.forecast is not None:
            work = ctx.forecast.arrived(*waiting)
        held += f" ({work:.2f} replica-hours forecast)"
    name = job_name(ctx.state.name, span)
    if _succeeded_in(ctx, span):
        return _realtime(
            ctx,
            Reason.BATCH_SUCCEEDED,
            EventType.NORMAL,
            f"job {name} succeeded for window {span.describe()}: {held} is done; "
            f"{ctx.deployment} realtime",
        )
    if ctx.now >= span.end:
        state = replace(
            ctx.state,
            waiting_hold=None,
            missed_windows=min(ctx.state.missed_windows + 1, _INT64_MAX),
            last_missed_window=span.label,
            fallback_until=next_window_after(ctx.spec.batch.window, span.start).start,
        )
        return _realtime(
            replace(ctx, state=state),
            Reason.BATCH_WINDOW_MISSED,
            EventType.WARNING,
            f"window {span.describe()} ended without a succeeded job: {held} is missed "
            f"({ctx.deployment} was realtime, nothing to restore); batch is retried from the "
            f"window starting {_utc(state.fallback_until)}" + _news_of_success(ctx),  # type: ignore[arg-type]
        )
    if ctx.now < span.start:
        return _realtime(
            ctx,
            Reason.RESTORED,
            EventType.NORMAL,
            f"{held} waits for the job of window {span.describe()} (starts in "
            f"{format_duration(span.start - ctx.now)}); {ctx.deployment} realtime",
        )
    observed = ctx.observed.job(name)
    if observed is None:
        retry = " (retry after a failure)" if _failed_in(ctx, span) else ""
        ctx = replace(ctx, state=replace(ctx.state, current_job=name))
        return _realtime(
            ctx,
            Reason.BATCH_JOB_CREATED,
            EventType.NORMAL,
            f"job {name} created{retry} for window {span.describe()} while {ctx.deployment} "
            f"is realtime: it does {held}{_queue_text(ctx)}",
            job=name,
        )
    if observed.outcome is JobOutcome.FAILED:
        return _realtime(
            ctx,
            Reason.BATCH_JOB_FAILED,
            EventType.WARNING,
            f"job {name} failed; {held} is missed unless it is retried (delete the job to have "
            f"it recreated) before window {span.describe()} ends; {ctx.deployment} is realtime, "
            "nothing to restore",
        )
    doing = "running"
    if observed.outcome is JobOutcome.WAITING:
        doing = "suspended, waiting to be admitted"
    return _realtime(
        ctx,
        Reason.BATCH_JOB_CREATED,
        EventType.NORMAL,
        f"job {name} {doing} "
        f"in window {span.describe()} for {held}; {ctx.deployment} realtime{_queue_text(ctx)}",
    )


def _realtime(
    ctx: _Context, reason: Reason, event_type: EventType, message: str, *, job: str | None = None
) -> Decision:
    """A decision while realtime with held work waiting (a repeated reason is no news)."""
    action = Action.CREATE_JOB if job is not None else Action.WAIT
    return _decision(ctx, action, Phase.REALTIME, reason, event_type, message, job_name=job)


def _utc(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _fallback_hold(ctx: _Context) -> Decision | None:
    """After a fallback, wait for the next window instead of moving straight back."""
    until = ctx.state.fallback_until
    if until is None or ctx.now >= until:
        return None
    if ctx.state.holding and _first_failing_gate(ctx) is not None:
        return None  # a gate now says realtime: let _gates restore it
    reason = (
        ctx.state.last_reason
        if ctx.state.last_reason in _FALLBACK_REASONS
        else (Reason.BATCH_WINDOW_MISSED)
    )
    return _decision(
        ctx,
        Action.WAIT,
        Phase.FALLBACK,
        reason,
        EventType.WARNING,
        f"in fallback until {until:%Y-%m-%d %H:%M} UTC, "
        + (
            "when the window whose backlog would not fit ends"
            if reason is Reason.BACKLOG_WILL_MISS_WINDOW
            else "when the next window starts"
        ),
        desired_replicas=ctx.warm if ctx.state.holding else None,
    )


def _metrics_unavailable(ctx: _Context) -> Decision | None:
    problem = ctx.metrics_problem or ctx.numbers_problem
    if ctx.state.holding or problem is None:
        return None
    phase = (
        Phase.OBSERVING
        if ctx.state.phase in (None, Phase.OBSERVING, Phase.BLOCKED)
        else (Phase.REALTIME)
    )
    return _decision(
        ctx,
        Action.NONE,
        phase,
        Reason.METRICS_UNAVAILABLE,
        EventType.WARNING,
        f"{problem}; nothing changed",
    )


# -------------------------------------------------------------------------------------------
# async: core/asyncmode.py has the formula, the gates and the choice; here they become
# decisions. The ScaledObject (not the operator) sets the replicas while in async, so these
# decisions never carry desired_replicas except the restore when leaving.
# -------------------------------------------------------------------------------------------


def _async_gate(ctx: _Context, *, staying: bool, leaning: bool) -> tuple[Reason, str] | None:
    """The first failing async gate, the shared ones (owner, userVisible) first."""
    spec = ctx.spec
    assert spec.async_ is not None
    return (
        _owner_gate(ctx)
        or _user_visible_gate(ctx)
        or asyncmode.first_failing_gate(
            spec.latency,
            spec.async_,
            ctx.async_breakdown,
            ctx.observed.async_seen,
            margin=spec.costs.savings_margin,
            currency=spec.costs.currency,
            leaning=leaning,
            staying=staying,
        )
    )


def _async_text(ctx: _Context) -> str:
    breakdown = ctx.async_breakdown
    if breakdown is None:
        return "async savings unknown (no utilization measured before the move)"
    return breakdown.format(ctx.spec.costs.currency)


def _in_async(ctx: _Context) -> Decision | None:
    """While the ScaledObject sets the replicas: stay, or leave (LeftAsync) when a gate
    fails, async loses money (from the baseline frozen at the move, as batch), spec.async
    is removed, or the mode is Recommend / productRisk High."""
    if not ctx.state.in_async:
        return None
    if ctx.spec.async_ is None:
        return _leave_async(ctx, "spec.async was removed")
    if ctx.spec.product_risk is ProductRisk.HIGH:
        return _leave_async(ctx, "productRisk High: the operator never acts on its own")
    if ctx.spec.mode is not Mode.ENFORCE:
        return _leave_async(ctx, "mode Recommend: the operator gives the replicas back")
    verdict = _async_gate(ctx, staying=True, leaning=True)
    if verdict is not None:
        reason, why = verdict
        return _leave_async(ctx, f"{reason}: {why}")
    name = scaled_object_name(ctx.state.name)
    return _decision(
        ctx,
        Action.WAIT,
        Phase.ASYNC,
        Reason.MOVED_TO_ASYNC,
        EventType.NORMAL,
        f"{_async_text(ctx)}; {ctx.deployment} runs {ctx.observed.replicas} replicas, set by "
        f"scaledobject/{name} between {ctx.warm} and {ctx.state.original_replicas}",
        actuate=False,
    )


def _leave_async(ctx: _Context, why: str) -> Decision:
    """Delete the ScaledObject, then restore the recorded replicas."""
    original = ctx.state.original_replicas
    assert original is not None
    state = replace(ctx.state, original_replicas=None, baseline_utilization=None, async_since=None)
    name = scaled_object_name(ctx.state.name)
    return _decision(
        replace(ctx, state=state),
        Action.RESTORE,
        Phase.REALTIME,
        Reason.LEFT_ASYNC,
        EventType.NORMAL,
        f"scaledobject/{name} deleted, {ctx.deployment} {ctx.observed.replicas} -> {original}; "
        f"{why}; {_async_text(ctx)}",
        desired_replicas=original,
        actuate=True,
    )


def _choose_async(ctx: _Context) -> Decision | None:
    """Not held: move to async (or recommend it) when it fits and pays more than batch; stay
    realtime with the async gate's reason when async would pay and batch does not fit; else
    None, and the batch path decides as before."""
    spec, breakdown = ctx.spec, ctx.async_breakdown
    if spec.async_ is None or breakdown is None or ctx.state.holding:
        return None
    if _owner_gate(ctx) or _user_visible_gate(ctx):
        return None  # the batch gates say the same, in the same words
    last = ctx.state.last_reason
    incumbent = (
        "async"
        if last is Reason.ASYNC_RECOMMENDED
        else ("batch" if last is Reason.BATCH_RECOMMENDED else None)
    )
    verdict = _async_gate(ctx, staying=False, leaning=incumbent == "async")
    batch_fails = _first_failing_gate(ctx)
    batch = ctx.breakdown if batch_fails is None else None
    if verdict is None:
        margin = spec.costs.savings_margin
        if batch is not None and not asyncmode.async_wins(
            breakdown.savings, batch.savings, margin=margin, incumbent=incumbent
        ):
            return None  # batch saves more: its path decides
        note = "" if batch is None else f"; batch would save {batch.savings:.2f}"
        return _move_to_async(ctx, note) if _would_act(ctx) else _recommend_async(ctx, note)
    reason, why = verdict
    if batch_fails is None or reason is Reason.SAVINGS_NEGATIVE:
        return None  # batch fits, or async loses money too: the batch path says why
    batch_reason, batch_why = batch_fails
    event_type = EventType.WARNING if reason is Reason.ASYNC_QUEUE_UNAVAILABLE else EventType.NORMAL
    return _decision(
        ctx,
        Action.STAY,
        Phase.REALTIME,
        reason,
        event_type,
        f"{why}; {_async_text(ctx)}; batch: {batch_reason}: {batch_why}",
    )


def _move_to_async(ctx: _Context, note: str) -> Decision:
    """Record the original replicas (the hold) and hand the count to the ScaledObject."""
    current = ctx.observed.replicas
    assert current is not None
    state = replace(
        ctx.state,
        original_replicas=current,
        baseline_utilization=ctx.utilization,
        async_since=ctx.now,
        last_missed_window=None,
        fallback_until=None,
    )
    name = scaled_object_name(ctx.state.name)
    return _decision(
        replace(ctx, state=state),
        Action.MOVE_TO_ASYNC,
        Phase.ASYNC,
        Reason.MOVED_TO_ASYNC,
        EventType.NORMAL,
        f"{_async_text(ctx)}{note}; {ctx.deployment} handed to scaledobject/{name}: "
        f"{ctx.warm} to {current} replicas on the queue",
        actuate=True,
    )


def _recommend_async(ctx: _Context, note: str) -> Decision:
    if ctx.spec.product_risk is ProductRisk.HIGH:
        why = "productRisk High: the operator never acts on its own"
    else:
        why = "mode Recommend: nothing changed"
    return _decision(
        ctx,
        Action.MOVE_TO_ASYNC,
        Phase.REALTIME,
        Reason.ASYNC_RECOMMENDED,
        EventType.NORMAL,
        f"{_async_text(ctx)}{note}; would hand {ctx.deployment} to a KEDA ScaledObject "
        f"({ctx.warm} to {ctx.observed.replicas} replicas on the queue) ({why})",
        actuate=False,
    )


# Gates: each returns (reason, explanation) when the workload must stay realtime.
Gate = Callable[[_Context], tuple[Reason, str] | None]


def _owner_gate(ctx: _Context) -> tuple[Reason, str] | None:
    if ctx.spec.owner.strip():
        return None
    return Reason.OWNER_MISSING, "spec.owner is empty: nobody owns the batch path"


def _user_visible_gate(ctx: _Context) -> tuple[Reason, str] | None:
    if not ctx.spec.latency.user_visible:
        return None
    return Reason.STAY_REALTIME, "latency.userVisible is true: a user waits on every answer"


def _delay_gate(ctx: _Context) -> tuple[Reason, str] | None:
    delay = ctx.spec.latency.acceptable_delay
    if ctx.wait <= delay.timedelta:
        return None
    return Reason.DELAY_NOT_TOLERATED, (
        f"{_hold_ended_text(ctx)}work arriving now waits {format_duration(ctx.wait)} until window "
        f"{ctx.window.describe()} ends > acceptableDelay {delay}"
    )


def _savings_gate(ctx: _Context) -> tuple[Reason, str] | None:
    breakdown = ctx.breakdown
    if breakdown is None:
        return None  # holding without a baseline: keep the batch path, cannot judge
    margin = ctx.spec.costs.savings_margin
    if _leaning_batch(ctx):
        if breakdown.savings >= 0:
            return None
        return Reason.SAVINGS_NEGATIVE, "batch loses money"
    if breakdown.savings <= margin:
        needed = f"needs more than {margin:.2f} {ctx.spec.costs.currency}/day (costs.savingsMargin)"
        return Reason.SAVINGS_NEGATIVE, needed
    unlearned = _unlearned_stake(ctx, breakdown)
    if unlearned is not None and breakdown.savings <= unlearned:
        return Reason.SAVINGS_NEGATIVE, (
            f"needs more than {unlearned:.2f} {ctx.spec.costs.currency}/day while the forecast "
            "is the lookback average (no day of history learned yet): the batch path's fixed "
            "costs, staging and operations, which a busier day than the last lookback would "
            "lose"
        )
    return None


def _unlearned_stake(ctx: _Context, breakdown: CostBreakdown) -> float | None:
    """Before a day of history is learned, the forecast is the last lookback's average: one
    quiet hour would move a fleet whose day is busy (a public trace's first hour, at a sixth
    of its daily load, moved a fleet that then lost money every day). A move on it must
    then save more than the batch path's fixed costs per day. None: the forecast is learned,
    or no history was read at all (the lookback is all there is to decide on)."""
    forecast = ctx.forecast
    if forecast is None or forecast.forecast.from_history or ctx.observed.history is None:
        return None
    return breakdown.data_staging + breakdown.operations


def _leaning_batch(ctx: _Context) -> bool:
    """In batch, or already recommending it: the lower (exit) threshold applies."""
    return ctx.state.holding or ctx.state.last_reason is Reason.BATCH_RECOMMENDED


def _window_fit_gate(ctx: _Context) -> tuple[Reason, str] | None:
    if ctx.breakdown is None:
        return None
    planned = _plan_fit(ctx)
    if planned is not None:
        return planned
    needed = batch_duration(ctx.breakdown.batch_pod_hours, ctx.pods)
    batch_needs = (
        f"batch needs {ctx.breakdown.batch_pod_hours:.2f} pod-hours / {ctx.pods} parallel "
        f"pods = {format_duration(needed)}"
    )
    if ctx.planning is None and needed > ctx.window.length:
        return Reason.WINDOW_TOO_SHORT, (
            f"{batch_needs} > window {ctx.window.describe()} ({format_duration(ctx.window.length)})"
        )
    # Moving late in an open window would create a Job sure to miss it (and count a missed
    # window). Only a move that would act is held back: while holding, the Job of this window
    # is still created best effort; a recommendation describes the placement, not this minute,
    # so it does not flip twice a day.
    if ctx.state.holding or not _would_act(ctx) or not ctx.inside_window:
        return None
    left = ctx.window.end - ctx.now
    if needed <= left:
        return None
    return Reason.WINDOW_TOO_SHORT, (
        f"only {format_duration(left)} left in the window {ctx.window.describe()}; "
        f"{batch_needs}; moves for the next window"
    )


def _plan_fit(ctx: _Context) -> tuple[Reason, str] | None:
    """No hold fits the window (even the shortest), or the hold taken no longer fits all of
    the window's capacity (the move needed the plan's margin of it: hysteresis)."""
    planning = ctx.planning
    if planning is None:
        return None
    plan = planning.plan
    if plan is None:
        longest = planning.longest
        if longest is None:
            return None
        needed = batch_duration(longest.batch_pod_hours, ctx.pods)
        return Reason.WINDOW_TOO_SHORT, (
            f"batch needs {longest.batch_pod_hours:.2f} pod-hours at the forecast's high "
            f"quantile / {ctx.pods} parallel pods = {format_duration(needed)} > "
            f"{longest.margin:g} of window {ctx.window.describe()} "
            f"({format_duration(ctx.window.length)}), and no shorter hold fits either"
        )
    # While held, a watched backlog says what the window will have to do (BacklogWillMissWindow);
    # otherwise the hold's forecast, which moves only with what is learned.
    watched = ctx.backlog is not None and ctx.backlog.watched
    if (
        ctx.state.holding
        and not watched
        and plan.batch_pod_hours > plan.capacity_pod_hours / plan.margin
    ):
        return Reason.WINDOW_TOO_SHORT, (
            f"the hold's work no longer fits the whole window: {plan.describe()}"
        )
    return None


def _hold_gate(ctx: _Context) -> tuple[Reason, str] | None:
    """Before the planned hold starts, realtime, when the plan holds fewer hours than
    acceptableDelay allows (the longer holds would not fit the window, or save less).
    A recommendation describes the placement, not this hour: not flipped by it."""
    planning = ctx.planning
    plan = None if planning is None else planning.plan
    if plan is None or planning is None or not planning.shortened or plan.contains(ctx.now):
        return None
    if not ctx.state.holding and not _would_act(ctx):
        return None
    return Reason.HOLD_PLANNED, (
        _hold_ended_text(ctx)
        + f"realtime until the {plan.describe()}; a longer hold "
        + ("saves less" if planning.longer_fits else "would not fit the window")
    )


def _hold_ended_text(ctx: _Context) -> str:
    """Holding past the end of the hold taken: the plan's end, said as such."""
    taken = ctx.state.planned_hold if ctx.state.holding else None
    if taken is None or ctx.now < taken[1]:
        return ""
    return f"the planned hold ended at {_utc(taken[1])} with its window; "


def _would_act(ctx: _Context) -> bool:
    return ctx.spec.mode is Mode.ENFORCE and ctx.spec.product_risk is not ProductRisk.HIGH


GATES: tuple[Gate, ...] = (
    _owner_gate,
    _user_visible_gate,
    _delay_gate,
    _savings_gate,
    _window_fit_gate,
    _hold_gate,
)


def _first_failing_gate(ctx: _Context) -> tuple[Reason, str] | None:
    return next((verdict for gate in GATES if (verdict := gate(ctx)) is not None), None)


def _gates(ctx: _Context) -> Decision | None:
    verdict = _first_failing_gate(ctx)
    if verdict is None:
        return None
    reason, why = verdict
    if ctx.state.holding:
        waits = ""
        if reason in _COST_GATES:  # not a spec that takes the placement off batch
            ctx, waits = _leave_held_work(ctx)
        return _restore(
            ctx,
            Action.RESTORE,
            Phase.REALTIME,
            Reason.RESTORED,
            EventType.NORMAL,
            f"{reason}: {why}; {ctx.savings_text}{waits}",
        )
    return _decision(
        ctx,
        Action.STAY,
        Phase.REALTIME,
        reason,
        EventType.NORMAL,
        f"{why}; {ctx.savings_text}",
    )


def _recommend_only(ctx: _Context) -> Decision | None:
    if _would_act(ctx):
        return None
    if ctx.spec.product_risk is ProductRisk.HIGH:
        why = "productRisk High: the operator never acts on its own"
    else:
        why = "mode Recommend: nothing changed"
    if ctx.state.holding:
        return _restore(ctx, Action.RESTORE, Phase.REALTIME, Reason.RESTORED, EventType.NORMAL, why)
    current = ctx.observed.replicas
    plan = "" if ctx.plan is None else f"; {ctx.plan.describe()}"
    return _decision(
        ctx,
        Action.MOVE_TO_BATCH,
        Phase.REALTIME,
        Reason.BATCH_RECOMMENDED,
        EventType.NORMAL,
        f"{ctx.savings_text}{plan}; would scale {ctx.deployment} {current} -> {ctx.warm} ({why})",
        desired_replicas=ctx.warm,
        actuate=False,
    )


def _enforce(ctx: _Context) -> Decision:
    if not ctx.state.holding:
        return _move_to_batch(ctx)
    if ctx.inside_window:
        return _run_window(ctx)
    through = ""
    plan = ctx.plan
    if (
        ctx.held_through is not None
        and plan is not None
        and plan.ends_early
        and (plan.start < ctx.now)
    ):
        # A hold that ends before its window gone on past its planned end (_go_on_early).
        through = (
            f"; held on past the planned hold's end until {_utc(plan.end)}: "
            f"{ctx.held_through.describe()}, within {GO_ON_MARGIN:g} of it (the work held "
            f"so far measured, the plan fitted to a forecast at {plan.margin:g})"
        )
    elif ctx.held_through is not None and plan is not None and plan.ends_early:
        # Held on into an early-ending hold of the next window (_hold_on_early): holding
        # through to that window's end would not fit, this hold does.
        through = (
            f"; held on past the planned hold's end into the {plan.describe()} (no restore "
            f"and move back in between; held until that window's end, "
            f"{ctx.held_through.describe()}, it would not fit {HOLD_THROUGH_MARGIN:g} of it)"
        )
    elif ctx.held_through is not None:
        through = (
            f"; held on past the planned hold's end into the {ctx.plan_text} (no restore "
            f"and move back in between): {ctx.held_through.describe()}, within "
            f"{HOLD_THROUGH_MARGIN:g} of it"
        )
    return _wait(
        ctx,
        f"waiting for window {ctx.window.describe()} (starts in "
        f"{format_duration(ctx.window.start - ctx.now)}); {ctx.deployment} held at {ctx.warm}"
        + through,
    )


def _move_to_batch(ctx: _Context) -> Decision:
    current = ctx.observed.replicas
    assert current is not None  # _blocked handled a missing Deployment
    plan = ctx.plan
    state = replace(
        ctx.state,
        original_replicas=current,
        baseline_utilization=ctx.utilization,
        batch_since=ctx.now,
        last_missed_window=None,
        fallback_until=None,
        planned_hold=None if plan is None else (plan.start, plan.end),
        replicas_per_demand=ctx.replicas_per_demand,
    )
    ctx = replace(ctx, state=state)
    parts = [ctx.savings_text, f"{ctx.deployment} {current} -> {ctx.warm}"]
    if plan is not None:
        parts.append(plan.describe())
    if not ctx.observed.backlog_metrics:
        parts.append("backlog not watched (no metrics.demand or metrics.queueDepth)")
    job = _job_to_create(ctx)
    if job is not None:
        ctx = replace(ctx, state=replace(ctx.state, current_job=job))
        parts.append(f"job {job} created")
    else:
        parts.append(f"next window {ctx.window.describe()}")
    return _decision(
        ctx,
        Action.MOVE_TO_BATCH,
        Phase.BATCH,
        Reason.MOVED_TO_BATCH,
        EventType.NORMAL,
        "; ".join(parts),
        desired_replicas=ctx.warm,
        job_name=job,
    )


def _job_to_create(ctx: _Context) -> str | None:
    """This window's Job, if the window is open and no Job of it exists or succeeded."""
    if not ctx.inside_window or _succeeded_in(ctx, ctx.window):
        return None
    name = job_name(ctx.state.name, ctx.window)
    return None if ctx.observed.job(name) is not None else name


def _run_window(ctx: _Context) -> Decision:
    name = job_name(ctx.state.name, ctx.window)
    queue = _queue_text(ctx) + _in_window_text(ctx)
    if _succeeded_in(ctx, ctx.window):
        if not _succeeded_in(replace(ctx, state=ctx.previous), ctx.window):
            return _decision(
                ctx,
                Action.WAIT,
                Phase.BATCH,
                Reason.BATCH_SUCCEEDED,
                EventType.NORMAL,
                f"job {name} succeeded for window {ctx.window.describe()}{queue}",
                desired_replicas=ctx.warm,
            )
        return _wait(ctx, f"job {name} succeeded for window {ctx.window.describe()}")
    job = _job_to_create(ctx)
    if job is not None:
        retry = (
            " (retry after a failure)"
            if ctx.observed.job(name) is None and _failed_in(ctx, ctx.window)
            else ""
        )
        ctx = replace(ctx, state=replace(ctx.state, current_job=job))
        return _decision(
            ctx,
            Action.CREATE_JOB,
            Phase.BATCH,
            Reason.BATCH_JOB_CREATED,
            EventType.NORMAL,
            f"job {job} created{retry} for window {ctx.window.describe()}{queue}"
            + _best_effort_note(ctx),
            desired_replicas=ctx.warm,
            job_name=job,
        )
    observed = ctx.observed.job(name)
    if observed is not None and observed.outcome is JobOutcome.FAILED:
        retry_until = _later(observed.finished_at or ctx.now, ctx.spec.batch.retry_window.timedelta)
        message = (
            f"job {name} failed; it may be retried (delete it to have it recreated) until "
            f"{retry_until:%Y-%m-%d %H:%M} UTC, then fallback {ctx.spec.fallback.action}"
        )
        if ctx.previous.last_reason is not Reason.BATCH_JOB_FAILED:
            return _decision(
                ctx,
                Action.WAIT,
                Phase.BATCH,
                Reason.BATCH_JOB_FAILED,
                EventType.WARNING,
                message,
                desired_replicas=ctx.warm,
            )
        return _wait(ctx, message)
    if observed is not None and observed.outcome is JobOutcome.WAITING:
        return _wait(
            ctx,
            f"job {name} suspended, waiting to be admitted{_local_queue(ctx)}; window "
            f"{ctx.window.describe()} still counts{queue}",
        )
    return _wait(ctx, f"job {name} running in window {ctx.window.describe()}{queue}")


def _in_window_text(ctx: _Context) -> str:
    """Held on inside the window on the Job's progress (_go_on_in_window): until when, and
    the numbers."""
    plan, through = ctx.plan, ctx.held_through
    if plan is None or through is None or not plan.ends_early or plan.end <= ctx.window.start:
        return ""
    return (
        f"; held on inside the window until {_utc(plan.end)}, the job's progress measured: "
        f"{through.describe()}"
    )


def _best_effort_note(ctx: _Context) -> str:
    """Already holding, the Job is created even when it cannot finish in time (e.g. the
    operator was down): it may still do part of the work; the window end decides fallback."""
    if ctx.breakdown is None:
        return ""
    # The Job's own work, not the plan's daily figure, whose hours already past are priced
    # a day later: on a Monday, Sunday's held hours as Monday's, 6h35m for a 1h35m Job.
    work = _work_for_job(ctx)
    pod_hours = ctx.breakdown.batch_pod_hours
    if work is not None:
        pod_hours = work / ctx.learned.costs(ctx.spec.costs).batch_efficiency
    needed = batch_duration(pod_hours, ctx.pods)
    left = ctx.window.end - ctx.now
    if needed <= left:
        return ""
    return (
        f"; best effort: only {format_duration(left)} left, batch needs {format_duration(needed)}"
    )


def _news_of_success(ctx: _Context) -> str:
    """A success first seen by a decision about something else is still reported."""
    succeeded = ctx.state.last_succeeded
    if succeeded is None or succeeded == ctx.previous.last_succeeded:
        return ""
    return f"; a batch Job succeeded at {succeeded:%Y-%m-%d %H:%M} UTC"


def _failed_in(ctx: _Context, span: WindowSpan) -> bool:
    failed = ctx.state.last_failed
    return failed is not None and failed >= span.start


def _queue_text(ctx: _Context) -> str:
    depth = ctx.observed.queue_depth
    if depth is None:
        return ""
    if not math.isfinite(depth):  # informative only: said, never decided on
        return f"; queue depth not shown (the query returned {number_text(depth)})"
    return f"; queue depth {round(depth, 1):g}"


def _wait(ctx: _Context, message: str) -> Decision:
    """Nothing new in batch; keep the last batch reason so no Event is posted."""
    last = ctx.previous.last_reason
    reason = last if last in _BATCH_REASONS else Reason.MOVED_TO_BATCH
    assert reason is not None
    event_type = EventType.WARNING if reason is Reason.BATCH_JOB_FAILED else EventType.NORMAL
    return _decision(
        ctx, Action.WAIT, Phase.BATCH, reason, event_type, message, desired_replicas=ctx.warm
    )


# -------------------------------------------------------------------------------------------
# building decisions
# -------------------------------------------------------------------------------------------


def _restore(
    ctx: _Context,
    action: Action,
    phase: Phase,
    reason: Reason,
    event_type: EventType,
    why: str,
) -> Decision:
    """Scale back to the recorded original replicas and forget the batch hold."""
    original = ctx.state.original_replicas
    assert original is not None
    state = replace(
        ctx.state,
        original_replicas=None,
        baseline_utilization=None,
        batch_since=None,
        planned_hold=None,
        # replicas_per_demand is kept: the lookback after the restore still covers held hours
        # (_demand_ratio); the next move records it again.
        restored_at=ctx.now,
    )
    return _decision(
        replace(ctx, state=state),
        action,
        phase,
        reason,
        event_type,
        f"{ctx.deployment} {ctx.observed.replicas} -> {original}; {why}" + _news_of_success(ctx),
        desired_replicas=original,
        actuate=True,
    )


def _decision(
    ctx: _Context,
    action: Action,
    phase: Phase,
    reason: Reason,
    event_type: EventType,
    details: str,
    *,
    desired_replicas: int | None = None,
    job_name: str | None = None,
    actuate: bool | None = None,
) -> Decision:
    # Acting needs Enforce; restoring what the operator itself scaled down does not.
    acts = desired_replicas is not None or job_name is not None
    if actuate is None:
        actuate = acts and ctx.spec.mode is Mode.ENFORCE
    # The reason has its own column in `kubectl describe` and status: not repeated here.
    message = details
    per_request = _cost_per_request(ctx, phase, reason)
    if per_request is not None:
        message += "; " + per_request.format(ctx.spec.costs.currency)
    if len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 3] + "..."
    return Decision(
        action=action,
        phase=phase,
        reason=reason,
        message=message,
        event_type=event_type,
        actuate=actuate,
        desired_replicas=None if desired_replicas is None else max(desired_replicas, 0),
        job_name=job_name,
        breakdown=ctx.breakdown,
        inputs=_inputs(ctx),
        state=ctx.state,
        evaluated_at=ctx.now,
        job_work_replica_hours=None if job_name is None else _work_for_job(ctx),
        learned=ctx.learned,
        plan=ctx.plan,
        backlog=ctx.backlog if ctx.state.holding else None,
        async_breakdown=ctx.async_breakdown,
        cost_per_request=per_request,
    )


def _cost_per_request(ctx: _Context, phase: Phase, reason: Reason) -> CostPerRequest | None:
    """Measured now, and forecast for the mode decided (or recommended)."""
    if ctx.spec.metrics.requests is None:
        return None
    savings: float | None = None
    if phase is Phase.ASYNC or reason is Reason.ASYNC_RECOMMENDED:
        mode, chosen = Phase.ASYNC, ctx.async_breakdown
        savings = None if chosen is None else chosen.savings
    elif phase is Phase.BATCH or reason is Reason.BATCH_RECOMMENDED or ctx.state.holding:
        mode = Phase.BATCH
        savings = None if ctx.breakdown is None else ctx.breakdown.savings
    else:
        mode = Phase.REALTIME
    return cost_per_request(
        ctx.spec.costs,
        requests_unit=ctx.spec.metrics.requests_unit,
        requests_per_second=ctx.observed.requests,
        current_replicas=ctx.observed.replicas,
        replicas=ctx.replicas,
        mode=mode,
        savings_per_day=savings,
    )


def _work_for_job(ctx: _Context) -> float | None:
    """The work the window's Job is given: everything that arrived while held, before the
    window ends: replicas * utilization * hours held, from the move (or the start of the
    daily held interval) to the end of the window."""
    held_from = ctx.window.end - timedelta(hours=ctx.held_hours)
    plan = ctx.plan
    if plan is not None:
        held_from = plan.start
    since = ctx.state.batch_since
    if since is not None and since > held_from:
        held_from = since
    if plan is not None and ctx.forecast is not None:
        return round(ctx.forecast.arrived(held_from, min(plan.end, ctx.window.end)), 4)
    if ctx.replicas is None or ctx.utilization is None:
        return None
    hours = max((ctx.window.end - held_from).total_seconds() / 3600, 0.0)
    return round(ctx.replicas * ctx.utilization * hours, 4)


def _inputs(ctx: _Context) -> Inputs:
    breakdown = ctx.breakdown
    age = ctx.observed.metrics_age
    return Inputs(
        replicas=ctx.replicas,
        current_replicas=ctx.observed.replicas,
        warm_replicas=ctx.warm,
        utilization=ctx.utilization,
        queue_depth=_finite_or_none(ctx.observed.queue_depth),
        demand=_usable_demand(ctx.observed),
        work_replica_hours=None if breakdown is None else round(breakdown.work_replica_hours, 4),
        batch_pod_hours=None if breakdown is None else round(breakdown.batch_pod_hours, 4),
        parallel_pods=ctx.pods,
        window_hours=_hours(ctx.window.length),
        wait_hours=_hours(ctx.wait),
        acceptable_delay_hours=_hours(ctx.spec.latency.acceptable_delay.timedelta),
        held_hours_per_day=round(ctx.held_hours, 4),
        metrics_age_seconds=None if age is None else age.total_seconds(),
        batch_efficiency=_rounded(ctx.learned.batch_efficiency.value),
        retry_rate=_rounded(ctx.learned.retry_rate.value),
    )


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 4)


def _rounded(value: float) -> float:
    """Four decimals, or four significant digits for a value they would show as 0: the
    efficiency the formula used is 1e-06, never a 0 that reads like a division by zero."""
    rounded = round(value, 4)
    return float(f"{value:.4g}") if value and not rounded else rounded


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _finish(ctx: _Context, decision: Decision) -> Decision:
    """Record the decision in the state, mark whether it is news, attach conditions."""
    previous = ctx.previous
    noteworthy = decision.reason is not previous.last_reason or (
        decision.action is not previous.last_action and decision.action is not Action.WAIT
    )
    state = replace(
        decision.state,
        phase=decision.phase,
        last_action=decision.action,
        last_reason=decision.reason,
    )
    if state.holding and decision.plan is not None:
        # Held into the next window's hold: that one is kept until it ends, as at a move.
        state = replace(state, planned_hold=(decision.plan.start, decision.plan.end))
    elif not state.holding:
        # As status records it (status.batch.plannedHold) and the next evaluation reads it.
        plan = decision.plan
        state = replace(state, planned_hold=None if plan is None else (plan.start, plan.end))
    waiting = state.waiting_hold
    window = None
    if waiting is not None:
        window = current_or_next_window(ctx.spec.batch.window, waiting[1])
    decision = replace(decision, state=state, noteworthy=noteworthy, waiting_window=window)
    return replace(decision, conditions=_conditions(ctx, decision))


def _conditions(ctx: _Context, decision: Decision) -> tuple[ConditionReport, ...]:
    ready = decision.phase is not Phase.BLOCKED and decision.reason is not (
        Reason.METRICS_UNAVAILABLE
    )
    owner = bool(ctx.spec.owner.strip())
    breakdown: CostBreakdown | AsyncBreakdown | None = decision.breakdown
    if decision.about_async and decision.async_breakdown is not None:
        breakdown = decision.async_breakdown
    if breakdown is None:
        savings = ConditionReport(
            ConditionType.SAVINGS_POSITIVE, "Unknown", "SavingsUnknown", ctx.savings_text
        )
    else:
        positive = breakdown.savings > 0
        savings = ConditionReport(
            ConditionType.SAVINGS_POSITIVE,
            _bool(positive),
            "SavingsPositive" if positive else Reason.SAVINGS_NEGATIVE,
            breakdown.format(ctx.spec.costs.currency),
        )
    holding = decision.state.holding
    if decision.state.in_async:
        actuated = ConditionReport(
            ConditionType.ACTUATED,
            "True",
            "HoldingAsync",
            f"{ctx.deployment} scaled by scaledobject/{scaled_object_name(ctx.state.name)} "
            f"between {ctx.warm} and {decision.state.original_replicas}, restores to "
            f"{decision.state.original_replicas}",
        )
    else:
        actuated = ConditionReport(
            ConditionType.ACTUATED,
            _bool(holding),
            "HoldingBatch" if holding else "NotHolding",
            f"{ctx.deployment} held at {ctx.warm}, restores to {decision.state.original_replicas}"
            if holding
            else f"{ctx.deployment} replicas are not managed by this placement",
        )
    return (
        ConditionReport(
            ConditionType.READY,
            _bool(ready),
            "Evaluated" if ready else decision.reason,
            decision.message,
        ),
        ConditionReport(
            ConditionType.OWNER_RECORDED,
            _bool(owner),
            "OwnerSet" if owner else Reason.OWNER_MISSING,
            f"owner {ctx.spec.owner}" if owner else "spec.owner is empty",
        ),
        ConditionReport(
            ConditionType.METRICS_AVAILABLE,
            _bool(ctx.metrics_problem is None),
            "MetricsFresh" if ctx.metrics_problem is None else Reason.METRICS_UNAVAILABLE,
            ctx.metrics_problem or "utilization query returned a fresh sample in [0,1]",
        ),
        savings,
        actuated,
        ConditionReport(
            ConditionType.FALLBACK_ACTIVE,
            _bool(decision.phase is Phase.FALLBACK),
            decision.reason if decision.phase is Phase.FALLBACK else "NoFallback",
            decision.message if decision.phase is Phase.FALLBACK else "",
        ),
    )


def _bool(value: bool) -> str:
    return "True" if value else "False"
