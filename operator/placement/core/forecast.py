"""The load expected in each hour until a moment, from the placement's own history. Pure.

Interface agreed between the planner (policy) and the forecast's internals (issue 12): the
planner calls `forecast_load` and reads `Forecast.load`/`Forecast.work` (and `Forecast.arrived`
for work already held); nothing else.

How the history becomes a forecast (each step is a function below):

0. Fallback. Fewer than MIN_HISTORY_HOURS hours with samples (short or mostly gaps), a
   newest sample older than STALE_AFTER, or no full day (step 2): the lookback average
   `fallback`, and `basis` says why ("lookback average: history 5h < 1d").
1. Hours. Samples (UTC; finite, non-negative values; up to `now`, so a replay's future is not
   read; MAX_HISTORY back from the newest) are averaged per UTC hour: an hour's mean is its
   work. Hours overlapping a `held` interval are left out. Each hour is labelled with its
   wall-clock hour and calendar day in the window's zone, so the daily shape moves with the
   clock across DST.
2. Days. A local day with at least FULL_DAY_HOURS hours is full; its level is the trimmed mean
   of its hours (the highest and lowest tenth dropped, so one burst hour does not move it).
   At least one full day is needed. A partial day (gaps, the history's ends) is given the
   level its hours show against the shape learned from the full days (step 4), then joins.
3. Weekly shape. Each weekend (Saturday, Sunday) is compared with the weekdays around it
   (Friday, Monday): nearby days, so a level shift or growth over weeks is not mistaken for a
   weekly shape. The history shows a weekly shape when at least two weekends can be compared
   (about two weeks of history) and at least WEEKLY_AGREEMENT of them differ from their
   weekdays by more than WEEKLY_RATIO, all in the same direction; or, from the first weekend
   on, when each one compared differs by more than CLEAR_WEEKLY_RATIO (a fleet idle on
   weekends is not left unheld for a second weekend). Weekends are then learned apart and
   scaled by the median weekend/weekday ratio.
4. Shape. Every hour of a full day is divided by the level at its time (its day's,
   interpolated towards the neighbouring day's, so growth within a day is not learned as a
   daily shape); per wall-clock hour (and day type with a weekly shape) the median and
   HIGH_QUANTILE of these ratios are the typical and high shape. Quantiles, not means: a
   burst is one value among many. All full days count alike: recency comes from step 5.
5. Level. The newest hours are compared with what the shape expects of them: the current
   level is the larger of the median ratio over the last RECENT_SHORT hours and over the last
   RECENT_LONG hours (weekday hours with a weekly shape). A rise shows within a few hours
   (the safe direction: an underestimate holds work that does not fit); a fall needs most of
   a day at the new level, so one quiet hour does not move a busy day's forecast. Each
   median within NOISE_BAND standard errors of the history's median day level (the error
   from the history's own hour-to-hour spread) counts as that level: on bursty load a few
   hours' median strays far from a level that does not move.
6. Growth. When the level rose on at least GROWTH_RISING of the day-to-day steps of the
   newest GROWTH_DAYS days (at least GROWTH_MIN_STEPS steps), the median step per day is
   added ahead (at most GROWTH_HORIZON_DAYS): load growing over weeks is not forecast a day
   behind, while a single step up stays the level's business.
7. Forecast hour = (level + growth ahead) x weekday/weekend factor x shape (typical, high).
8. Work over an interval at the high quantile (what a hold must fit): not the sum of each
   hour's HIGH_QUANTILE, which assumes every hour bursts at once (on bursty load about 1.4
   times what 20 hours bring on nine days out of ten). Each earlier day of the history gives
   one analog of the interval: the forecast's typical hours plus that day's deviations at the
   same wall-clock hours (contiguous, so bursts that cancel out over hours cancel out here
   too), the deviations read against the median level of the days around it (SMOOTH_DAYS), so
   a busy or a quiet day as a whole counts as one (those days moved along the growth, step 6,
   and without any more than LEVEL_SHIFT from its level: neither growth over weeks nor a
   level shift makes a day look busy or quiet). The interval's high work is the
   HIGH_QUANTILE of the analogs' totals (never below the typical sum). The analogs do not know
   how far the current level (step 5) errs: on bursty load it moves about 10% from day to day,
   which the fit margin (planning.HOLD_MARGIN) is there for. Fewer than MIN_ANALOGS analogs
   (a young history): the sum of the hours' high quantiles, as before, or the highest analog
   if above it; from MIN_YOUNG_ANALOGS on the analogs are kept (planning reads them as a
   measured spread).

The history is of demand (preferred: it does not shrink with the fleet) or of utilization,
which reads low or not at all while the fleet is held scaled down; the caller passes what it
has. Learning from 35 days at 5-minute steps takes about 8 ms of CPU, 14 days about 4 ms
(bench/forecast.py); what was learned is remembered while the history object lives, so until
the next refresh a forecast costs well under a millisecond and is built each evaluation.
"""

from __future__ import annotations

import math
import weakref
from array import array
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from operator import itemgetter
from zoneinfo import ZoneInfo

from placement.core.observation import GridSamples, LoadHistory

HOUR = timedelta(hours=1)
PAST_HOURS = 6  # hours forecast before the hour holding now: a lookback of up to 6h is covered
DAY = timedelta(days=1)
HIGH_QUANTILE = 0.9  # what "the work fits" is checked against: bursts are not averaged away

MIN_HISTORY_HOURS = 24  # fewer hours with samples: the lookback average
MAX_HISTORY = timedelta(days=35)  # older samples are not read: bounds the work per forecast
STALE_AFTER = timedelta(days=2)  # a history whose newest sample is older says little of now
FULL_DAY_HOURS = 20  # a local day with fewer hours (gaps, the history's ends) is partial
PARTIAL_DAY_HOURS = 6  # a partial day with fewer hours of expected load is not learned from
WEEKLY_RATIO = 1.5  # a weekend differs from its weekdays when one level exceeds 1.5x the other
WEEKLY_AGREEMENT = 0.75  # share of comparable weekends that must differ, the same way
MIN_WEEKENDS = 2
CLEAR_WEEKLY_RATIO = 3.0  # one weekend this far from its weekdays shows a weekly shape alone
RECENT_SHORT = 6  # newest hours whose median level shows a rise
RECENT_LONG = 24  # newest hours whose median level a fall must also show
RECENT_SPAN = timedelta(days=4)  # how far back the newest comparable hours are looked for
# A recent level within this many standard errors (of a median of that many hours, from the
# history's own hour-to-hour spread) of the history's median day level is noise: on bursty
# load the newest 6 and 24 hours read 0.62-1.54x a level that never moved (bench/
# decision_quality.py), planning holds far too short or too long for the window. At 2, six
# busy hours in a row still passed for a rise now and then (1.6x).
NOISE_BAND = 3.0
GROWTH_DAYS = 7  # newest days whose levels say whether load grows steadily
GROWTH_MIN_STEPS = 3  # fewer day-to-day steps (a young history) say nothing of growth
GROWTH_RISING = 0.8  # share of their day-to-day steps that must rise (5 of 6, 3 of 3)
GROWTH_HORIZON_DAYS = 7.0  # growth is extrapolated this far at most
ELIGIBLE = 0.1  # hours the shape expects below 10% of its peak say little about the level
MIN_ANALOGS = 5  # fewer earlier days to take an interval's total from: per-hour quantiles summed
MIN_YOUNG_ANALOGS = 3  # fewer earlier days say nothing of how steady the load is (planning)
MIN_STEPS = 12  # fewer consecutive hours say nothing of how the load moves hour to hour
SMOOTH_DAYS = 3  # the deviations are read against the median level of the days this far around
LEVEL_SHIFT = 1.5  # days whose levels lie further apart are on two sides of a level shift
ANALOG_GAPS = 0.5  # an analog missing more of the interval's hours than this share is left out

_SECONDS_PER_HOUR = 3600
_MOMENT = itemgetter(0)  # a sample's time
# Histories remembered at most: above the placements one operator evaluates, or every
# evaluation would learn its history again (entries go when their history's samples do).
_DIGESTS_SIZE = 65_536
# Each live history's digest, by (id of its samples, samples read, zone, held): see _digest.
_DIGESTS: dict[
    tuple[int, int, int, str, tuple[tuple[datetime, datetime], ...]],
    tuple[weakref.ref[object], _Digest],
] = {}
_WEEKEND = "weekend"
_WEEKDAY = "weekday"
_ANY = "any"


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
    basis: str  # how it was made, for messages: "lookback average: history 5h < 1d"
    hours: tuple[HourForecast, ...]
    from_history: bool  # False: the lookback fallback
    # Earlier days' deviations laid over these hours (step 8); None: per-hour quantiles summed.
    analogs: _Analogs | None = None
    # The PAST_HOURS before the first, oldest first: what the lookback just read is compared
    # with what was expected of those same hours (`mean_load`), not with the hour ahead.
    past: tuple[HourForecast, ...] = ()
    # How far an hour strays from its shape at its day's level (robust standard deviation, a
    # share; 0: unknown): what a few hours' level may read without the load having moved.
    spread: float = 0.0
    # How far one hour strays from the hour before it (robust, a share; None: unknown):
    # measured on a young history too, where `spread` (against a shape learned from those
    # same few days) reads near 0 whatever the load (_step_spread).
    step_spread: float | None = None
    # The load the model behind `hours` expects in any hour (None: the lookback fallback,
    # flat): hours before the first at their own day's load, for work that has arrived
    # already (`arrived`). Asked only there, so not an hour more is made each evaluation.
    expect: Callable[[datetime], HourForecast] | None = field(
        default=None, compare=False, repr=False
    )

    def arrived(self, start: datetime, end: datetime) -> float | None:
        """The typical load summed over [start, end) before the first hour (a span that has
        arrived already), each hour at its own expectation, in unit-hours; None without
        `expect`."""
        if self.expect is None or not self.hours:
            return None
        end = min(end, self.hours[0].start)
        total = 0.0
        hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        while hour < end:
            overlap = min(end, hour + HOUR) - max(start, hour)
            total += self.expect(hour).typical * (overlap / HOUR)
            hour += HOUR
        return total

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

    def mean_load(self, start: datetime, end: datetime, *, high: bool = False) -> float | None:
        """The load expected on average over [start, end), which may reach back into `past`;
        None unless the forecast's hours cover the whole span."""
        span = end - start
        total, covered = 0.0, timedelta(0)
        for hour in (*self.past, *self.hours):
            overlap = min(end, hour.start + HOUR) - max(start, hour.start)
            if overlap > timedelta(0):
                total += (hour.high if high else hour.typical) * (overlap / HOUR)
                covered += overlap
        if span <= timedelta(0) or covered < span:
            return None
        return total / (span / HOUR)

    def work(self, start: datetime, end: datetime, *, high: bool = False) -> float:
        """The load summed over [start, end), in unit-hours (e.g. utilization x hours); with
        `high`, the HIGH_QUANTILE of that sum (module docstring, step 8)."""
        return self.work_over(((start, end),), high=high)

    def work_over(self, spans: Sequence[tuple[datetime, datetime]], *, high: bool = False) -> float:
        """The load summed over several intervals (their total's quantile with `high`)."""
        weights = self._weights(spans)
        if not weights:
            return 0.0  # empty intervals (a hold that has ended): no work
        typical = sum(self.hours[index].typical * weight for index, weight in weights.items())
        if not high:
            return typical
        per_hour = sum(self.hours[index].high * weight for index, weight in weights.items())
        if self.analogs is not None:
            totals = self.analogs.totals(weights)
            if len(totals) >= MIN_ANALOGS:
                return max(_quantile(totals, HIGH_QUANTILE), typical)
            # Too few days for a quantile: the highest of them, if above the hours' summed.
            return max(per_hour, *totals)
        return per_hour

    def _weights(self, spans: Iterable[tuple[datetime, datetime]]) -> dict[int, float]:
        """The share of each forecast hour inside the intervals."""
        weights: dict[int, float] = defaultdict(float)
        for start, end in spans:
            for index, hour in enumerate(self.hours):
                overlap = min(end, hour.start + HOUR) - max(start, hour.start)
                if overlap > timedelta(0):
                    weights[index] += overlap / HOUR
        return weights


@dataclass(frozen=True)
class _Analogs:
    """Per earlier day (shift): each forecast hour's value as that day's deviations would
    make it (None: no deviation known there, e.g. a gap), and the last forecast hour the
    shift can serve (later ones would be read from the future)."""

    values: tuple[tuple[float | None, ...], ...]  # [shift][hour]
    typical: tuple[float, ...]  # [hour], filled in where a shift has no deviation
    serves_until: tuple[int, ...]  # [shift]: hours with index < this can be served

    def totals(self, weights: dict[int, float]) -> list[float]:
        """One total per analog that covers the weighted hours well enough."""
        if not weights:
            return []
        last = max(weights)
        totals = []
        for values, until in zip(self.values, self.serves_until, strict=True):
            if last >= until:
                continue
            total, gaps = 0.0, 0.0
            for index, weight in weights.items():
                value = values[index]
                if value is None:
                    gaps += weight
                    value = self.typical[index]
                total += value * weight
            if gaps <= ANALOG_GAPS * sum(weights.values()):
                totals.append(total)
        return totals


def forecast_load(
    history: LoadHistory | None,
    *,
    now: datetime,
    until: datetime,
    zone: ZoneInfo,
    fallback: float | None,
    source: str = "utilization",
    held: Sequence[tuple[datetime, datetime]] = (),
) -> Forecast:
    """The expected load per hour over [hour of now, until). `fallback` is the lookback
    average (the instant reading), used while the history is short, gappy, stale or missing;
    `zone` is the window's time zone, whose wall clock the daily shape follows (DST
    included). `held`: intervals [from, until) the fleet was held scaled down, whose hours are
    left out (a utilization history reads low or nothing there; demand needs none)."""
    starts = _hour_starts(now, until)
    digest = _digest(history, now, zone, tuple(held)) if history is not None else _NO_HISTORY
    reason = digest.why_not(now)
    if reason is None:
        learned = digest.learned
        if learned is None:
            reason = f"history {digest.hours}h has no full day in {zone.key} yet"
        else:
            hours = tuple(learned.expect(start) for start in starts)
            if all(math.isfinite(hour.high) for hour in hours):
                left_out = f", {digest.held}h held left out" if digest.held else ""
                basis = learned.basis(source) + left_out
                analogs = learned.analogs(starts, hours)
                first = starts[0] if starts else now
                past = tuple(learned.expect(first - HOUR * k) for k in range(PAST_HOURS, 0, -1))
                return Forecast(
                    source,
                    basis,
                    hours,
                    from_history=True,
                    analogs=analogs,
                    past=past,
                    spread=learned.spread,
                    step_spread=learned.step_spread,
                    expect=learned.expect,
                )
            reason = "history values too large to add up"
    return _fallback(starts, digest, fallback, reason, source)


def _hour_starts(now: datetime, until: datetime) -> list[datetime]:
    moment = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    starts = []
    while moment < until:
        starts.append(moment)
        moment += HOUR
    return starts


@dataclass(frozen=True)
class _Digest:
    """What forecasts need of one history: its extent, its plain median and HIGH_QUANTILE
    (the fallback without a lookback reading) and what it teaches."""

    hours: int  # hours with samples
    first: datetime | None  # the oldest of them
    newest: datetime | None  # the newest of them
    typical: float
    high: float
    learned: _Learned | None  # None: fewer than MIN_HISTORY_HOURS, or no full day
    held: int = 0  # hours left out as held

    def why_not(self, now: datetime) -> str | None:
        """Why the history is not forecast from, or None."""
        if self.first is None or self.newest is None:
            return "no history"
        if self.hours < MIN_HISTORY_HOURS:
            span = math.ceil((now - self.first) / HOUR)
            gaps = f" of {_duration(span)}" if span > self.hours else ""
            return f"history {self.hours}h{gaps} < 1d"
        age = now - self.newest - HOUR
        if age > STALE_AFTER:
            return f"history stale, newest sample {_duration(age // HOUR)} old"
        return None


_NO_HISTORY = _Digest(0, None, None, 0.0, 0.0, None)


def _digest(
    history: LoadHistory, now: datetime, zone: ZoneInfo, held: tuple[tuple[datetime, datetime], ...]
) -> _Digest:
    """The history's digest, from its samples up to `now` (later ones are a replay's
    future) and MAX_HISTORY before the newest of them. Remembered while the samples live
    (the operator's GridSamples: until the next refresh; else the history object), so the
    evaluations until the next refresh, and the planner's calls within one, do not learn
    it again: learning 14 days at 5 minutes takes about 5 ms."""
    samples = history.samples
    anchor: object = samples if isinstance(samples, GridSamples) else history
    last = bisect_right(samples, now, key=_MOMENT)
    first = bisect_right(samples, samples[last - 1][0] - MAX_HISTORY, key=_MOMENT) if last else 0
    key = (id(anchor), first, last, zone.key, held)
    known = _DIGESTS.get(key)
    if known is not None and known[0]() is anchor:
        return known[1]
    if isinstance(samples, GridSamples):
        hourly = samples.hour_means(first, last)
    else:
        hourly = _hourly(samples[first:last])
    left_out = _leave_out(hourly, held)
    digest = replace(_digest_of(hourly, zone), held=left_out)
    if len(_DIGESTS) >= _DIGESTS_SIZE:
        del _DIGESTS[next(iter(_DIGESTS))]  # the oldest entry
    _DIGESTS[key] = (weakref.ref(anchor, lambda _: _DIGESTS.pop(key, None)), digest)
    return digest


def _digest_of(hourly: dict[int, float], zone: ZoneInfo) -> _Digest:
    if not hourly:
        return _NO_HISTORY
    values = list(hourly.values())
    return _Digest(
        hours=len(hourly),
        first=_utc_hour(min(hourly)),
        newest=_utc_hour(max(hourly)),
        typical=_quantile(values, 0.5),
        high=_quantile(values, HIGH_QUANTILE),
        learned=_learn(hourly, zone) if len(hourly) >= MIN_HISTORY_HOURS else None,
    )


def _leave_out(hourly: dict[int, float], held: Iterable[tuple[datetime, datetime]]) -> int:
    """Drops the hours that overlap a held interval; how many there were."""
    if not hourly:
        return 0
    before, oldest, newest = len(hourly), min(hourly), max(hourly)
    for start, end in held:
        first = max(math.floor(start.timestamp() / _SECONDS_PER_HOUR), oldest)
        last = min(math.ceil(end.timestamp() / _SECONDS_PER_HOUR), newest + 1)
        for key in range(first, last):
            hourly.pop(key, None)
    return before - len(hourly)


def _hourly(samples: Sequence[tuple[datetime, float]]) -> dict[int, float]:
    """The mean of each UTC hour's valid samples, keyed by hours since the epoch."""
    hourly = {}
    index = 0
    # Hour by hour, each hour's samples found by bisection: a timestamp or a comparison per
    # sample in Python was most of the cost of a 35-day history.
    while index < len(samples):
        key = int(samples[index][0].timestamp() // _SECONDS_PER_HOUR)
        end = bisect_left(samples, _utc_hour(key + 1), lo=index, key=_MOMENT)
        # A load is never negative; NaN compares false.
        valid = [value for _, value in samples[index:end] if 0 <= value < math.inf]
        mean = sum(valid) / len(valid) if valid else math.inf
        if mean < math.inf:  # neither no valid sample nor a sum that overflows
            hourly[key] = mean
        index = end
    return hourly


def _fallback(
    starts: list[datetime],
    digest: _Digest,
    fallback: float | None,
    reason: str,
    source: str,
) -> Forecast:
    if fallback is not None:
        typical = high = fallback
        basis = f"lookback average: {reason}"
    elif digest.hours:
        # No reading now: what little history there is beats assuming no load at all.
        typical, high = digest.typical, digest.high
        basis = f"history median, no lookback reading: {reason}"
    else:
        typical = high = 0.0
        basis = f"no load known: {reason}, no lookback reading"
    hours = tuple(HourForecast(start, typical, high) for start in starts)
    return Forecast(source, basis, hours, from_history=False)


@dataclass(frozen=True)
class _Hour:
    start: datetime  # UTC
    value: float
    clock: int  # the wall-clock hour in the zone
    day: date  # the calendar day in the zone
    day_type: str  # _WEEKDAY or _WEEKEND with a weekly shape, else _ANY


@dataclass(frozen=True)
class _Learned:
    """What the history taught: the shape per (day type, wall-clock hour), the weekend
    factor, the current level; `expect` turns them into one hour's forecast."""

    zone: ZoneInfo
    days: int  # the hours learned from, in days
    weekend_factor: float | None  # None: no weekly shape
    shape: dict[tuple[str, int], tuple[float, float]]  # (typical, high) ratios to the day level
    level: float
    as_of: datetime  # the newest hour the level was read from
    growth: float  # level per day the newest full days grew by (0: not growing steadily)
    history_level: float  # the median day level, to say how far the current level moved
    unseen: int  # wall-clock hours with no history, given the level itself
    spread: float = 0.0  # the hours' robust spread around their shape (_spread)
    step_spread: float | None = None  # hour to hour (_step_spread)
    # Each history hour's deviation from its shape (ratio units), by local wall-clock hour
    # (hours since the epoch on the zone's clock: a day earlier is 24 less, DST or not).
    deviations: _HourValues = field(default_factory=lambda: _HourValues({}))

    def expect(self, start: datetime) -> HourForecast:
        typical, high, scale = self._parts(start)
        return HourForecast(start, typical * scale, high * scale)

    def _parts(self, start: datetime) -> tuple[float, float, float]:
        """The typical and high shape ratios of the hour, and the scale they apply to."""
        local = start.astimezone(self.zone)
        day_type = _day_type(local, self.weekend_factor is not None)
        typical, high = self.shape.get((day_type, local.hour), (1.0, 1.0))
        ahead = min(max((start - self.as_of) / DAY, 0.0), GROWTH_HORIZON_DAYS)
        scale = (self.level + self.growth * ahead) * self._factor(day_type)
        return typical, high, scale

    def analogs(self, starts: Sequence[datetime], hours: Sequence[HourForecast]) -> _Analogs | None:
        """The earlier days laid over the forecast hours (module docstring, step 8)."""
        if not self.deviations or not starts:
            return None
        clocks = [_local_hour(start, self.zone) for start in starts]
        parts = [self._parts(start) for start in starts]
        newest, oldest = self.deviations.last, self.deviations.first
        values, serves_until = [], []
        shift = 1
        while clocks[0] - 24 * shift >= oldest:
            back = 24 * shift
            row: list[float | None] = []
            for clock, (typical, _, scale) in zip(clocks, parts, strict=True):
                deviation = self.deviations.get(clock - back)
                row.append(None if deviation is None else max(typical + deviation, 0.0) * scale)
            values.append(tuple(row))
            serves_until.append(bisect_right(clocks, newest + back))
            shift += 1
        if len(values) < MIN_YOUNG_ANALOGS:
            return None
        typicals = tuple(hour.typical for hour in hours)
        return _Analogs(tuple(values), typicals, tuple(serves_until))

    def _factor(self, day_type: str) -> float:
        if day_type == _WEEKEND and self.weekend_factor is not None:
            return self.weekend_factor
        return 1.0

    def basis(self, source: str) -> str:
        weekly = (
            f", weekly shape (weekends x{self.weekend_factor:.2f} of weekdays)"
            if self.weekend_factor is not None
            else ", no weekly shape"
        )
        moved = self.level / self.history_level if self.history_level > 0 else 1.0
        unseen = f", {self.unseen} hours of day unseen (the level)" if self.unseen else ""
        growing = f", growing {self.growth:.3g}/day" if self.growth > 0 else ""
        return (
            f"hour-of-day median/p{round(HIGH_QUANTILE * 100)} of {source} over "
            f"{self.days}d in {self.zone.key}{weekly}, at the latest level "
            f"(x{moved:.2f} of the history's){growing}{unseen}"
        )


def _learn(hourly: dict[int, float], zone: ZoneInfo) -> _Learned | None:
    hours = [_label(key, value, zone) for key, value in hourly.items()]
    levels = _day_levels(hours)
    if not levels:
        return None
    weekend_factor = _weekend_factor(levels)
    if weekend_factor is None:
        hours = [_Hour(h.start, h.value, h.clock, h.day, _ANY) for h in hours]
    weekend = weekend_factor if weekend_factor is not None else 1.0
    factors = {_WEEKDAY: 1.0, _ANY: 1.0, _WEEKEND: weekend}
    # Weekday-equivalent levels: what a weekday at that time would have carried (weekends
    # without load say nothing of it).
    equivalent = {
        day: level / factor
        for day, level in levels.items()
        if (factor := factors[_day_type(day, True)]) > 0
    }
    shape = _shape(hours, equivalent, factors)
    expected = {key: typical * factors[key[0]] for key, (typical, _) in shape.items()}
    partial = _partial_levels(hours, expected, equivalent)
    if partial:  # days with gaps join, at the level their hours show against the shape
        equivalent = dict(sorted({**equivalent, **partial}.items()))
        shape = _shape(hours, equivalent, factors)
        expected = {key: typical * factors[key[0]] for key, (typical, _) in shape.items()}
    growth = _growth(list(equivalent.values())[-GROWTH_DAYS:])
    spread = _spread(hours, expected, equivalent)
    return _Learned(
        zone=zone,
        days=round(len(hours) / 24),
        weekend_factor=weekend_factor,
        shape=shape,
        level=_current_level(hours, expected, equivalent, spread),
        as_of=hours[-1].start,
        growth=growth,
        history_level=_quantile(list(equivalent.values()), 0.5),
        unseen=24 - len({clock for _, clock in shape}),
        spread=spread,
        step_spread=_step_spread(hours),
        deviations=_HourValues(
            _deviations(
                sorted(hours, key=lambda hour: hour.start),
                _smooth_levels(equivalent, growth),
                factors,
                shape,
                zone,
            )
        ),
    )


class _HourValues:
    """Values by hour key, as one array of floats from the first key to the last (NaN: none):
    a learned history is kept while its samples live, one per placement, and 14 days of
    hours as a dict were 25 KB of the 35 a digest took."""

    __slots__ = ("first", "values")

    def __init__(self, by_key: dict[int, float]) -> None:
        self.first = min(by_key) if by_key else 0
        self.values = array("d", [math.nan]) * (max(by_key) - self.first + 1 if by_key else 0)
        for key, value in by_key.items():
            self.values[key - self.first] = value

    def __bool__(self) -> bool:
        return bool(self.values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _HourValues):
            return NotImplemented
        return (self.first, self.values.tobytes()) == (other.first, other.values.tobytes())

    def __hash__(self) -> int:
        return hash((self.first, self.values.tobytes()))

    def get(self, key: int) -> float | None:
        index = key - self.first
        if not 0 <= index < len(self.values):
            return None
        value = self.values[index]
        return None if math.isnan(value) else value

    @property
    def last(self) -> int:
        """The newest key with a value (the array ends on one)."""
        return self.first + len(self.values) - 1


def _smooth_levels(equivalent: dict[date, float], growth: float) -> dict[date, float]:
    """Each day's median level of the days around it (SMOOTH_DAYS either side), each moved
    along the growth to the day, leaving out those more than LEVEL_SHIFT from its own level:
    the other side of a level shift (a day before a rise is not busy against days after it)."""
    days = list(equivalent)
    levels = list(equivalent.values())
    smooth = {}
    for index, day in enumerate(days):
        own = levels[index]
        around = [
            moved
            for other, level in zip(
                days[max(index - SMOOTH_DAYS, 0) : index + SMOOTH_DAYS + 1],
                levels[max(index - SMOOTH_DAYS, 0) : index + SMOOTH_DAYS + 1],
                strict=True,
            )
            if own <= LEVEL_SHIFT * (moved := level + growth * (day - other).days)
            and moved <= LEVEL_SHIFT * own
        ]
        smooth[day] = _quantile(around, 0.5)
    return smooth


def _deviations(
    hours: Iterable[_Hour],
    smooth: dict[date, float],
    factors: dict[str, float],
    shape: dict[tuple[str, int], tuple[float, float]],
    zone: ZoneInfo,
) -> dict[int, float]:
    """Each hour's value over the median level of the days around it (`_smooth_levels`),
    less its shape's typical ratio: what that hour brought beyond the typical one. The days
    around, not its own day's level, so a whole day busier or quieter than usual shows as
    one; growth over weeks and a level shift do not (the level and the growth forecast them)."""
    deviations = {}
    for hour in hours:
        level = smooth.get(hour.day, 0.0) * factors[hour.day_type]
        typical = shape.get((hour.day_type, hour.clock))
        if level > 0 and typical is not None:
            deviations[_local_hour(hour.start, zone)] = hour.value / level - typical[0]
    return deviations


def _local_hour(moment: datetime, zone: ZoneInfo) -> int:
    """Hours since the epoch on the zone's wall clock."""
    local = moment.astimezone(zone)
    offset = local.utcoffset() or timedelta(0)
    return int((moment.timestamp() + offset.total_seconds()) // _SECONDS_PER_HOUR)


def _partial_levels(
    hours: Iterable[_Hour], expected: dict[tuple[str, int], float], equivalent: dict[date, float]
) -> dict[date, float]:
    """The weekday-equivalent level of each day that is not full (a gap: a scrape outage, a
    fleet held at zero whose utilization is not recorded) but has PARTIAL_DAY_HOURS hours
    the shape expects load in: the median of their values over the shape's."""
    peak = max(expected.values(), default=0.0)
    ratios: dict[date, list[float]] = defaultdict(list)
    for hour in hours:
        expect = expected.get((hour.day_type, hour.clock), 0.0)
        if hour.day not in equivalent and expect > ELIGIBLE * peak:
            ratios[hour.day].append(hour.value / expect)
    return {
        day: _quantile(values, 0.5)
        for day, values in ratios.items()
        if len(values) >= PARTIAL_DAY_HOURS
    }


def _label(key: int, value: float, zone: ZoneInfo) -> _Hour:
    start = _utc_hour(key)
    local = start.astimezone(zone)
    return _Hour(start, value, local.hour, local.date(), _day_type(local, weekly=True))


def _day_type(moment: date, weekly: bool) -> str:
    if not weekly:
        return _ANY
    return _WEEKEND if moment.weekday() >= 5 else _WEEKDAY


def _day_levels(hours: Iterable[_Hour]) -> dict[date, float]:
    """The trimmed mean of each full local day's hours."""
    by_day: dict[date, list[float]] = defaultdict(list)
    for hour in hours:
        by_day[hour.day].append(hour.value)
    return {
        day: _trimmed_mean(values)
        for day, values in sorted(by_day.items())
        if len(values) >= FULL_DAY_HOURS
    }


def _weekend_factor(levels: dict[date, float]) -> float | None:
    """The weekend/weekday level ratio if the history shows a weekly shape, else None."""
    pairs = []  # (weekend level, level of the weekdays around it)
    clear = []  # per weekend: Friday and Monday each differ from it clearly, the same way
    # Each weekend by its Saturday, also when only its Sunday is a full day (the history's
    # start cut the Saturday): otherwise a weekend falls out for the hours the oldest
    # Saturday is partial, and the weekly shape with it, every Saturday morning.
    saturdays = sorted(
        {day - timedelta(days=day.weekday() - 5) for day in levels if day.weekday() >= 5}
    )
    for day in saturdays:
        weekend = _mean(levels, (day, day + timedelta(days=1)))
        weekdays = _mean(levels, (day - timedelta(days=1), day + timedelta(days=2)))
        if weekend is not None and weekdays is not None and weekdays > 0:
            pairs.append((weekend, weekdays))
            sides = (levels.get(day - timedelta(days=1)), levels.get(day + timedelta(days=2)))
            clear.append(_clearly_apart(weekend, sides))
    if not pairs or (len(pairs) < MIN_WEEKENDS and not all(clear)):
        return None
    lower = sum(1 for weekend, weekdays in pairs if weekdays > WEEKLY_RATIO * weekend)
    higher = sum(1 for weekend, weekdays in pairs if weekend > WEEKLY_RATIO * weekdays)
    if max(lower, higher) < WEEKLY_AGREEMENT * len(pairs):
        return None
    return _quantile([weekend / weekdays for weekend, weekdays in pairs], 0.5)


def _clearly_apart(weekend: float, sides: tuple[float | None, float | None]) -> bool:
    """Friday and Monday both full days, each more than CLEAR_WEEKLY_RATIO from the weekend
    between them, the same way. Fewer weekends than MIN_WEEKENDS that all are so show a
    weekly shape from the first weekend (a fleet idle on weekends), not from the second. A
    level that shifted shows on one side only (the weekend is like Friday or like Monday),
    and should the next weekend bring weekday load after all, the backlog watch restores the
    hold before its window is missed."""
    friday, monday = sides
    if friday is None or monday is None:
        return False
    lower = min(friday, monday) > CLEAR_WEEKLY_RATIO * weekend
    higher = weekend > CLEAR_WEEKLY_RATIO * max(friday, monday)
    return lower or higher


def _mean(levels: dict[date, float], days: Iterable[date]) -> float | None:
    found = [levels[day] for day in days if day in levels]
    return sum(found) / len(found) if found else None


def _shape(
    hours: Iterable[_Hour], equivalent: dict[date, float], factors: dict[str, float]
) -> dict[tuple[str, int], tuple[float, float]]:
    """Per (day type, wall-clock hour): the median and HIGH_QUANTILE of the hour's value over
    the level at its time, over the full days."""
    levels_at = _LevelsAt(equivalent)
    ratios: dict[tuple[str, int], list[float]] = defaultdict(list)
    for hour in hours:
        level = levels_at(hour) * factors[hour.day_type]
        if level > 0:  # neither a partial day nor one without load
            ratios[(hour.day_type, hour.clock)].append(hour.value / level)
    return {
        key: (_quantile(values, 0.5), _quantile(values, HIGH_QUANTILE))
        for key, values in ratios.items()
    }


class _LevelsAt:
    """The level at an hour of a full day: its day's level, interpolated towards the next
    or previous full day's, each taken at its day's middle, so that growth within a day is
    not learned as a daily shape."""

    def __init__(self, equivalent: dict[date, float]) -> None:
        self.days = list(equivalent)
        self.levels = list(equivalent.values())
        self.index = {day: index for index, day in enumerate(self.days)}

    def __call__(self, hour: _Hour) -> float:
        index = self.index.get(hour.day)
        if index is None:
            return 0.0
        offset = (hour.clock + 0.5) / 24 - 0.5  # days from the middle of its day
        other = index + (1 if offset > 0 else -1)
        if not 0 <= other < len(self.days):
            return self.levels[index]
        apart = abs((self.days[other] - hour.day).days)
        weight = abs(offset) / apart
        return self.levels[index] * (1 - weight) + self.levels[other] * weight


def _current_level(
    hours: Sequence[_Hour],
    expected: dict[tuple[str, int], float],
    equivalent: dict[date, float],
    spread: float,
) -> float:
    """The weekday-equivalent day level now: the newest hours over what the shape expects of
    them. A rise counts from the newest RECENT_SHORT hours; a fall needs the newest
    RECENT_LONG too, of weekdays only with a weekly shape: a quieter weekend than usual says
    little of Monday."""
    peak = max(expected.values(), default=0.0)
    newest = hours[-1].start
    short: list[float] = []
    long: list[float] = []
    for hour in reversed(hours):
        if newest - hour.start > RECENT_SPAN or len(long) == RECENT_LONG:
            break
        expect = expected.get((hour.day_type, hour.clock), 0.0)
        if expect <= ELIGIBLE * peak:
            continue
        if len(short) < RECENT_SHORT:
            short.append(hour.value / expect)
        if hour.day_type != _WEEKEND:
            long.append(hour.value / expect)
    if short or long:
        base = _quantile(list(equivalent.values()), 0.5)
        return max(_beyond_noise(found, base, spread) for found in (short, long) if found)
    # Nothing recent to compare (a flat, idle shape): the newest full days' levels.
    return _quantile(list(equivalent.values())[-3:], 0.5)


def _beyond_noise(ratios: Sequence[float], base: float, spread: float) -> float:
    """The median of the hours' levels, or the history's `base` where it lies within
    NOISE_BAND standard errors of it."""
    level = _quantile(ratios, 0.5)
    return base if base > 0 and abs(level / base - 1) <= noise_band(spread, len(ratios)) else level


def noise_band(spread: float, hours: float) -> float:
    """How far (a share) a level read over `hours` hours may stray from one that did not
    move: NOISE_BAND standard errors; a median of n hours errs by about 1.25 spread/sqrt(n)."""
    return NOISE_BAND * 1.25 * spread / math.sqrt(max(hours, 1.0))


def _spread(
    hours: Iterable[_Hour], expected: dict[tuple[str, int], float], equivalent: dict[date, float]
) -> float:
    """How far an hour of a full day strays from its shape at its day's level: the robust
    standard deviation (interquartile range / 1.35) of value over expectation, a share."""
    levels_at = _LevelsAt(equivalent)
    peak = max(expected.values(), default=0.0)
    ratios = []
    for hour in hours:
        expect = expected.get((hour.day_type, hour.clock), 0.0) * levels_at(hour)
        if expect > 0 and expected[(hour.day_type, hour.clock)] > ELIGIBLE * peak:
            ratios.append(hour.value / expect)
    if len(ratios) < 4:
        return 0.0
    return (_quantile(ratios, 0.75) - _quantile(ratios, 0.25)) / 1.35


def _step_spread(hours: Iterable[_Hour]) -> float | None:
    """How far an hour strays from the hour before it: the robust standard deviation
    (interquartile range / 1.35) of the log ratio of consecutive hours, over sqrt(2) (two
    hours' noise in each ratio), as a share. The few steps of a daily or weekly shape lie
    outside the quartiles; bursts of minutes move most hours' means. None: fewer than
    MIN_STEPS consecutive hours, or hours without load (their ratios say nothing)."""
    ordered = sorted(hours, key=lambda hour: hour.start)
    logs = []
    for before, after in pairwise(ordered):
        if after.start - before.start != HOUR:
            continue
        if before.value <= 0 or after.value <= 0:
            return None
        logs.append(math.log(after.value / before.value))
    if len(logs) < MIN_STEPS:
        return None
    return (_quantile(logs, 0.75) - _quantile(logs, 0.25)) / 1.35 / math.sqrt(2)


def _growth(levels: Sequence[float]) -> float:
    """The median day-to-day rise when the level rose on nearly every day (steady growth),
    else 0: a single step up is the current level's business, not a trend."""
    steps = [after - before for before, after in pairwise(levels)]
    rising = sum(1 for step in steps if step > 0)
    if len(steps) < GROWTH_MIN_STEPS or rising < GROWTH_RISING * len(steps):
        return 0.0
    return max(_quantile(steps, 0.5), 0.0)


def _trimmed_mean(values: list[float]) -> float:
    ordered = sorted(values)
    cut = max(1, len(ordered) // 10)
    kept = ordered[cut:-cut] if len(ordered) > 2 * cut else ordered
    return sum(kept) / len(kept)


def _quantile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def _utc_hour(key: int) -> datetime:
    return datetime.fromtimestamp(key * _SECONDS_PER_HOUR, UTC)


def _duration(hours: int) -> str:
    return f"{hours // 24}d" if hours >= 48 else f"{hours}h"
