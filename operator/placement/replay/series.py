"""A recorded series of observations, the input of `placement replay`. Pure (CSV text in and out).

    timestamp,replicas,utilization,queue_depth,job_outcome
    2026-11-23T00:00:00Z,6,0.1532,,
    2026-11-23T00:05:00Z,6,0.1611,120.0,failed

- timestamp: ISO 8601 (a missing offset means UTC) or Unix seconds; strictly increasing.
- replicas: the realtime Deployment's replicas when realtime (what it would run without the
  operator).
- utilization: useful work over capacity of that fleet, in [0,1], as the placement's
  `metrics.utilization` query would return it at that moment (not yet averaged).
- queue_depth (optional): work waiting, shown in decisions.
- job_outcome (optional): `failed` makes a batch Job running at that moment fail there.
  Empty or `succeeded`: Jobs finish when their work is done.
- requests (optional): requests (or tokens, metrics.requestsUnit) arriving per second, for
  the cost per 1,000 requests (or 1M tokens).

Each row stands for the time until the next one (the last for the median step).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

COLUMNS = ("timestamp", "replicas", "utilization", "queue_depth", "job_outcome", "requests")
JOB_FAILED = "failed"
_OUTCOMES = {"", "succeeded", JOB_FAILED}


class SeriesError(ValueError):
    """A series that cannot be replayed; the message names the row and the column."""


@dataclass(frozen=True)
class Sample:
    at: datetime  # aware, UTC
    replicas: int
    utilization: float
    queue_depth: float | None = None
    job_outcome: str | None = None  # "failed": a running batch Job fails now
    requests: float | None = None  # per second (metrics.requests)

    @property
    def job_fails(self) -> bool:
        return self.job_outcome == JOB_FAILED


def parse_series(text: str) -> list[Sample]:
    """Samples from CSV text with a header naming at least timestamp, replicas, utilization."""
    reader = csv.DictReader(io.StringIO(text))
    missing = {"timestamp", "replicas", "utilization"} - set(reader.fieldnames or ())
    if missing:
        raise SeriesError(f"the header lacks {', '.join(sorted(missing))}")
    samples: list[Sample] = []
    for line, row in enumerate(reader, start=2):
        sample = _sample(row, line)
        if samples and sample.at <= samples[-1].at:
            raise SeriesError(f"row {line}: timestamp {sample.at.isoformat()} is not increasing")
        samples.append(sample)
    if len(samples) < 2:
        raise SeriesError("a series needs at least two rows")
    return samples


def _sample(row: dict[str, str], line: int) -> Sample:
    def field(name: str) -> str:
        return (row.get(name) or "").strip()

    try:
        at = parse_time(field("timestamp"))
    except ValueError as error:
        raise SeriesError(f"row {line}: timestamp: {error}") from error
    try:
        replicas = int(field("replicas"))
        utilization = float(field("utilization"))
        queue = float(field("queue_depth")) if field("queue_depth") else None
        requests = float(field("requests")) if field("requests") else None
    except ValueError as error:
        raise SeriesError(f"row {line}: {error}") from error
    if replicas < 0:
        raise SeriesError(f"row {line}: replicas {replicas} is negative")
    if math.isnan(utilization) or not 0 <= utilization <= 1:
        raise SeriesError(f"row {line}: utilization {utilization} is outside [0,1]")
    outcome = field("job_outcome").lower()
    if outcome not in _OUTCOMES:
        raise SeriesError(f"row {line}: job_outcome {outcome!r}: use failed, succeeded or nothing")
    if requests is not None and not (math.isfinite(requests) and requests >= 0):
        raise SeriesError(f"row {line}: requests {requests} is not a rate >= 0")
    return Sample(at, replicas, utilization, queue, outcome or None, requests)


def parse_time(text: str) -> datetime:
    """ISO 8601 (no offset: UTC) or Unix seconds, as an aware UTC datetime."""
    if not text:
        raise ValueError("empty")
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):  # 1e300, inf, nan: was a traceback
            raise ValueError(f"{text} is not a time (Unix seconds out of range)") from None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_series(samples: Iterable[Sample]) -> str:
    """CSV text that parse_series reads back to the same samples."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for s in samples:
        writer.writerow(
            [
                s.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                s.replicas,
                f"{s.utilization:.6g}",
                "" if s.queue_depth is None else f"{s.queue_depth:.6g}",
                s.job_outcome or "",
                "" if s.requests is None else f"{s.requests:.6g}",
            ]
        )
    return out.getvalue()


def join_series(
    utilization: Sequence[tuple[datetime, float]],
    replicas: Sequence[tuple[datetime, float]] | int,
    queue_depth: Sequence[tuple[datetime, float]] = (),
) -> list[Sample]:
    """Samples from exported series (e.g. Prometheus range queries on one step): one per
    utilization point that has a replica count (a fixed count, or the latest point at or
    before it); utilization clipped to [0,1], as the operator would refuse the rest."""
    queue = dict(queue_depth)
    counts = sorted(replicas) if not isinstance(replicas, int) else []
    samples: list[Sample] = []
    position, current = 0, replicas if isinstance(replicas, int) else None
    for at, value in sorted(utilization):
        while position < len(counts) and counts[position][0] <= at:
            current = round(counts[position][1])
            position += 1
        if current is None:
            continue
        samples.append(
            Sample(
                at=at,
                replicas=int(current),
                utilization=min(max(value, 0.0), 1.0),
                queue_depth=queue.get(at),
            )
        )
    return samples


def step_hours(samples: Sequence[Sample]) -> list[float]:
    """How long each sample stands for, in hours: until the next one; the last one for the
    median step."""
    gaps = [(b.at - a.at).total_seconds() / 3600 for a, b in itertools.pairwise(samples)]
    return [*gaps, statistics.median(gaps)]
