"""The load expected in each hour until a moment, from the placement's own history. Pure.

Interface agreed between the planner (policy) and the forecast's internals (issue 12): the
planner calls `forecast_load` and reads `Forecast.load`/`Forecast.work`; nothing else. This
first version only falls back to the lookback average; the history-based one (hour of day,
weekday where the history shows a weekly shape, quantiles rather than means) replaces
`forecast_load`'s body without changing its signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from placement.core.observation import LoadHistory

HOUR = timedelta(hours=1)
HIGH_QUANTILE = 0.9  # what "the work fits" is checked against: bursts are not averaged away


@dataclass(frozen=True)
class HourForecast:
    """The load expected in one hour, in the history's unit (utilization, or demand per
    second): typical (median) and high (HIGH_QUANTILE) of what comparable hours saw."""

    start: datetime  # aware, UTC, on the hour
    typical: float
    high: float


@dataclass(frozen=True)
class Forecast:
    """Hour by hour from the hour holding `now` until `until`."""

    source: str  # "utilization" | "demand": the unit of every figure
    basis: str  # how it was made, for messages: "lookback average (history 2h < 1d)"
    hours: tuple[HourForecast, ...]
    from_history: bool  # False: the lookback fallback

    def load(self, moment: datetime, *, high: bool = False) -> float:
        """The load expected in the hour holding `moment` (the last hour's beyond the end)."""
        chosen = self.hours[-1] if self.hours else None
        for hour in self.hours:
            if hour.start <= moment < hour.start + HOUR:
                chosen = hour
                break
        if chosen is None:
            return 0.0
        return chosen.high if high else chosen.typical

    def work(self, start: datetime, end: datetime, *, high: bool = False) -> float:
        """The load summed over [start, end), in unit-hours (e.g. utilization x hours)."""
        total = 0.0
        for hour in self.hours:
            overlap = min(end, hour.start + HOUR) - max(start, hour.start)
            if overlap > timedelta(0):
                total += (hour.high if high else hour.typical) * (overlap / HOUR)
        return total


def forecast_load(
    history: LoadHistory | None,
    *,
    now: datetime,
    until: datetime,
    zone: ZoneInfo,
    fallback: float | None,
    source: str = "utilization",
) -> Forecast:
    """The expected load per hour over [hour of now, until). `fallback` is the lookback
    average (the instant reading), used while the history is short or missing; `zone` is the
    window's time zone, whose wall clock the daily shape follows (DST included)."""
    start = now.replace(minute=0, second=0, microsecond=0)
    value = fallback if fallback is not None else 0.0
    hours: list[HourForecast] = []
    moment = start
    while moment < until:
        hours.append(HourForecast(start=moment, typical=value, high=value))
        moment += HOUR
    length = len(history.samples) if history is not None else 0
    basis = f"lookback average (history {length} samples, shape not learned yet)"
    return Forecast(source=source, basis=basis, hours=tuple(hours), from_history=False)
