"""The daily savings formula (DESIGN.md). Pure arithmetic: no I/O, no clock.

    savings = realtime capacity avoided - batch processing - (data staging + retries + operations)

Every term is kept, because users are shown every term, never only the total.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from placement.api import CostsSpec, JobTemplate

HOURS_PER_DAY = 24
RUNS_PER_DAY = 1  # one batch window per day, one Job per window


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

    @property
    def savings(self) -> float:
        return (
            self.capacity_avoided
            - self.batch_processing
            - self.data_staging
            - self.retries
            - self.operations
        )

    def format(self, currency: str) -> str:
        """'saves 41.20 USD/day = capacity avoided 98.40 - batch 43.10 - ...'."""
        verb = "saves" if self.savings >= 0 else "loses"
        return (
            f"{verb} {abs(self.savings):.2f} {currency}/day = "
            f"capacity avoided {self.capacity_avoided:.2f}"
            f" - batch {self.batch_processing:.2f}"
            f" - staging {self.data_staging:.2f}"
            f" - retries {self.retries:.2f}"
            f" - operations {self.operations:.2f}"
        )

    def rounded(self) -> dict[str, float]:
        """The five terms in API field names, to the cent (for status and explain)."""
        return {
            "capacityAvoided": round(self.capacity_avoided, 2),
            "batchProcessing": round(self.batch_processing, 2),
            "dataStaging": round(self.data_staging, 2),
            "retries": round(self.retries, 2),
            "operations": round(self.operations, 2),
        }


def daily_costs(
    costs: CostsSpec,
    *,
    replicas: int,
    warm_replicas: int,
    utilization: float,
    runs_per_day: int = RUNS_PER_DAY,
) -> CostBreakdown:
    """Apply the formula. `utilization` is useful work over capacity, in [0, 1]."""
    # With fewer replicas than warmReplicas nothing can be avoided; never a negative saving
    # from this term (the batch terms still count).
    avoidable_replicas = max(replicas - warm_replicas, 0)
    capacity_avoided = avoidable_replicas * costs.realtime_replica_hourly * HOURS_PER_DAY
    # All measured work is charged to batch even when warm replicas keep serving some of it:
    # conservative on purpose, it can only understate savings.
    work_replica_hours = replicas * utilization * HOURS_PER_DAY
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
    )


def parallel_pods(costs: CostsSpec, job_template: JobTemplate) -> int:
    """Batch pods that may run at once: the smaller of the declared limits, else 1."""
    limits = [
        limit
        for limit in (costs.max_parallel_pods, job_template.spec.parallelism)
        if limit is not None
    ]
    return min(limits, default=1)


def batch_duration(batch_pod_hours: float, pods: int) -> timedelta:
    """Wall-clock time the day's batch work needs with `pods` running at once."""
    return timedelta(hours=batch_pod_hours / pods)


def fits_window(batch_pod_hours: float, pods: int, window_length: timedelta) -> bool:
    """batch pod-hours / parallel pods <= window length."""
    return batch_duration(batch_pod_hours, pods) <= window_length
