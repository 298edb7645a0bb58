"""Asynchronous serving: what it saves, when it fits, and whether it beats batch. Pure.

    async savings = capacity avoided - queue - operations
    capacity avoided = (replicas - expected async replicas) * realtimeReplicaHourly * 24

Work. The realtime fleet does `replicas * utilization` replicas' worth of useful work (the
work replicas); over a day that is `work replicas * 24` replica-hours, as the batch formula
counts it. Queued work keeps replicas at `async.targetUtilization`, and KEDA runs whole
replicas between warmReplicas and the original count, so while work arrives the fleet is
`ceil(work replicas / targetUtilization)` bounded by [warmReplicas, replicas]. In the hours
when no work arrives at all (the share of the placement's history at zero) it runs
warmReplicas. The day's work is not made smaller by those hours: it is concentrated into the
busy ones (`work replicas * 24 / busy hours`), which can only understate the savings. Without
a history no idle hour is assumed.

The queue (costs.queuePerDay) is charged to async only; operations (costs.operationsPerDay)
to whichever of batch or async runs.

Choosing. Async fits when latency.acceptableDelay is longer than async.scaleUpTime (a request
arriving at an empty fleet must still be answered in time) and the queue can be read (KEDA's
trigger acts on it) and KEDA is installed. When both batch and async pay and fit, the one
that saves more wins; on a tie (to the cent) async wins: the same money, and results within
minutes instead of at the window's end, with no window to miss. Hysteresis as for batch:
moving needs savings > costs.savingsMargin, staying only savings >= 0; and between two
recommendations the one made last is kept unless the other saves savingsMargin more.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from enum import StrEnum

from placement.core.api import AsyncSpec, CostsSpec, LatencySpec
from placement.core.costs import HOURS_PER_DAY, number_text
from placement.core.durations import format_duration
from placement.core.observation import LoadHistory
from placement.core.reasons import Reason

_CENT = 0.005  # savings closer than this are a tie


@dataclass(frozen=True)
class AsyncBreakdown:
    """Per-day amounts in the spec's currency, and the quantities they came from."""

    capacity_avoided: float
    queue: float
    operations: float
    replicas: int  # the realtime replicas the savings are measured against
    work_replicas: float  # replicas * utilization: the fleet's useful work
    busy_replicas: int  # what KEDA keeps while work arrives
    idle_hours: float  # hours a day no work arrives (warmReplicas then)
    expected_replicas: float  # the day's average

    @property
    def savings(self) -> float:
        return self.capacity_avoided - self.queue - self.operations

    def format(self, currency: str) -> str:
        """'async saves 57.40 USD/day = capacity avoided 62.40 (4 -> 1.46 replicas) - queue
        1.00 - operations 4.00'."""
        verb = "saves" if self.savings >= 0 else "loses"
        idle = f", idle {self.idle_hours:.3g}h a day" if self.idle_hours > 0 else ""
        return (
            f"async {verb} {abs(self.savings):.2f} {currency}/day = capacity avoided "
            f"{self.capacity_avoided:.2f} ({self.replicas} -> {self.expected_replicas:.3g} "
            f"replicas{idle}) - queue {self.queue:.2f} - operations {self.operations:.2f}"
        )

    def non_finite(self) -> str | None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not math.isfinite(value):
                return f"async {item.name.replace('_', ' ')} is {number_text(value)}"
        return None

    def rounded(self) -> dict[str, float | int]:
        """In API field names (status.decision.asyncBreakdown and explain)."""
        return {
            "savingsPerDay": round(self.savings, 2),
            "capacityAvoided": round(self.capacity_avoided, 2),
            "queue": round(self.queue, 2),
            "operations": round(self.operations, 2),
            "workReplicas": round(self.work_replicas, 4),
            "busyReplicas": self.busy_replicas,
            "idleHoursPerDay": round(self.idle_hours, 4),
            "expectedReplicas": round(self.expected_replicas, 4),
        }


def async_replicas(work_replicas: float, *, target: float, warm: int, maximum: int) -> int:
    """The replicas KEDA keeps for `work_replicas` of work at `target` utilization, bounded
    by [warm, maximum] (its minReplicaCount and maxReplicaCount)."""
    needed = math.ceil(max(work_replicas, 0.0) / target - 1e-9) if work_replicas > 0 else 0
    return max(min(needed, maximum), min(warm, maximum))


def async_costs(
    costs: CostsSpec,
    spec: AsyncSpec,
    *,
    replicas: int,
    warm_replicas: int,
    utilization: float,
    idle_hours: float = 0.0,
) -> AsyncBreakdown:
    """The formula (module docstring); `idle_hours` from idle_hours_of()."""
    idle = min(max(idle_hours, 0.0), HOURS_PER_DAY)
    busy_hours = HOURS_PER_DAY - idle
    work = max(replicas, 0) * utilization
    if busy_hours > 0:
        busy = async_replicas(
            work * HOURS_PER_DAY / busy_hours,
            target=spec.target_utilization,
            warm=warm_replicas,
            maximum=max(replicas, 0),
        )
    else:
        busy = min(warm_replicas, max(replicas, 0))
    resting = min(warm_replicas, max(replicas, 0))
    expected = (busy * busy_hours + resting * idle) / HOURS_PER_DAY
    avoided = (max(replicas, 0) - expected) * costs.realtime_replica_hourly * HOURS_PER_DAY
    return AsyncBreakdown(
        capacity_avoided=avoided,
        queue=costs.queue_per_day,
        operations=costs.operations_per_day,
        replicas=replicas,
        work_replicas=work,
        busy_replicas=busy,
        idle_hours=idle,
        expected_replicas=expected,
    )


def idle_hours_of(history: LoadHistory) -> float | None:
    """Hours a day with no work in the placement's load history: from the share of its
    samples at zero as read (the operator keeps hour means, whose zeros are fewer)."""
    if history.zero_share is not None:
        return HOURS_PER_DAY * history.zero_share
    return idle_hours_per_day(value for _, value in history.samples)


def idle_hours_per_day(values: Iterable[float]) -> float | None:
    """Hours a day with no work, from the placement's load history (demand or utilization
    samples at an even step): the share of samples at zero, times 24. None: no samples."""
    samples = [value for value in values if math.isfinite(value)]
    if not samples:
        return None
    idle = sum(value <= 0 for value in samples)
    return HOURS_PER_DAY * idle / len(samples)


# -- gates --------------------------------------------------------------------------------------


class QueueState(StrEnum):
    READ = "read"  # a sample
    EMPTY = "empty"  # no series: KEDA reads it as an empty queue
    FAILED = "failed"  # the query failed, or its value is no usable number
    NOT_READ = "not-read"


@dataclass(frozen=True)
class AsyncSeen:
    """What the async gates need from the observation."""

    queue: QueueState = QueueState.NOT_READ
    queue_detail: str = ""  # why it failed, or the value read
    keda_installed: bool | None = None


Verdict = tuple[Reason, str]


def scale_up_gate(latency: LatencySpec, spec: AsyncSpec) -> Verdict | None:
    delay, scale_up = latency.acceptable_delay, spec.scale_up_time
    if delay.timedelta > scale_up.timedelta:
        return None
    return Reason.SCALE_UP_TOO_SLOW, (
        f"acceptableDelay {delay} is not longer than async.scaleUpTime {scale_up} "
        f"({format_duration(scale_up.timedelta)} from an empty fleet to a serving replica)"
    )


def savings_gate(
    breakdown: AsyncBreakdown, *, margin: float, currency: str, leaning: bool
) -> Verdict | None:
    if leaning:
        if breakdown.savings >= 0:
            return None
        return Reason.SAVINGS_NEGATIVE, "async loses money"
    if breakdown.savings > margin:
        return None
    return Reason.SAVINGS_NEGATIVE, (
        f"async needs more than {margin:.2f} {currency}/day (costs.savingsMargin)"
    )


def queue_gate(seen: AsyncSeen, *, staying: bool) -> Verdict | None:
    """To move, the queue must return a sample; in async an empty result is an empty queue
    (KEDA reads it so), a failed query is not."""
    if seen.queue is QueueState.READ or (staying and seen.queue is QueueState.EMPTY):
        return None
    detail = seen.queue_detail or "not read"
    return Reason.ASYNC_QUEUE_UNAVAILABLE, f"async.queue cannot drive a scaler: {detail}"


def keda_gate(seen: AsyncSeen) -> Verdict | None:
    if seen.keda_installed is True:
        return None
    why = (
        "KEDA's ScaledObject CRD (scaledobjects.keda.sh) is not served in this cluster"
        if seen.keda_installed is False
        else "whether KEDA is installed is not known yet"
    )
    return Reason.ASYNC_NEEDS_KEDA, f"async needs KEDA: {why}"


def first_failing_gate(
    latency: LatencySpec,
    spec: AsyncSpec,
    breakdown: AsyncBreakdown | None,
    seen: AsyncSeen,
    *,
    margin: float,
    currency: str,
    leaning: bool,
    staying: bool = False,
) -> Verdict | None:
    """The async gates in order: scale-up time, savings, queue, KEDA. Losing money comes
    before what would be needed to act on it: no one installs KEDA for a loss. No
    breakdown (in async with no baseline recorded): the savings cannot be judged, so they
    never end async."""
    return (
        scale_up_gate(latency, spec)
        or (
            None
            if breakdown is None
            else savings_gate(breakdown, margin=margin, currency=currency, leaning=leaning)
        )
        or queue_gate(seen, staying=staying)
        or keda_gate(seen)
    )


def async_wins(
    async_savings: float,
    batch_savings: float,
    *,
    margin: float,
    incumbent: str | None,
) -> bool:
    """Both fit and pay: async when it saves more, or as much (to the cent). The mode
    recommended last ("async" or "batch") is kept unless the other saves `margin` more."""
    if incumbent == "batch":
        return async_savings > batch_savings + margin + _CENT
    if incumbent == "async":
        return async_savings + margin + _CENT >= batch_savings
    return async_savings + _CENT >= batch_savings
