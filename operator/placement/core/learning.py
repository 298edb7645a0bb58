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
    measured missedWindowRate = missed windows / (windows with a succeeded run + missed windows)

Once `spec.learning.minRuns` runs back a value (succeeded runs with a work figure for the
efficiency, every finished run for the retry rate) and `useMeasured` is on, the decision uses
it instead of the declared one; status shows both side by side either way. The missed-window
rate counts windows, not runs: status.batch.missedWindows against the succeeded runs kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from placement.core.api import CostsSpec, LearningSpec

# A measured retry rate of 1 (every pod failed) is arithmetic the formula can take, but the
# declared field is [0,1): cap just below so a measured value is always a valid declaration.
MAX_RETRY_RATE = 0.99


def declared_bounds(field: str) -> tuple[float, float]:
    """The closed interval CostsSpec admits for `field`, read from the model itself, so a
    measured value is bounded exactly like a declared one, whatever bounds api.py sets."""
    low, high = -math.inf, math.inf
    # Ge, Gt, Le, Lt and Interval (annotated_types) all carry these attributes.
    for constraint in CostsSpec.model_fields[field].metadata:
        if (ge := getattr(constraint, "ge", None)) is not None:
            low = max(low, float(ge))
        if (gt := getattr(constraint, "gt", None)) is not None:
            low = max(low, math.nextafter(float(gt), math.inf))
        if (le := getattr(constraint, "le", None)) is not None:
            high = min(high, float(le))
        if (lt := getattr(constraint, "lt", None)) is not None:
            high = min(high, math.nextafter(float(lt), -math.inf))
    return low, high


EFFICIENCY_BOUNDS = declared_bounds("batch_efficiency")
RETRY_RATE_BOUNDS = (
    declared_bounds("retry_rate")[0],
    min(declared_bounds("retry_rate")[1], MAX_RETRY_RATE),
)


def bounded(value: float | None, bounds: tuple[float, float]) -> float | None:
    """`value` clamped into `bounds`; None when it is no number at all (NaN).

    Clamping, not discarding: a run that did next to no work in many pod-hours really
    measured a very low efficiency, and the lowest value a person could declare says so
    (batch is priced high, the placement stays or goes back to realtime) without the
    arithmetic of 5e-324 (infinite pod-hours, NaN savings) or of 0 (division by zero)."""
    if value is None or math.isnan(value):
        return None
    low, high = bounds
    return min(max(value, low), high)


def measurable(run: Run) -> Run | None:
    """The run as learning may use it, or None. A status or Job edited by hand may carry any
    figure: pod-hours that are no finite number (or fewer than the failed ones) measure
    nothing; a work figure that is no finite, non-negative number is dropped, like that of a
    Job created before work was annotated."""
    if not (
        math.isfinite(run.pod_hours)
        and math.isfinite(run.failed_pod_hours)
        and 0 <= run.failed_pod_hours <= run.pod_hours
    ):
        return None
    work = run.work_replica_hours
    if work is not None and not (math.isfinite(work) and work >= 0):
        return replace(run, work_replica_hours=None)
    return run


def _measurable(runs: Iterable[Run]) -> list[Run]:
    return [clean for run in runs if (clean := measurable(run)) is not None]


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
    # `runs` counts the windows known (succeeded or missed), not Jobs.
    missed_window_rate: Measured | None = None

    @property
    def in_use(self) -> bool:
        missed = self.missed_window_rate is not None and self.missed_window_rate.in_use
        return self.batch_efficiency.in_use or self.retry_rate.in_use or missed

    def costs(self, declared: CostsSpec) -> CostsSpec:
        """The costs the formula uses: declared, with the measured values that are in use."""
        if not self.in_use:
            return declared
        update = {
            "batch_efficiency": self.batch_efficiency.value,
            "retry_rate": self.retry_rate.value,
        }
        if self.missed_window_rate is not None:
            update["missed_window_rate"] = self.missed_window_rate.value
        return declared.model_copy(update=update)

    def describe(self) -> str:
        """'batchEfficiency 5.10 measured over 6 runs (declared 6)', for the messages."""
        parts = [
            f"{name} {_figure(item.value, digits)} measured over {item.runs} {unit} "
            f"(declared {item.declared:g})"
            for name, item, digits, unit in (
                ("batchEfficiency", self.batch_efficiency, 2, "runs"),
                ("retryRate", self.retry_rate, 3, "runs"),
                ("missedWindowRate", self.missed_window_rate, 3, "windows"),
            )
            if item is not None and item.in_use
        ]
        return "; ".join(parts)


def _figure(value: float, digits: int) -> str:
    """Fixed decimals, except for a value they would show as 0 (an efficiency of 1e-06)."""
    text = f"{value:.{digits}f}"
    return f"{value:.{digits}g}" if value and float(text) == 0 else text


def record(runs: tuple[Run, ...], finished: Iterable[Run], keep: int) -> tuple[Run, ...]:
    """`runs` plus the finished ones not yet recorded (by Job name), oldest first, the latest
    `keep` only."""
    kept = _measurable(runs)
    known = {run.job for run in runs}
    new = sorted(
        (run for run in _measurable(finished) if run.job not in known),
        key=lambda r: r.finished_at,
    )
    if not new and kept == list(runs):
        return runs[-keep:]
    return tuple(sorted((*kept, *new), key=lambda r: r.finished_at))[-keep:]


def learn(
    costs: CostsSpec, learning: LearningSpec, runs: Iterable[Run], *, missed_windows: int = 0
) -> Learned:
    """Measured beside declared batchEfficiency, retryRate and missedWindowRate, and which
    the formula uses. `missed_windows`: status.batch.missedWindows."""
    runs = tuple(_measurable(runs))[-learning.max_runs :]
    productive = [
        run
        for run in runs
        if run.succeeded
        and run.work_replica_hours is not None
        and run.pod_hours - run.failed_pod_hours > 0
    ]
    efficiency = None
    if productive:
        # Sums of finite figures may still overflow (inf / inf is NaN): bounded() sorts it out.
        work = sum(run.work_replica_hours or 0.0 for run in productive)
        hours = sum(run.pod_hours - run.failed_pod_hours for run in productive)
        efficiency = bounded(work / hours, EFFICIENCY_BOUNDS) if work > 0 else None
    total_hours = sum(run.pod_hours for run in runs)
    retry = None
    if total_hours > 0:
        failed_hours = sum(run.failed_pod_hours for run in runs)
        retry = bounded(failed_hours / total_hours, RETRY_RATE_BOUNDS)
    return Learned(
        batch_efficiency=_measured(costs.batch_efficiency, efficiency, len(productive), learning),
        retry_rate=_measured(
            costs.retry_rate, retry, len(runs) if retry is not None else 0, learning
        ),
        missed_window_rate=_missed_window_rate(costs, learning, runs, missed_windows),
    )


def _missed_window_rate(
    costs: CostsSpec, learning: LearningSpec, runs: tuple[Run, ...], missed_windows: int
) -> Measured:
    """Missed windows over the windows known: those a run succeeded in, and those missed.
    Runs are the latest maxRuns only, while missedWindows counts every window: over a long
    life the rate leans high, never low (a missed window costs more than a saved hour)."""
    succeeded = {run.job for run in runs if run.succeeded}
    missed = max(missed_windows, 0)
    windows = len(succeeded) + missed
    rate = min(missed / windows, 1.0) if windows else None
    measured = _measured(costs.missed_window_rate, rate, windows, learning)
    # Without a cost per missed window the rate changes no figure: not said to be in use.
    return measured if costs.missed_window_cost > 0 else replace(measured, in_use=False)


def _measured(
    declared: float, measured: float | None, runs: int, learning: LearningSpec
) -> Measured:
    in_use = learning.use_measured and measured is not None and runs >= learning.min_runs
    return Measured(declared=declared, measured=measured, runs=runs, in_use=in_use)
