"""The daily savings formula (docs/design.md). Pure arithmetic: no I/O, no clock.

    savings = realtime capacity avoided - batch processing
              - (data staging + retries + operations + missed-window risk)

Every term is kept, because users are shown every term, never only the total.

Held hours. The delay gate lets the operator hold the Deployment scaled down only while work
arriving now would get its results within acceptableDelay D, i.e. while
windowEnd - now <= D. So each day it holds over [windowEnd - D, windowEnd) and serves
realtime the rest of the day: held_hours = min(D, 24h). Capacity is avoided, and work moves to
batch, only while held; work arriving outside that interval is served realtime as before.
With D >= 24h this is docs/design.md's formula exactly (held_hours = 24). Staging (one run a day)
and operations stay per day.

Missed-window risk: the expected cost per day of a missed window, costs.missedWindowCost x the
share of windows missed (measured from the placement's own windows once learning.minRuns are
known, costs.missedWindowRate until then) x runs per day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import timedelta

from placement.core.api import CostsSpec, JobTemplate
from placement.core.durations import format_duration

HOURS_PER_DAY = 24
RUNS_PER_DAY = 1  # one batch window per day, one Job per window
# A Job's parallelism is an int32: more pods than that never run at once, whatever a spec says.
MAX_PARALLEL_PODS = 2**31 - 1


def number_text(value: float) -> str:
    """A figure for a message, NaN and infinity included, in words a person reads (and
    never the 'nan' or 'inf' that Python would print and JSON cannot carry)."""
    if math.isnan(value):
        return "not a number"
    if math.isinf(value):
        return "-∞" if value < 0 else "∞"
    return f"{value:g}"


def as_float(count: int) -> float:
    """An integer count as a float; one beyond float range becomes infinite instead of raising
    OverflowError, so the finiteness check below names it."""
    try:
        return float(count)
    except OverflowError:
        return math.inf if count > 0 else -math.inf


@dataclass(frozen=True)
class CostBreakdown:
    """Per-day amounts in the spec's currency, plus the quantities they came from."""

    capacity_avoided: float
    batch_processing: float
    data_staging: float
    retries: float
    operations: float
    work_replica_hours: float
    batch_pod_hours: float
    held_hours: float = HOURS_PER_DAY  # hours a day the Deployment is held scaled down
    missed_window_risk: float = 0.0  # missedWindowCost x missed-window rate, per day

    @property
    def savings(self) -> float:
        return (
            self.capacity_avoided
            - self.batch_processing
            - self.data_staging
            - self.retries
            - self.operations
            - self.missed_window_risk
        )

    @property
    def held_part_of_the_day(self) -> bool:
        return self.held_hours < HOURS_PER_DAY

    def format(self, currency: str) -> str:
        """'saves 41.20 USD/day = capacity avoided 98.40 - batch 43.10 - ...'.

        When the Deployment is held only part of the day, the text says for how long:
        'saves 5.67 USD/day (held 8h a day) = ...', so the smaller terms are not a surprise.
        """
        verb = "saves" if self.savings >= 0 else "loses"
        held = (
            f" (held {format_duration(timedelta(hours=self.held_hours))} a day)"
            if self.held_part_of_the_day
            else ""
        )
        return (
            f"{verb} {abs(self.savings):.2f} {currency}/day{held} = "
            f"capacity avoided {self.capacity_avoided:.2f}"
            f" - batch {self.batch_processing:.2f}"
            f" - staging {self.data_staging:.2f}"
            f" - retries {self.retries:.2f}"
            f" - operations {self.operations:.2f}"
            f" - missed windows {self.missed_window_risk:.2f}"
        )

    def non_finite(self) -> str | None:
        """The first term (or quantity) that is not a finite number, described; None when the
        whole breakdown is finite and can be shown, compared and written to status."""
        for item in fields(self):
            value = getattr(self, item.name)
            if not math.isfinite(value):
                return f"{item.name.replace('_', ' ')} is {number_text(value)}"
        if not math.isfinite(self.savings):
            return f"savings are {number_text(self.savings)}"
        return None

    def rounded(self) -> dict[str, float]:
        """The six terms in API field names, to the cent (for status and explain)."""
        return {
            "capacityAvoided": round(self.capacity_avoided, 2),
            "batchProcessing": round(self.batch_processing, 2),
            "dataStaging": round(self.data_staging, 2),
            "retries": round(self.retries, 2),
            "operations": round(self.operations, 2),
            "missedWindowRisk": round(self.missed_window_risk, 2),
        }


def held_hours_per_day(acceptable_delay: timedelta) -> float:
    """Hours a day the Deployment is held scaled down: min(acceptableDelay, 24h).

    The delay gate passes only while windowEnd - now <= acceptableDelay, so the held interval
    is [windowEnd - acceptableDelay, windowEnd) each day (the whole day from 24h on).
    """
    return min(max(acceptable_delay.total_seconds(), 0) / 3600, HOURS_PER_DAY)


def daily_costs(
    costs: CostsSpec,
    *,
    replicas: int,
    warm_replicas: int,
    utilization: float,
    held_hours: float,
    runs_per_day: int = RUNS_PER_DAY,
    work_replica_hours: float | None = None,
) -> CostBreakdown:
    """Apply the formula. `utilization` is useful work over capacity, in [0, 1];
    `held_hours` comes from held_hours_per_day(). `work_replica_hours`, when given, is the
    work of the held hours as forecast (planning.py), instead of replicas x utilization x
    held hours."""
    # With fewer replicas than warmReplicas nothing can be avoided; never a negative saving
    # from this term (the batch terms still count).
    avoidable_replicas = as_float(max(replicas - warm_replicas, 0))
    capacity_avoided = avoidable_replicas * costs.realtime_replica_hourly * held_hours
    # All work arising while held is charged to batch even when warm replicas keep serving
    # some of it: conservative on purpose, it can only understate savings.
    if work_replica_hours is None:
        work_replica_hours = as_float(replicas) * utilization * held_hours
    batch_pod_hours = work_replica_hours / costs.batch_efficiency
    batch_processing = batch_pod_hours * costs.batch_pod_hourly
    return CostBreakdown(
        capacity_avoided=capacity_avoided,
        batch_processing=batch_processing,
        data_staging=costs.data_staging_per_run * runs_per_day,
        retries=batch_processing * costs.retry_rate,
        operations=costs.operations_per_day,
        work_replica_hours=work_replica_hours,
        batch_pod_hours=batch_pod_hours,
        held_hours=held_hours,
        # One window a day: the expected cost of missing it, per day.
        missed_window_risk=costs.missed_window_cost * costs.missed_window_rate * runs_per_day,
    )


def parallel_pods(costs: CostsSpec, job_template: JobTemplate) -> int:
    """Batch pods that may run at once: the smaller of the declared limits, else 1."""
    limits = [
        limit
        for limit in (costs.max_parallel_pods, job_template.spec.parallelism)
        if limit is not None
    ]
    return min(max(min(limits, default=1), 1), MAX_PARALLEL_PODS)


# The longest duration a timedelta holds; a run needing longer never fits any window.
_FOREVER = timedelta.max


def batch_duration(batch_pod_hours: float, pods: int) -> timedelta:
    """Wall-clock time one run (a day's held work) needs with `pods` running at once;
    `timedelta.max` when that is beyond what a timedelta holds (it fits no window)."""
    hours = batch_pod_hours / max(pods, 1)
    if not math.isfinite(hours) or hours >= _FOREVER.days * HOURS_PER_DAY:
        return _FOREVER
    return timedelta(hours=max(hours, 0.0))


def fits_window(batch_pod_hours: float, pods: int, window_length: timedelta) -> bool:
    """batch pod-hours / parallel pods <= window length."""
    return batch_duration(batch_pod_hours, pods) <= window_length
