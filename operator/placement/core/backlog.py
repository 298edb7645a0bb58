"""The backlog while held: will the work waiting at the window fit it? Pure.

While held the fleet is scaled down and its utilization says nothing about the load. What is
still measured is the demand (`metrics.demand`, work arriving per second whatever the replica
count) and the queue (`metrics.queueDepth`, work waiting, in the same unit). Converted with the
replicas one unit of demand keeps busy (measured while realtime, recorded at the move):

    waiting (replica-hours)     = queue depth x replicas per demand / 3600; the depth is
                                  averaged over metrics.lookback, so inside the window, where
                                  the Job drains it, it is the queue of half a lookback ago
                                  (not before the window's start): the projection starts then
                                  ("then"; before the window, now)
    arriving until window end   = the forecast's high quantile over [then, window end) (until
                                  the planned hold's end when it ends before the window; from the
                                  planned hold's start when that is later: what arrives before
                                  it is served realtime), scaled up by how far the demand
                                  observed (averaged over metrics.lookback) is above the
                                  forecast of those same hours (the forecast keeps the hours
                                  just past; else the hour ahead and the span a day later)
                                  (a load that rose is not averaged away), a rise
                                  confirmed over CONFIRM_SPAN: the demand history's
                                  hours before the lookback count with it, so one
                                  hour of bursts is not taken for every hour left
    projected batch pod-hours   = (waiting + arriving) / batchEfficiency x (1 + retryRate)
    window capacity             = parallel pods x hours of the window from then on

More than the capacity and the window would be missed: realtime is restored before it is
(BacklogWillMissWindow). No margin here: the plan moved with HOLD_MARGIN of the capacity, a
restore needs all of it to be exceeded (hysteresis). Without a queue reading the work waiting
is estimated from the hold's start at the same level; without demand or queue, or without the
conversion, the backlog is not watched and the messages say so.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import itemgetter
from zoneinfo import ZoneInfo

from placement.core.durations import format_duration
from placement.core.forecast import noise_band
from placement.core.observation import LoadHistory
from placement.core.planning import WorkForecast
from placement.core.window import WindowSpan

SECONDS_PER_HOUR = 3600
# A rise of the demand is applied to every hour left only as far as the demand over this span
# (the history's hours before the lookback, and the lookback) is above the forecast too. On
# bursty load (bursts of 10-40 minutes) one hour's lookback read 1.3-1.9x the hour's high
# forecast and restored holds that fit: 10 of bursty's 11 fallbacks, 5 left with the span
# (bench/decision_quality.py; rises, weekdays and DST unchanged). A real rise fills the span
# within hours: 5x a quiet level reads 2.3x over it after one hour.
CONFIRM_SPAN = timedelta(hours=3)
# The history must cover this share of the span before the lookback to confirm anything;
# else (a young or stale history) the lookback's level counts alone, as before.
CONFIRM_COVERAGE = 0.5
_MOMENT = itemgetter(0)  # a history sample's time
# The projection follows a fall of the demand: below FALL_RATIO of the forecast's typical load
# over the lookback and over FALL_SPAN, the arrivals are the forecast's times the higher of the
# two. The forecast's own level follows a fall only after most of a day (forecast.RECENT_LONG),
# and meanwhile a hold that ended with its window was restored and taken again hours later
# (falls: 0.6 -> 0.1 at midnight, held again at noon) where holding on fits. When the load
# comes back, the lookback reads it within the hour and the fall no longer counts.
# A fall must also lie beyond the forecast's noise band over FALL_SPAN (forecast.noise_band,
# from the history's hour-to-hour spread): on bursty load a few quiet hours between bursts
# read below FALL_RATIO and shortened a hold that fitted (bursty, 11-04).
FALL_SPAN = timedelta(hours=4)
FALL_RATIO = 0.5
NOT_CONFIGURED = (
    "backlog not watched: no metrics.demand or metrics.queueDepth, so the savings and the window "
    "fit rest on the load measured before the move"
)


@dataclass(frozen=True)
class Backlog:
    """The projection, or why there is none (`watched` False)."""

    watched: bool
    note: str  # why it is not watched; how it was estimated otherwise
    waiting_replica_hours: float = 0.0
    arriving_replica_hours: float = 0.0
    batch_pod_hours: float = 0.0
    capacity_pod_hours: float = 0.0
    pods: int = 1
    window: WindowSpan | None = None
    level: float = 1.0  # observed demand over its forecast (module docstring; at least 1)
    # The lookback's own level when the longer span did not confirm it (else None).
    unconfirmed: float | None = None
    # The share of the capacity the projection must fit (below 1: the young-history watch,
    # whose restore leaves the work waiting to the window's Job, policy._young_restore).
    share: float = 1.0

    @property
    def fits(self) -> bool:
        return not self.watched or self.batch_pod_hours <= self.capacity_pod_hours * self.share

    def describe(self) -> str:
        if not self.watched:
            return self.note
        assert self.window is not None
        level = f", demand {self.level:.2f}x the forecast" if self.level > 1 else ""
        if self.level < 1:
            level = (
                f", demand {self.level:.2f}x the forecast's typical load over the lookback "
                f"and {format_duration(FALL_SPAN)}: fallen"
            )
        if self.unconfirmed is not None:
            level = (
                f", demand {self.unconfirmed:.2f}x the forecast over the lookback, "
                f"{self.level:.2f}x over {format_duration(CONFIRM_SPAN)}"
            )
        note = f"; {self.note}" if self.note else ""
        relation = "<=" if self.fits else ">"
        if self.share < 1:
            relation += f" {self.share:g} of"
        hours = self.capacity_pod_hours / max(self.pods, 1)
        return (
            f"backlog projected at {self.batch_pod_hours:.2f} batch pod-hours (waiting "
            f"{self.waiting_replica_hours:.2f} + arriving {self.arriving_replica_hours:.2f} "
            f"replica-hours{level}) {relation} window capacity {self.capacity_pod_hours:.2f} "
            f"pod-hours ({self.pods} pods x {format_duration(timedelta(hours=hours))}) of window "
            f"{self.window.describe()}{note}"
        )


@dataclass(frozen=True)
class BacklogInputs:
    """What the projection reads; demand and queue in the demand's unit."""

    demand: float | None  # per second, now
    queue: float | None  # waiting, now
    replicas_per_demand: float | None  # recorded at the move
    configured: bool  # metrics.demand or metrics.queueDepth is set
    held_since: datetime | None  # the move
    hold_start: datetime | None = None  # the planned hold's start (held for longer: the day's)
    # The planned hold's end: before the window's, what arrives after it is realtime's.
    hold_end: datetime | None = None
    # The span the demand reading averages over (metrics.lookback): its level is read against
    # the forecast of that span, not of the hour ahead (a daily shape would read as a change).
    lookback: timedelta = timedelta(0)
    # The demand's history (metrics.demand over metrics.history): its hours before the
    # lookback confirm a rise over CONFIRM_SPAN. None, or of utilization: not confirmed.
    history: LoadHistory | None = None

    @property
    def waiting_since(self) -> datetime | None:
        """Since when work has been waiting for this window: the later of the two."""
        moments = [m for m in (self.held_since, self.hold_start) if m is not None]
        return max(moments, default=None)


def project_backlog(
    inputs: BacklogInputs,
    *,
    now: datetime,
    window: WindowSpan,
    forecast: WorkForecast | None,
    batch_efficiency: float,
    retry_rate: float,
    pods: int,
) -> Backlog:
    """The work the window will have to do, against what it can do from now on."""
    if not inputs.configured:
        return Backlog(False, NOT_CONFIGURED)
    ratio = inputs.replicas_per_demand
    if ratio is None:
        return Backlog(
            False,
            "backlog not watched: no demand was measured before the move to convert demand "
            "and queue depth into replica-hours",
        )
    if inputs.demand is None and inputs.queue is None:
        return Backlog(False, "backlog not watched: neither demand nor queue depth was read")
    observed_rate = None if inputs.demand is None else inputs.demand * ratio  # replicas busy
    # Inside the window, the queue depth averaged over the lookback is the queue of about
    # half a lookback ago (as the Job drains it), so the projection starts there (not before
    # the window's start). Read as the queue of now, it counted work the Job had done since
    # (in its first hour, about half a lookback of its pods' work: holds filling 0.95 of the
    # window were restored 15-55 minutes into it). Before the window the projection starts
    # now, as it did: starting it earlier there restored bursty holds (fallbacks 11 -> 16).
    since = now
    if inputs.queue is not None and now > window.start:
        since = max(now - inputs.lookback / 2, window.start)
    # The next window's hold may start later than that (its plan shorter than a day): what
    # arrives before it is the realtime fleet's, not this window's.
    arriving_from = max(since, inputs.hold_start) if inputs.hold_start is not None else since
    # A hold that ends before its window: what arrives after its end is served realtime, so
    # the work waiting for the window is the arrivals until then (planning.EARLY_END).
    until = window.end if inputs.hold_end is None else min(inputs.hold_end, window.end)
    arriving_from = min(arriving_from, until)
    earlier = _earlier_rate(inputs.history, ratio, now, inputs.lookback)
    level, arriving, unconfirmed = _arrivals(
        forecast,
        observed_rate,
        now,
        arriving_from,
        until,
        inputs.lookback,
        window.zone,
        earlier,
    )
    if forecast is not None and observed_rate is not None and level <= 1:
        fallen = _earlier_rate(inputs.history, ratio, now, inputs.lookback, FALL_SPAN)
        fall = _fall(forecast, observed_rate, now, inputs.lookback, fallen)
        if fall is not None:
            high = forecast.work(arriving_from, until, high=True)
            level, arriving, unconfirmed = fall, high * fall, None
    note = ""
    if inputs.queue is not None:
        waiting = inputs.queue * ratio / SECONDS_PER_HOUR
        moved = inputs.held_since
        if moved is not None and now - moved < inputs.lookback:
            # The reading still averages the time before the move: the last window's Job
            # draining its queue (a hold that starts at that window's end, planning.EARLY_END,
            # read 2.69 replica-hours it had done and restored a hold that fit: falls, 11-09).
            # What waits is at most what arrived since the move.
            since_move = _estimated_waiting(forecast, observed_rate, moved, now, level)
            waiting = min(waiting, since_move)
    else:
        waiting = _estimated_waiting(forecast, observed_rate, inputs.waiting_since, now, level)
        note = "no queue depth: the work waiting is estimated from the hold's start"
    needed = (waiting + arriving) / batch_efficiency * (1 + retry_rate)
    hours_left = max((window.end - max(since, window.start)).total_seconds() / 3600, 0.0)
    return Backlog(
        watched=True,
        note=note,
        waiting_replica_hours=waiting,
        arriving_replica_hours=arriving,
        batch_pod_hours=needed,
        capacity_pod_hours=pods * hours_left,
        pods=pods,
        window=window,
        level=level,
        unconfirmed=unconfirmed,
    )


def _earlier_rate(
    history: LoadHistory | None,
    ratio: float,
    now: datetime,
    lookback: timedelta,
    span: timedelta = CONFIRM_SPAN,
) -> tuple[float, datetime, datetime] | None:
    """(replicas busy on average, from, until): the demand history over the `span` before
    now, the lookback left out, or None when it covers too little of it (or the lookback is
    the span already)."""
    since, until = now - span, now - lookback
    if history is None or history.source != "demand" or until <= since:
        return None
    history = history.as_read()  # the newest hours at the step read, not hour means
    samples = history.samples
    first = bisect_left(samples, since, key=_MOMENT)
    last = bisect_left(samples, until, key=_MOMENT)
    values = [value for _, value in samples[first:last]]
    if len(values) * history.step < (until - since) * CONFIRM_COVERAGE:
        return None
    # The hours the history has (it is read hourly: its newest may be older than the lookback).
    until = min(until, samples[last - 1][0] + history.step)
    return sum(values) / len(values) * ratio, since, until


def _arrivals(
    forecast: WorkForecast | None,
    observed_rate: float | None,
    now: datetime,
    start: datetime,
    end: datetime,
    lookback: timedelta,
    zone: ZoneInfo,
    earlier: tuple[float, datetime, datetime] | None = None,
) -> tuple[float, float, float | None]:
    """(level, replica-hours arriving over [start, end), the lookback's level when the span
    before it did not confirm it); the level is the observed rate (averaged over the
    lookback) over the forecast's high quantile of that same span, no higher than over
    CONFIRM_SPAN (`earlier` and the lookback) where the history covers it."""
    hours = max((end - start).total_seconds() / 3600, 0.0)
    if forecast is None:
        return 1.0, (observed_rate or 0.0) * hours, None
    high = forecast.work(start, end, high=True)
    # Above the forecast's high quantile, the load rose. The reading averages the lookback
    # just past: it is read against what the forecast expected of those same hours.
    expected = forecast.mean_rate(now - lookback, now, high=True) if lookback else None
    if expected is None:
        # A forecast without those hours (the lookback average, or a lookback longer than its
        # past hours): against the hour ahead and the same wall-clock span a local day later,
        # a rise only above both (else an evening reading against a night hour, or a Friday's
        # against a Saturday's, reads as a rise).
        expected = forecast.rate(now, high=True)
        if lookback > timedelta(0):
            since, until = (_a_day_later(moment, zone) for moment in (now - lookback, now))
            hours = lookback / timedelta(hours=1)
            expected = max(expected, forecast.work(since, until, high=True) / hours)
    if observed_rate is None:
        return 1.0, high, None
    if expected <= 0:
        # Nothing forecast for this hour, yet something arrives: at least that, constantly.
        return 1.0, max(high, observed_rate * hours), None
    level = max(observed_rate / expected, 1.0)
    confirmed = _confirmed(forecast, observed_rate, expected, now, lookback, earlier)
    if confirmed is not None and level > 1 and confirmed < level - 1e-9:
        unconfirmed, level = level, max(confirmed, 1.0)
        return level, high * level, unconfirmed
    return level, high * level, None


def _fall(
    forecast: WorkForecast,
    observed_rate: float,
    now: datetime,
    lookback: timedelta,
    earlier: tuple[float, datetime, datetime] | None,
) -> float | None:
    """The demand over the forecast's typical load, the higher of the lookback's and
    FALL_SPAN's, when both are below FALL_RATIO; else None."""
    expected = forecast.mean_rate(now - lookback, now) if lookback else None
    if earlier is None or expected is None or expected <= 0:
        return None
    spanned = _confirmed(forecast, observed_rate, expected, now, lookback, earlier, high=False)
    if spanned is None:
        return None
    fall = max(observed_rate / expected, spanned)
    band = noise_band(forecast.forecast.spread, FALL_SPAN / timedelta(hours=1))
    return fall if fall < FALL_RATIO and 1 - fall > band else None


def _confirmed(
    forecast: WorkForecast,
    observed_rate: float,
    expected: float,
    now: datetime,
    lookback: timedelta,
    earlier: tuple[float, datetime, datetime] | None,
    *,
    high: bool = True,
) -> float | None:
    """The level over the span of `earlier` and the lookback, each weighed by its hours,
    over the forecast (its high quantile with `high`) of those same hours; None where the
    forecast does not cover the span."""
    if earlier is None:
        return None
    rate, since, until = earlier
    before = forecast.mean_rate(since, until, high=high)
    if before is None:
        return None
    past_hours = (until - since) / timedelta(hours=1)
    last_hours = lookback / timedelta(hours=1)
    seen = rate * past_hours + observed_rate * last_hours
    forecast_seen = before * past_hours + expected * last_hours
    return seen / forecast_seen if forecast_seen > 0 else None


def _a_day_later(moment: datetime, zone: ZoneInfo) -> datetime:
    """The same wall-clock time on the next local day (an aware datetime in `zone` adds by
    the wall clock)."""
    return (moment.astimezone(zone) + timedelta(days=1)).astimezone(moment.tzinfo)


def _estimated_waiting(
    forecast: WorkForecast | None,
    observed_rate: float | None,
    since: datetime | None,
    now: datetime,
    level: float,
) -> float:
    if since is None or since >= now:
        return 0.0
    if forecast is None:
        return (observed_rate or 0.0) * (now - since).total_seconds() / 3600
    return forecast.work(since, now) * level
