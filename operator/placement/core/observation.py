"""What one evaluation sees, as one immutable snapshot: the target Deployment, the
Deployments this placement holds, its Jobs, the autoscalers on the target and the metrics with
their sample time. The adapters fill it once; `reconcile` decides from it alone. Pure.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:
    # Only a type here: the decision (policy) reads LoadHistory through the forecast, so a
    # runtime import of policy would be a cycle.
    from placement.core.policy import JobObservation


class Outcome(StrEnum):
    OK = "ok"
    EMPTY = "empty"
    SEVERAL_SERIES = "several-series"
    NOT_A_NUMBER = "not-a-number"
    OUT_OF_RANGE = "out-of-range"
    STALE = "stale"
    ERROR = "error"
    TIMEOUT = "timeout"
    TOO_LARGE = "too-large"


@dataclass(frozen=True)
class Reading:
    """One metric as the policy sees it: a trusted value, or why there is none."""

    name: str
    query: str
    outcome: Outcome
    value: float | None = None
    detail: str = ""
    # When Prometheus evaluated the sample (its timestamp); a shared result read from the
    # batched reader's cache is as old as that read.
    sampled_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    def describe(self) -> str:
        if self.ok:
            return f"{self.name} = {self.value:.4g}"
        return f"{self.name} query {self.outcome.value}: {self.detail}"

    def age(self, now: datetime) -> timedelta | None:
        """How old the sample is at `now` (never negative: clocks of two hosts differ)."""
        if self.sampled_at is None:
            return None
        return max(now - self.sampled_at, timedelta(0))


_SECONDS_PER_HOUR = 3600


class GridSamples(Sequence[tuple[datetime, float]]):
    """One series of a range query on its even step grid, as floats: 8 bytes a sample where
    (time, value) pairs take about 80, so a placement's 14 days at 5 minutes stay 32 KB. The
    adapter keeps one per placement between refreshes and every evaluation reads it without
    a copy; the forecast remembers what it learned from it while it lives (see
    forecast._digest). Finite, non-negative values only (a load); where the grid has gaps,
    `offsets` holds each value's place on the grid (from `start`)."""

    __slots__ = ("__weakref__", "offsets", "start", "step", "values")

    def __init__(
        self, start: float, step: float, values: array[float], offsets: array[int] | None = None
    ) -> None:
        self.start = start  # epoch seconds of the first value
        self.step = step  # seconds between grid points
        self.values = values
        self.offsets = offsets  # None: one value at every grid point

    def moment(self, index: int) -> datetime:
        place = index if self.offsets is None else self.offsets[index]
        return datetime.fromtimestamp(self.start + place * self.step, UTC)

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, index: int) -> tuple[datetime, float]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[datetime, float]]: ...

    def __getitem__(
        self, index: int | slice
    ) -> tuple[datetime, float] | list[tuple[datetime, float]]:
        if isinstance(index, slice):
            return [(self.moment(i), self.values[i]) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("sample index out of range")
        return self.moment(index), self.values[index]

    def __iter__(self) -> Iterator[tuple[datetime, float]]:
        return iter(self[:])

    def hour_means(self, first: int = 0, last: int | None = None) -> dict[int, float]:
        """The mean of each UTC hour's samples among self[first:last], keyed by hours since
        the epoch (as forecast._hourly of the pairs): each hour's run found by arithmetic,
        not a datetime per sample, which was most of the cost of learning 14 days."""
        last = len(self) if last is None else last
        hourly = {}
        values, offsets, step = self.values, self.offsets, self.step
        index = first
        while index < last:
            place = index if offsets is None else offsets[index]
            key = int((self.start + place * step) // _SECONDS_PER_HOUR)
            # The grid place of the next hour's first instant, and the index it is found at.
            bound = math.ceil(((key + 1) * _SECONDS_PER_HOUR - self.start) / step)
            end = min(bound, last) if offsets is None else bisect_left(offsets, bound, index, last)
            mean = sum(values[index:end]) / (end - index)  # finite, never negative
            if mean < math.inf:  # not a sum that overflows
                hourly[key] = mean
            index = end
        return hourly

    def hourly(self) -> GridSamples:
        """The hour means as samples of their own, one at each hour's start: 24 a day where
        5-minute samples are 288 (what the forecast learns from is the same, see hour_means)."""
        hourly = self.hour_means()
        if not hourly:
            return GridSamples(0.0, _SECONDS_PER_HOUR, array("d"))
        keys = list(hourly)  # in time order
        values = array("d", hourly.values())
        first = keys[0]
        gaps = len(keys) != keys[-1] - first + 1
        offsets = array("I", (key - first for key in keys)) if gaps else None
        return GridSamples(first * _SECONDS_PER_HOUR, _SECONDS_PER_HOUR, values, offsets)

    def since(self, moment: float) -> GridSamples:
        """The samples at or after `moment` (epoch seconds), sharing nothing with self."""
        start = bisect_left(self, moment, key=lambda sample: sample[0].timestamp())
        if self.offsets is None:
            return GridSamples(self.start + start * self.step, self.step, self.values[start:])
        if start >= len(self):
            return GridSamples(self.start, self.step, array("d"))
        base = self.offsets[start]
        offsets = array("I", (place - base for place in self.offsets[start:]))
        return GridSamples(self.start + base * self.step, self.step, self.values[start:], offsets)

    def zero_share(self) -> float | None:
        """The share of the samples at zero (no load then); None without samples."""
        return self.values.count(0.0) / len(self.values) if self.values else None


@dataclass(frozen=True)
class LoadHistory:
    """The placement's own load over the past days as Prometheus recorded it (one range
    query, refreshed far less often than every evaluation): what the forecast learns the
    daily and weekly shape from."""

    source: str  # "demand" or "utilization": the query it came from
    step: timedelta  # between samples
    # Oldest first; finite values only. The operator's are GridSamples, shared by every
    # evaluation until the next refresh; a replay's and a test's, a tuple.
    samples: Sequence[tuple[datetime, float]]
    fetched_at: datetime  # when it was read (its age decides the next refresh)
    # The operator keeps hour means as `samples` (a 14-day history in 3 KB, not 32) and, at
    # the step it read, only the newest hours, for what needs them (backlog._earlier_rate),
    # and the share of samples at zero (idle hours). None: `samples` are as read.
    recent: LoadHistory | None = None
    zero_share: float | None = None

    def as_read(self) -> LoadHistory:
        """The newest samples at the step they were read at (all of them, without `recent`)."""
        return self.recent if self.recent is not None else self


@dataclass(frozen=True)
class ScaledObjectHolder:
    """Whose a ScaledObject is, read fresh by its name: its placement label ("" none) and
    its resourceVersion, the precondition for applying over it (one replaced since the read
    is then a conflict, not taken over)."""

    placement: str
    resource_version: str | None = None


@dataclass(frozen=True)
class ScaledObjectState:
    """The KEDA ScaledObject this operator created for a placement (by label)."""

    name: str
    deployment: str  # its scaleTargetRef
    min_replicas: int | None
    max_replicas: int | None
    ready: bool | None = None  # its Ready condition; None: not reported yet
    active: bool | None = None  # its Active condition (queue above activation)
    resource_version: str | None = None


@dataclass(frozen=True)
class DeploymentState:
    name: str
    replicas: int
    original_replicas: int | None  # what the operator recorded before scaling down
    managed_by: str | None  # the placement that scaled it, if any
    held_since: datetime | None = None
    baseline_utilization: float | None = None
    # The version read: a hold is taken only on the Deployment as it was read (see
    # scale_for_batch), so two placements cannot both take it.
    resource_version: str | None = None

    def forgotten(self) -> DeploymentState:
        """As it reads after its hold annotations are dropped (replicas kept)."""
        return DeploymentState(
            name=self.name,
            replicas=self.replicas,
            original_replicas=None,
            managed_by=None,
            resource_version=self.resource_version,
        )


@dataclass(frozen=True)
class Observation:
    """Everything one evaluation of one placement reads, read once."""

    deployment: DeploymentState | None  # the target; None: it does not exist
    # Deployments whose hold annotations name this placement (found by the hold label, plus
    # the target when it carries the annotations), whether or not their count is valid.
    claimed: tuple[DeploymentState, ...] = ()
    jobs: tuple[JobObservation, ...] = ()  # the placement's Jobs (by label)
    autoscalers: tuple[str, ...] = ()  # e.g. "HorizontalPodAutoscaler/summarizer"
    # Whether the placement named by another placement's hold on the target still exists;
    # None when no other placement holds it.
    other_holder_exists: bool | None = None
    utilization: Reading | None = None  # None: not read (no Deployment)
    queue_depth: Reading | None = None  # None: not configured, or not read
    demand: Reading | None = None  # metrics.demand; None: not configured, or not read
    requests: Reading | None = None  # metrics.requests; None: not configured, or not read
    async_queue: Reading | None = None  # async.queue; None: not configured, or not read
    # metrics.history of demand (else utilization); None: not read yet, or failed.
    history: LoadHistory | None = None
    # The ScaledObject this operator owns for the placement; None: there is none.
    scaled_object: ScaledObjectState | None = None
    # The placement label ("" none) of a ScaledObject with the placement's name that is not
    # its own, as the watch cache saw it; None: none seen (or no cache to ask).
    scaled_object_taken: str | None = None
    # An HPA named as KEDA would name the placement's (keda-hpa-<ScaledObject>) that KEDA did
    # not make for it, as the watch cache saw it ("HorizontalPodAutoscaler/<name> ..."): KEDA
    # would take it over. None: none seen (or no cache to ask).
    keda_hpa_taken: str | None = None
    # Whether KEDA's ScaledObject CRD is served (async needs it); None: not looked up.
    keda_installed: bool | None = None

    def held(self) -> tuple[DeploymentState, ...]:
        """The claimed Deployments with a valid count to restore."""
        return tuple(d for d in self.claimed if d.original_replicas is not None)
