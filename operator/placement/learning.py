"""Learning from finished batch Jobs: measured batchEfficiency and retryRate. Pure.

Every finished Job this placement created becomes a `Run`: how many pod-hours it took, how
many of them went to pods that failed, and the work the operator gave it (the annotation
`placement.runplacement.io/work-replica-hours`, set when the Job is created). From the latest
runs:

    measured batchEfficiency = sum(work of succeeded runs) / sum(their pod-hours - failed pod-hours)
    measured retryRate       = sum(failed pod-hours) / sum(pod-hours)          over every run

`batchEfficiency` is defined against the operator's own work estimate (replicas * baseline
utilization * hours held before the run), so the measured value absorbs any bias of that
estimate too: it is the number that makes the next prediction of batch pod-hours right.
Once `spec.learning.minRuns` runs back a value (succeeded runs with a work figure for the
efficiency, every finished run for the retry rate) and `useMeasured` is on, the decision uses
it instead of the declared one; status shows both side by side either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from placement.api import CostsSpec, LearningSpec

# A measured retry rate of 1 (every pod failed) is arithmetic the formula can take, but the
# declared field is [0,1): cap just below so a measured value is always a valid declaration.
MAX_RETRY_RATE = 0.99


@dataclass(frozen=True)
class Run:
    """One finished batch Job, as measured."""

    job: str
    finished_at: datetime
    succeeded: bool
    pod_hours: float
    failed_pod_hours: float
    work_replica_hours: float | None = None  # None: created before work was annotated


@dataclass(frozen=True)
class Measured:
    """One cost parameter: declared, measured (if any run backs it), and which is used."""

    declared: float
    measured: float | None
    runs: int
    in_use: bool

    @property
    def value(self) -> float:
        return self.measured if self.in_use and self.measured is not None else self.declared


@dataclass(frozen=True)
class Learned:
    batch_efficiency: Measured
    retry_rate: Measured

    @property
    def in_use(self) -> bool:
        return self.batch_efficiency.in_use or self.retry_rate.in_use

    def costs(self, declared: CostsSpec) -> CostsSpec:
        """The costs the formula uses: declared, with the measured values that are in use."""
        if not self.in_use:
            return declared
        return declared.model_copy(
            update={
                "batch_efficiency": self.batch_efficiency.value,
                "retry_rate": self.retry_rate.value,
            }
        )

    def describe(self) -> str:
        """'batchEfficiency 5.10 measured over 6 runs (declared 6)', for the messages."""
        parts = [
            f"{name} {item.value:.{digits}f} measured over {item.runs} runs "
            f"(declared {item.declared:g})"
            for name, item, digits in (
                ("batchEfficiency", self.batch_efficiency, 2),
                ("retryRate", self.retry_rate, 3),
            )
            if item.in_use
        ]
        return "; ".join(parts)


def record(runs: tuple[Run, ...], finished: Iterable[Run], keep: int) -> tuple[Run, ...]:
    """`runs` plus the finished ones not yet recorded (by Job name), oldest first, the latest
    `keep` only."""
    known = {run.job for run in runs}
    new = sorted((run for run in finished if run.job not in known), key=lambda r: r.finished_at)
    if not new:
        return runs[-keep:]
    return tuple(sorted((*runs, *new), key=lambda r: r.finished_at))[-keep:]


def learn(costs: CostsSpec, learning: LearningSpec, runs: Iterable[Run]) -> Learned:
    """Measured beside declared batchEfficiency and retryRate, and which the formula uses."""
    runs = tuple(runs)[-learning.max_runs :]
    productive = [
        run
        for run in runs
        if run.succeeded
        and run.work_replica_hours is not None
        and run.pod_hours - run.failed_pod_hours > 0
    ]
    efficiency = None
    if productive:
        work = sum(run.work_replica_hours or 0.0 for run in productive)
        hours = sum(run.pod_hours - run.failed_pod_hours for run in productive)
        efficiency = work / hours if work > 0 else None
    total_hours = sum(run.pod_hours for run in runs)
    retry = None
    if total_hours > 0:
        retry = min(sum(run.failed_pod_hours for run in runs) / total_hours, MAX_RETRY_RATE)
    return Learned(
        batch_efficiency=_measured(costs.batch_efficiency, efficiency, len(productive), learning),
        retry_rate=_measured(
            costs.retry_rate, retry, len(runs) if retry is not None else 0, learning
        ),
    )


def _measured(
    declared: float, measured: float | None, runs: int, learning: LearningSpec
) -> Measured:
    in_use = learning.use_measured and measured is not None and runs >= learning.min_runs
    return Measured(declared=declared, measured=measured, runs=runs, in_use=in_use)
