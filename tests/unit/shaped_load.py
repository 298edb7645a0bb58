"""The shaped day the hold tests share: the example placement (tests/unit/factories.py: 4
replicas, window 01:00-05:00 UTC) with 4 parallel pods, demand and queue depth configured; a
load of 0.1 of the fleet 05:00-13:00 and 0.9 otherwise; its history; and a placement evaluated
by the pure core with its status kept between evaluations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from placement.core.api import WorkloadPlacementSpec, WorkloadPlacementStatus
from placement.core.observation import LoadHistory
from placement.core.policy import Decision, JobObservation, Observed, decide
from placement.core.status import build_status, state_from_status

NAME = "summarizer"
JOB = "summarizer-20261122-0100"
SPEC = {
    "batch.jobTemplate.spec.parallelism": 4,
    "metrics.demand": "sum(rate(requests_total[5m]))",
    "metrics.queueDepth": "sum(queue_items)",
}
PER_REPLICA = 1000.0  # demand one busy replica serves


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def day_load(moment: datetime) -> float:
    return 0.1 if 5 <= moment.hour < 13 else 0.9


def history(
    now: datetime, *, load: Callable[[datetime], float] = day_load, days: int = 14
) -> LoadHistory:
    """`days` (fourteen) days of the shaped load (or `load`) as demand, 5-minute samples."""
    samples, moment = [], now - timedelta(days=days)
    while moment < now:
        samples.append((moment, load(moment) * 4 * PER_REPLICA))
        moment += timedelta(minutes=5)
    return LoadHistory("demand", timedelta(minutes=5), tuple(samples), fetched_at=now)


def varying_history(now: datetime) -> LoadHistory:
    """The shaped load 1.2x and 0.8x on alternate days: the days' totals vary by 20%, so a
    plan fits HOLD_MARGIN (0.8) of the window, not STEADY_MARGIN."""
    samples, moment = [], now - timedelta(days=14)
    while moment < now:
        busy = (moment - timedelta(hours=5)).toordinal() % 2
        samples.append((moment, day_load(moment) * (1.2 if busy else 0.8) * 4 * PER_REPLICA))
        moment += timedelta(minutes=5)
    return LoadHistory("demand", timedelta(minutes=5), tuple(samples), fetched_at=now)


@dataclass
class ShapedPlacement:
    spec: WorkloadPlacementSpec
    stored: dict[str, Any] = field(default_factory=dict)
    held_work: float = 0.0  # replica-hours queued for the Job (what queueDepth reads)
    history: Callable[[datetime], LoadHistory] = history
    load: Callable[[datetime], float] = day_load

    def evaluate(
        self, now: datetime, *, held: bool, jobs: tuple[JobObservation, ...] = ()
    ) -> Decision:
        previous = WorkloadPlacementStatus.model_validate(self.stored) if self.stored else None
        state = state_from_status(NAME, previous)
        load = self.load(now)
        observed = Observed(
            replicas=0 if held else 4,
            utilization=None if held else load,
            demand=load * 4 * PER_REPLICA,
            queue_depth=self.held_work * 3600 * PER_REPLICA,
            backlog_metrics=True,
            history=self.history(now),
            jobs=jobs,
        )
        decision = decide(self.spec, observed, state, now=now)
        status = build_status(decision, previous, generation=1)
        self.stored = status.model_dump(by_alias=True, mode="json", exclude_none=True)
        return decision
