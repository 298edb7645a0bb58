"""Public LLM inference traces -> a replay series. Pure apart from reading the CSV text.

The Azure LLM inference traces (Azure Public Dataset, CC-BY 4.0) list one row per request:
TIMESTAMP, ContextTokens, GeneratedTokens, over about an hour. They become the load of a
fleet with a stated capacity:

- the trace's time axis is stretched so its span stands for `day` (24 h by default): each
  series step of e.g. 5 min covers 12.5 s of the hour-long trace, and the load per second of
  the original trace is kept, so the level stays real and only the clock is scaled;
- tokens arriving in a step queue for the fleet, which serves at most
  `replicas * capacity_per_replica` tokens/s; utilization = served / capacity (useful work,
  in [0,1]), queue_depth = tokens still waiting after the step;
- `days` repeats the day (the queue carries over), so daily windows and learning can settle.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from placement.replay.series import Sample

DAY = timedelta(days=1)


class TokenKind(StrEnum):
    TOTAL = "total"  # context + generated
    GENERATED = "generated"  # decode only
    CONTEXT = "context"  # prefill only


@dataclass(frozen=True)
class Request:
    offset: float  # seconds after the trace's first request
    context_tokens: int
    generated_tokens: int

    def tokens(self, kind: TokenKind) -> int:
        if kind is TokenKind.GENERATED:
            return self.generated_tokens
        if kind is TokenKind.CONTEXT:
            return self.context_tokens
        return self.context_tokens + self.generated_tokens


def parse_trace(text: str) -> list[Request]:
    """Requests from the Azure trace CSV (TIMESTAMP, ContextTokens, GeneratedTokens)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise ValueError("the trace has no requests")
    missing = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"} - set(rows[0])
    if missing:
        raise ValueError(f"the trace lacks the columns {', '.join(sorted(missing))}")
    # Timestamps carry seven fractional digits, one more than fromisoformat takes.
    times = [datetime.fromisoformat(row["TIMESTAMP"].strip()[:26]) for row in rows]
    first = min(times)
    requests = [
        Request(
            offset=(at - first).total_seconds(),
            context_tokens=int(row["ContextTokens"]),
            generated_tokens=int(row["GeneratedTokens"]),
        )
        for at, row in zip(times, rows, strict=True)
    ]
    return sorted(requests, key=lambda r: r.offset)


def mean_tokens_per_second(requests: Sequence[Request], kind: TokenKind) -> float:
    """The trace's mean load, in tokens per second of the original trace."""
    span = requests[-1].offset - requests[0].offset
    if span <= 0:
        raise ValueError("the trace spans no time")
    return sum(r.tokens(kind) for r in requests) / span


def trace_to_series(
    requests: Sequence[Request],
    *,
    replicas: int,
    capacity_per_replica: float,
    start: datetime,
    step: timedelta = timedelta(minutes=5),
    days: int = 1,
    day: timedelta = DAY,
    kind: TokenKind = TokenKind.TOTAL,
) -> list[Sample]:
    """The trace as the useful utilization of `replicas` replicas that each serve
    `capacity_per_replica` tokens/s, one sample per `step`, its span scaled to `day`."""
    if replicas <= 0 or capacity_per_replica <= 0:
        raise ValueError("replicas and capacity must be positive")
    if start.tzinfo is None:
        raise ValueError("start must be an aware datetime")
    span = requests[-1].offset - requests[0].offset
    if span <= 0:
        raise ValueError("the trace spans no time")
    steps_per_day = round(day / step)
    if steps_per_day < 2:
        raise ValueError("step must be shorter than half a day")
    seconds_per_step = span / steps_per_day  # original trace seconds behind one step
    arrivals = [0.0] * steps_per_day
    for request in requests:
        index = min(int(request.offset / seconds_per_step), steps_per_day - 1)
        arrivals[index] += request.tokens(kind)
    capacity = replicas * capacity_per_replica * seconds_per_step  # tokens per step
    samples: list[Sample] = []
    queue = 0.0
    for day_index in range(days):
        for index, arriving in enumerate(arrivals):
            waiting = queue + arriving
            served = min(waiting, capacity)
            queue = waiting - served
            samples.append(
                Sample(
                    at=start + day_index * day + index * step,
                    replicas=replicas,
                    utilization=round(served / capacity, 6),
                    queue_depth=round(queue, 1),
                )
            )
    return samples
