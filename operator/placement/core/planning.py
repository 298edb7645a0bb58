"""Planned holds: which hours before the batch window the Deployment is held scaled down. Pure.

The delay gate allows a hold over [windowEnd - acceptableDelay, windowEnd) at most (a day at
most). Within it, the plan is the interval ending at the window's end whose forecast savings
are largest, among those whose forecast work fits the window:

    work (replica-hours)   = forecast load over the hold (typical) x replicas per unit of load
    must fit               = the high quantile of the hold's total work (forecast.py, step 8:
                             not every hour's high quantile summed) / batchEfficiency
                             x (1 + retryRate)
    window capacity        = parallel pods x window hours inside the hold x HOLD_MARGIN
                             (STEADY_MARGIN where the earlier days barely vary: steady load)

so a busy evening is served realtime and the quiet hours before the window are held, instead
of all or nothing.

A hold may also end before its window (EARLY_END): [start, end) with end at or before the
window's start, whole hours back from the window's end. The Deployment is restored at `end`
(a planned restore) and the work held meanwhile waits for the window's Job, which runs while
the Deployment is realtime; the window's whole length is its capacity. Where the day's work
does not fit the window, the oracle (replay) holds the quiet hours right after the last
window rather than the evening before the next one: falls held 04:00-16:40 where the operator
held 18:00-04:00 (bench/oracle_bounds.py: worth 251 in grows, 787 in bursty, 21-71 elsewhere
over four weeks, and 1-2 mode changes at a change of level). Candidates that end early are
priced only for starts whose hold until the window's end does not fit: where it fits, ending
earlier only holds fewer hours.

Holds are whole hours back from the window's end (the last one exactly the acceptable delay),
so a forecast that moves a little does not move the plan; half hours where the hold may fill
STEADY_MARGIN (steady load: its forecast barely moves).

The forecast's unit: "utilization" is a fraction of the fleet, so replicas per unit is the
fleet's replicas (the original count while held); "demand" is work per second, converted with
the replicas a unit of demand keeps busy, measured while realtime (utilization x replicas /
demand) and recorded at the move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from placement.core.api import CostsSpec
from placement.core.costs import CostBreakdown, as_float, daily_costs
from placement.core.durations import format_duration
from placement.core.forecast import Forecast, forecast_load
from placement.core.observation import LoadHistory
from placement.core.window import WindowSpan

# The forecast work (high quantile) must fit this share of the window's capacity: a
# forecast is a forecast, and a run that needs the whole window misses it on any slow night.
# Kept at 0.8 with the quantile of the total: that quantile does not know how far the current
# level errs (about 10% on bursty load), and the backlog watch restores, ending the hold,
# when its projection passes the whole window: 0.9 left less room before those restores.
HOLD_MARGIN = 0.8
# A hold whose high quantile is within STEADY_SPREAD of its typical work (the earlier days
# brought nearly the same work over its hours: steady load) may fill STEADY_MARGIN of the
# window. Measured over the decision-quality scenarios (rises, falls, weekdays, failing
# nights, DST: 81 such holds): the real work over the hold came to at most 1.008x its high
# quantile (two Friday holds left out, moved to after their start: realtime served their
# first hours), where bursty load's (spread 1.1-1.2) came to 1.17x at p90 and 1.41x at most.
# The level errs the least where the days vary the least; a young history (fewer than
# forecast.MIN_YOUNG_ANALOGS earlier days) keeps HOLD_MARGIN: bursty load's first hold
# needed 1.55x its forecast. With 3-4 earlier days the high is the hours' quantiles summed
# or the highest day, whichever is higher, and steady within STEADY_SPREAD as later on.
# 0.95 and a spread of 5% since the backlog watch reads the queue depth inside the window
# as the queue of half a lookback ago (backlog.py): 0.95 had restored holds 15-55 minutes
# into the window, the averaged queue still counting the work the Job had done (13
# fallbacks in rises, 13 in weekdays); now none in rises, weekdays, grows. Growth over
# weeks read as a spread of about 3% (the newest days above the median level around them),
# and the days before a level shift as busy or quiet, until the days around were moved
# along the growth and those across a shift left out (forecast.py, step 8): 1-2% now, and
# grows and rises hold at STEADY_MARGIN; bursty load's spread is 1.1-1.2.
STEADY_MARGIN = 0.95
STEADY_SPREAD = 1.05
# A young history (a day or two) has too few earlier days to measure the spread of a hold's
# total, so HOLD_MARGIN held steady load to 10-11h where 12-13h fit (falls, weekdays: their
# first days). Its hours still say how the load moves: hours within 10% of the hour before
# (robust, forecast.Forecast.step_spread) are steady load, and the hold may fill
# STEADY_MARGIN. The decision-quality scenarios' first three days read 1.0-1.8% (5% noise on
# 5-minute samples); bursts of minutes move an hour's mean by tens of percent (bursty load:
# 0.6-0.8), and bursty keeps HOLD_MARGIN, its first hold having needed 1.55x its forecast.
YOUNG_STEP_SPREAD = 0.1
# Holds may end before their window (module docstring).
EARLY_END = True
# A hold that ends before its window is kept only when it saves this much more than the best
# that ends with it: on a flat load both hold as many hours, and the forecast's noise flipped
# between them from one day to the next (weekdays: 48 mode changes for 40, and a Friday hold
# that ended before Saturday's window where the hold ending with it went on into the weekend).
EARLY_GAIN = 0.02
# A hold that ends before its window goes on at its end while the backlog, the work held so
# far measured (queue depth) and what arrives until a later end projected, fits this share
# of the window (policy._go_on_early): the plan's end was fitted to a forecast of the whole
# hold at HOLD_MARGIN, and at its end most of that work is known. So such a hold is worth
# what it is expected to reach (its typical work filling this share), not its planned end:
# the start cannot move, the end can. Bursty load, whose hours' spread keeps HOLD_MARGIN,
# held 14 of the oracle's 19-22 hours a day, its Jobs done in 1.5-3.5 of the window's 4.
GO_ON_MARGIN = 0.95
GO_ON_STEP = timedelta(minutes=15)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class WorkForecast:
    """The forecast in realtime replica-hours of work.

    The forecast starts at the hour holding now (it reads the history up to now); a hold is
    a daily figure and may have started earlier today. An hour already past is priced as the
    same hour a day later (the forecast is made until a day after the window's end): the daily
    shape, so the plan of a window does not change as its hours go by."""

    forecast: Forecast
    replicas_per_unit: float  # the fleet's replicas (utilization), or per unit of demand

    @property
    def source(self) -> str:
        return self.forecast.source

    @property
    def basis(self) -> str:
        return self.forecast.basis

    @property
    def first(self) -> datetime | None:
        """The start of the hour holding now (the forecast's first hour)."""
        return self.forecast.hours[0].start if self.forecast.hours else None

    def work(self, start: datetime, end: datetime, *, high: bool = False) -> float:
        """Replica-hours of work arriving over [start, end); with `high`, the forecast's high
        quantile of that total."""
        first = self.first
        spans = []
        if first is not None and start < first:
            past_end = min(end, first)
            spans.append((start + DAY, past_end + DAY))
            start = first
        if end > start:
            spans.append((start, end))
        return self.forecast.work_over(spans, high=high) * self.replicas_per_unit

    def arrived(self, start: datetime, end: datetime) -> float:
        """Replica-hours of typical work arriving over [start, end), the hours already past
        at their own day's load, not a day later as in `work` (a plan's daily figure): a
        Monday window's Job was given Sunday's held hours as Monday's, 79 replica-hours for
        about 13 (bench/timeline.py weekdays)."""
        first = self.first
        past = None if first is None or start >= first else self.forecast.arrived(start, end)
        if past is None:
            return self.work(start, end)
        assert first is not None
        ahead = self.forecast.work(first, end) if end > first else 0.0
        return (past + ahead) * self.replicas_per_unit

    def mean_rate(self, start: datetime, end: datetime, *, high: bool = False) -> float | None:
        """Replicas' worth of work expected per hour on average over [start, end), hours just
        past included; None where the forecast does not cover the span."""
        load = self.forecast.mean_load(start, end, high=high)
        return None if load is None else load * self.replicas_per_unit

    def rate(self, moment: datetime, *, high: bool = False) -> float:
        """Replicas' worth of work arriving per hour at `moment`."""
        first = self.first
        if first is not None and moment < first:
            moment += DAY
        return self.forecast.load(moment, high=high) * self.replicas_per_unit


@dataclass(frozen=True)
class HoldPlan:
    """One day's hold, [start, end): end is the window's end, or (ends_early) a moment at or
    before the window's start, the work held then waiting for the window's Job."""

    start: datetime  # aware, UTC
    end: datetime
    window: WindowSpan
    work_replica_hours: float  # forecast (typical) work arriving over the hold
    batch_pod_hours: float  # at the high quantile, retries included: what must fit
    capacity_pod_hours: float  # pods x window hours inside the hold x margin
    pods: int
    breakdown: CostBreakdown  # the daily savings of this hold
    basis: str  # how the forecast was made
    margin: float = HOLD_MARGIN  # the share of the window's capacity the hold may fill

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    @property
    def hours(self) -> float:
        return self.length.total_seconds() / 3600

    @property
    def fits(self) -> bool:
        return self.batch_pod_hours <= self.capacity_pod_hours

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    @property
    def ends_early(self) -> bool:
        """The hold ends before its window: a planned restore, the Job runs while realtime."""
        return self.end < self.window.end

    def describe(self) -> str:
        """'planned hold 2026-11-21 21:00 - 2026-11-22 05:00 UTC (8h): forecast 14.37
        replica-hours, 7.52 batch pod-hours at the high quantile, window capacity 25.60
        pod-hours (8 pods x 4h x 0.8)'."""
        zone = self.window.zone
        window_hours = format_duration(window_inside(self.start, self.end, self.window))
        early = ""
        if self.ends_early:
            early = (
                f"; ends before its window: realtime from "
                f"{self.end.astimezone(zone):%Y-%m-%d %H:%M}, the held work waits for the job "
                f"of window {self.window.describe()}"
            )
            if self.end > self.window.start:  # gone on inside it (policy._go_on_in_window)
                early = (
                    f"; ends inside its window: realtime from "
                    f"{self.end.astimezone(zone):%Y-%m-%d %H:%M}, the job of window "
                    f"{self.window.describe()} doing the held work"
                )
        return (
            f"planned hold {self.start.astimezone(zone):%Y-%m-%d %H:%M} - "
            f"{self.end.astimezone(zone):%Y-%m-%d %H:%M} {zone.key} "
            f"({format_duration(self.length)}): forecast {self.work_replica_hours:.2f} "
            f"replica-hours, {self.batch_pod_hours:.2f} batch pod-hours at the high quantile, "
            f"window capacity {self.capacity_pod_hours:.2f} pod-hours ({self.pods} pods x "
            f"{window_hours} x {self.margin:g})" + early
        )


def window_inside(start: datetime, end: datetime, window: WindowSpan) -> timedelta:
    """The window time the Job of a hold [start, end) has: from the hold's start (inside the
    window) to the window's end; the whole window for a hold that ends before it."""
    if end < window.end:
        return window.length
    return max(window.end - max(start, window.start), timedelta(0))


@dataclass(frozen=True)
class Planning:
    """The chosen hold, or none when no hold fits the window."""

    plan: HoldPlan | None
    longest: HoldPlan | None = None  # when none fits: the longest acceptableDelay allows
    longest_hours: float = 0.0  # the longest hold acceptableDelay allows
    longer_fits: bool = False  # a longer hold fits too: the plan is shorter because it pays more

    @property
    def shortened(self) -> bool:
        """The plan holds fewer hours than acceptableDelay allows."""
        return self.plan is not None and self.plan.hours < self.longest_hours - 1e-9


@dataclass(frozen=True)
class Planner:
    """Everything a hold is priced with."""

    costs: CostsSpec  # as the formula uses them (learned values in use)
    replicas: int
    warm_replicas: int
    pods: int
    window: WindowSpan
    forecast: WorkForecast
    early_end: bool = EARLY_END  # holds may end before their window (module docstring)
    # Replica-hours already waiting for this window's Job: held on past the last window's
    # end, what arrived after its Job succeeded (that Job had emptied its queue and ended);
    # counted in holds that go on now (start at or before the hour holding now).
    queued: float = 0.0
    # The backlog is watched (demand or queue depth, converted): a hold that ends before its
    # window goes on at its end while it fits (GO_ON_MARGIN), and is priced at its reach.
    goes_on: bool = False

    def hold(self, start: datetime, end: datetime | None = None) -> HoldPlan:
        """The hold [start, end) (by default until the window's end), priced and checked
        against the window."""
        end = self.window.end if end is None else end
        hours = max((end - start).total_seconds() / 3600, 0.0)
        work = self.forecast.work(start, end)
        high = self.forecast.work(start, end, high=True)
        # The work already waiting is this hold's only if it goes on now: one that starts
        # later finds it served by the restored fleet.
        first = self.forecast.first
        queued = self.queued if first is None or start <= first else 0.0
        needed = (high + queued) / self.costs.batch_efficiency * (1 + self.costs.retry_rate)
        in_window = window_inside(start, end, self.window).total_seconds() / 3600
        margin = _margin(self.forecast, work, high)
        breakdown = daily_costs(
            self.costs,
            replicas=self.replicas,
            warm_replicas=self.warm_replicas,
            utilization=0.0,
            held_hours=hours,
            work_replica_hours=work,
        )
        return HoldPlan(
            start=start,
            end=end,
            window=self.window,
            work_replica_hours=work,
            batch_pod_hours=needed,
            capacity_pod_hours=self.pods * in_window * margin,
            pods=self.pods,
            breakdown=breakdown,
            basis=self.forecast.basis,
            margin=margin,
        )

    def plan(self, taken: tuple[datetime, datetime] | None, longest_hours: float) -> Planning:
        """While holding, the hold `taken` at the move until it ends (no flapping on a
        forecast that moves); otherwise the best hold for the window."""
        if taken is not None and self.of_window(taken):
            return Planning(self.hold(*taken), longest_hours=longest_hours)
        return self.choose(longest_hours)

    def of_window(self, taken: tuple[datetime, datetime]) -> bool:
        """`taken` is a hold of this window: ending with it, or (ending early) before its end
        and starting after the last window's end. A hold ends inside its window only where
        it went on there on the Job's measured progress (policy._go_on_in_window)."""
        start, end = taken
        if start >= end:
            return False
        if end == self.window.end:
            return True
        earliest = self.window.end - DAY
        return self.early_end and earliest <= start and end < self.window.end

    def going_on_ends(self, now: datetime) -> list[datetime]:
        """Where a hold that ends before the window may end when it goes on or is shortened
        at `now` (policy._go_on_early): every GO_ON_STEP after now, until the latest end
        before the window. Finer than the plan's whole hours: these ends are decided on the
        work measured, not on a forecast that moves."""
        last = self.last_early_end
        epoch = datetime(2000, 1, 1, tzinfo=now.tzinfo)
        end = epoch + (now - epoch) // GO_ON_STEP * GO_ON_STEP + GO_ON_STEP
        ends = []
        while end <= last:
            ends.append(end)
            end += GO_ON_STEP
        return ends

    def early_ends(self, start: datetime) -> list[datetime]:
        """Where a hold from `start` may end before the window: whole hours back from the
        window's end, at or before its start, an hour or more after `start`."""
        ends = []
        end = self.window.end - HOUR * math.ceil(self.window.length / HOUR)
        while end - start >= HOUR:
            ends.append(end)
            end -= HOUR
        return ends[::-1]

    def choose(self, longest_hours: float) -> Planning:
        """The hold with the largest savings among those that fit; when none pays, the
        longest that fits (the savings gate then says it loses)."""
        lengths = _lengths(longest_hours)
        holds = [self.hold(self.window.end - length) for length in lengths]
        # Half hours only at STEADY_MARGIN: a steady forecast barely moves between
        # evaluations, so the finer step does not move the plan; elsewhere whole hours (and
        # the longest allowed). On steady load the half hour was worth 77 in rises and 78 in
        # grows over four weeks (bench/decision_quality.py), where 0.95 of the window binds.
        holds = [
            hold
            for hold in holds
            if hold.length % HOUR == timedelta(0)
            or hold.length == lengths[-1]
            or hold.margin == STEADY_MARGIN
        ]
        fitting = [hold for hold in holds if hold.fits]
        if self.early_end:
            bar = max((hold.breakdown.savings for hold in fitting), default=0.0)
            fitting += [
                hold
                for hold in self._early(holds)
                if self.worth(hold).breakdown.savings > max(bar, 0.0) * (1 + EARLY_GAIN)
            ]
        if not fitting:
            longest = holds[-1] if holds else None
            return Planning(None, longest=longest, longest_hours=longest_hours)
        paying = [hold for hold in fitting if hold.breakdown.savings > 0]
        if paying:
            # Ties (to the cent) go to the longer hold.
            worth = {id(hold): self.worth(hold) for hold in paying}
            best = max(
                paying,
                key=lambda hold: (
                    round(worth[id(hold)].breakdown.savings, 2),
                    worth[id(hold)].hours,
                ),
            )
            best = self._sooner(best, paying, worth)
        else:
            best = max(fitting, key=lambda hold: hold.hours)
        longer_fits = any(hold.hours > best.hours for hold in fitting)
        return Planning(best, longest_hours=longest_hours, longer_fits=longer_fits)

    def _early(self, holds: list[HoldPlan]) -> list[HoldPlan]:
        """Per start whose hold until the window's end does not fit, the longest hold from it
        that ends early and fits (its work grows with its end: the first that does not fit
        ends the search). Only starts from the hour holding now: an hour already past is
        priced as the same hour a day later (WorkForecast), which a weekly shape makes another
        load (a Friday hold priced with Saturday's hours), and a hold that ends early is not
        the daily figure a hold ending with its window is."""
        found = []
        first = self.forecast.first
        for until_end in holds:
            if until_end.fits or until_end.start >= self.window.start:
                continue
            if first is not None and until_end.start < first:
                continue
            best = self.longest_early(until_end.start)
            if best is not None:
                found.append(best)
        return found

    def _sooner(
        self, best: HoldPlan, paying: list[HoldPlan], worth: dict[int, HoldPlan]
    ) -> HoldPlan:
        """`best` ends before its window and goes on: the earliest hold that ends early
        and is worth within EARLY_GAIN of it. The start cannot move, the end goes on while
        the work measured fits: the earlier hold has more room to go on where the load is
        lighter than forecast (bursty: holds from 05:00 and 06:00 reaching 23:30 or the
        window's start beside holds from 04:00 worth cents less)."""
        reached = worth[id(best)]
        if not self.may_go_on(best):
            return best
        bar = reached.breakdown.savings * (1 - EARLY_GAIN)
        sooner = [
            hold
            for hold in paying
            if hold.ends_early
            and hold.start < best.start
            and worth[id(hold)].breakdown.savings >= bar
        ]
        return min(sooner, key=lambda hold: hold.start, default=best)

    def may_go_on(self, hold: HoldPlan) -> bool:
        """`hold` ends before its window, the backlog is watched, and the plan left room
        for the forecast's error (a margin below GO_ON_MARGIN) that the work measured may
        take: on steady load the plan fills STEADY_MARGIN already, and going on a quarter
        hour at a time only moved holds across the window's end apart (grows: 29 mode
        changes -> 33 of the oracle's 31). Only where the history measured how the load
        varies (earlier days, or a young history's hours, forecast.MIN_STEPS): before that
        the margin is a guess, and weekdays' first day, priced at its reach, held the
        morning where the evening paid more."""
        made = self.forecast.forecast
        measured = made.from_history and (made.analogs is not None or made.step_spread is not None)
        return self.goes_on and measured and hold.ends_early and hold.margin < GO_ON_MARGIN

    @property
    def last_early_end(self) -> datetime:
        """The latest end of a hold that ends before the window: whole hours back from the
        window's end, at or before its start."""
        return self.window.end - HOUR * math.ceil(self.window.length / HOUR)

    def worth(self, hold: HoldPlan) -> HoldPlan:
        """What a hold is expected to hold: one that ends before its window and goes on
        (`goes_on`), until the latest end before the window (every GO_ON_STEP, as it goes
        on) whose typical work fits GO_ON_MARGIN of it; any other, itself. A hold that
        starts earlier reaches further where the window's start does not cut it."""
        if not self.may_go_on(hold):
            return hold
        capacity = self.pods * self.window.length.total_seconds() / 3600 * GO_ON_MARGIN
        first = self.forecast.first
        queued = self.queued if first is None or hold.start <= first else 0.0
        reach = None
        for end in self.going_on_ends(hold.end):
            work = self.forecast.work(hold.start, end) + queued
            if work / self.costs.batch_efficiency * (1 + self.costs.retry_rate) > capacity:
                break
            reach = end
        return hold if reach is None else self.hold(hold.start, reach)

    def longest_early(self, start: datetime) -> HoldPlan | None:
        """The longest hold from `start` that ends before the window and fits (its work
        grows with its end: the first that does not fit ends the search); None if none."""
        best = None
        for end in self.early_ends(start):
            hold = self.hold(start, end)
            if not hold.fits:
                break
            best = hold
        return best


def _margin(forecast: WorkForecast, work: float, high: float) -> float:
    """STEADY_MARGIN when the hold's high quantile, taken from the earlier days' totals over
    its hours (forecast.py, step 8), is within STEADY_SPREAD of its typical work; else
    HOLD_MARGIN. A fallback forecast's high is its typical and measures nothing. A young
    history (fewer earlier days than that) is steady where its hours stray from one another
    by no more than YOUNG_STEP_SPREAD (forecast.Forecast.step_spread)."""
    made = forecast.forecast
    if work <= 0 or not made.from_history:
        return HOLD_MARGIN
    if made.analogs is None:
        step = made.step_spread
        steady = step is not None and step <= YOUNG_STEP_SPREAD
        return STEADY_MARGIN if steady else HOLD_MARGIN
    return STEADY_MARGIN if high <= work * STEADY_SPREAD else HOLD_MARGIN


def _lengths(longest_hours: float) -> list[timedelta]:
    """Half hours back from the window's end, the last one the longest allowed."""
    if not math.isfinite(longest_hours) or longest_hours <= 0:
        return []
    whole = math.ceil(longest_hours * 2 - 1e-9)
    return [min(HOUR / 2 * step, timedelta(hours=longest_hours)) for step in range(1, whole + 1)]


def usable_demand(value: float | None) -> float | None:
    """A demand (or queue) reading the arithmetic can use: finite and not negative."""
    return value if value is not None and math.isfinite(value) and value >= 0 else None


def positive(value: float | None) -> float | None:
    """A conversion factor the arithmetic can use (a status edited by hand may hold any)."""
    return value if value is not None and math.isfinite(value) and value > 0 else None


def replicas_per_demand(
    demand: float | None, replicas: int | None, utilization: float | None
) -> float | None:
    """Realtime replicas one unit of demand keeps busy, measured while realtime
    (utilization x replicas / demand); None when there is nothing to measure it on."""
    if replicas is None or utilization is None or not demand or replicas <= 0:
        return None
    ratio = utilization * replicas / demand
    return ratio if math.isfinite(ratio) and ratio > 0 else None


def work_forecast(
    history: LoadHistory | None,
    *,
    now: datetime,
    window: WindowSpan,
    replicas: int | None,
    utilization: float | None,
    demand: float | None,
    replicas_per_demand: float | None,
    held_since: datetime | None = None,
) -> WorkForecast | None:
    """The forecast in replica-hours, from now (the forecast reads the history up to now)
    until a day past the window's end: from demand when it can be converted (while held it
    is what is observed instead of the utilization frozen at the move), else from
    utilization. None: no load known at all."""
    if replicas is None:
        return None
    until = window.end + DAY
    ratio = positive(replicas_per_demand)
    demand_history = history if history is not None and history.source == "demand" else None
    if ratio is not None and (demand is not None or demand_history is not None):
        made = forecast_load(
            demand_history, now=now, until=until, zone=window.zone, fallback=demand, source="demand"
        )
        return WorkForecast(made, ratio)
    usable = history if history is not None and history.source == "utilization" else None
    if utilization is None and usable is None:
        return None
    # A utilization history reads near zero while the fleet is held scaled down: those hours
    # say nothing about the load and are left out.
    held = ((held_since, now),) if held_since is not None and held_since < now else ()
    made = forecast_load(
        usable, now=now, until=until, zone=window.zone, fallback=utilization, held=held
    )
    return WorkForecast(made, as_float(replicas))
