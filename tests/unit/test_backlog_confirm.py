"""The backlog watch while held: a rise of the demand is applied to every hour left only when
the demand over CONFIRM_SPAN (the history's hours before the lookback, and the lookback) is
above the forecast too, so one hour of bursts does not restore a hold that fits; a fall
confirmed over FALL_SPAN lowers the projection, so a hold can go on after the load fell.

A fleet of 6 replicas whose forecast is flat (by default typical 0.39, high 0.65: bursty
load); one unit of demand keeps 1/1000 of a replica busy. At 20:00, held until the window
00:00-04:00 UTC on 2 pods (8 pod-hours): 8 hours of the high forecast are 31.2 replica-hours,
5.46 batch pod-hours (efficiency 6, retries 0.05), which fit; 1.8 times that does not.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from placement.core.api import Action, BatchWindow
from placement.core.backlog import CONFIRM_SPAN, FALL_SPAN, Backlog, BacklogInputs, project_backlog
from placement.core.forecast import Forecast, HourForecast
from placement.core.observation import LoadHistory
from placement.core.planning import WorkForecast
from placement.core.policy import JobObservation, JobOutcome, Observed, State, decide
from placement.core.reasons import Reason
from placement.core.window import window_on
from tests.unit.factories import make_spec

NOW = datetime(2026, 11, 23, 20, tzinfo=UTC)
REPLICAS = 6
STEP = timedelta(minutes=5)
LOOKBACK = timedelta(hours=1)
WINDOW = window_on(
    BatchWindow.model_validate({"start": "00:00", "end": "04:00", "timeZone": "UTC"}),
    (NOW + timedelta(days=1)).date(),
)


def _demand(load: float) -> float:
    """The demand that keeps `load` of the fleet busy."""
    return load * REPLICAS * 1000


def _forecast(typical: float = 0.39, high: float = 0.65) -> WorkForecast:
    """Flat, with the six hours before now kept (a forecast made from history)."""
    hours = tuple(HourForecast(NOW + timedelta(hours=i), typical, high) for i in range(-6, 40))
    return WorkForecast(Forecast("utilization", "test", hours[6:], True, past=hours[:6]), REPLICAS)


def _history(load: float) -> LoadHistory:
    """The demand at `load` over the 12 hours before the lookback, read at its start."""
    count = round(timedelta(hours=12) / STEP)
    first = NOW - LOOKBACK - count * STEP
    samples = tuple((first + i * STEP, _demand(load)) for i in range(count))
    return LoadHistory("demand", STEP, samples, fetched_at=NOW - LOOKBACK)


def _backlog(
    lookback_load: float, history: LoadHistory | None, forecast: WorkForecast | None = None
) -> Backlog:
    assert WINDOW is not None
    return project_backlog(
        BacklogInputs(
            demand=_demand(lookback_load),
            queue=0.0,
            replicas_per_demand=1 / 1000,
            configured=True,
            held_since=NOW - timedelta(hours=6),
            lookback=LOOKBACK,
            history=history,
        ),
        now=NOW,
        window=WINDOW,
        forecast=forecast or _forecast(),
        batch_efficiency=6.0,
        retry_rate=0.05,
        pods=2,
    )


def test_one_hour_of_bursts_does_not_restore_a_hold_that_fits() -> None:
    # The last hour read 1.8x the hour's high forecast; the two hours before it the typical
    # load: over three hours the demand is at the high forecast, no rise.
    backlog = _backlog(1.8 * 0.65, _history(0.39))
    assert backlog.fits and backlog.level == pytest.approx(1.0)
    assert backlog.batch_pod_hours == pytest.approx(5.46)
    assert (
        f"demand 1.80x the forecast over the lookback, 1.00x over {CONFIRM_SPAN.seconds // 3600}h"
    ) in backlog.describe()


def test_a_rise_seen_over_the_whole_span_still_restores() -> None:
    backlog = _backlog(1.8 * 0.65, _history(1.8 * 0.65))
    assert not backlog.fits and backlog.level == pytest.approx(1.8)
    assert "demand 1.80x the forecast)" in backlog.describe()
    # Five times a quiet load, one hour into it, reads more than twice over the span.
    rising = _backlog(5 * 0.12, _history(0.12), _forecast(0.12, 0.12))
    assert rising.level == pytest.approx((2 * 0.12 + 5 * 0.12) / (3 * 0.12))


def test_without_a_history_to_confirm_with_the_lookback_counts_alone() -> None:
    for history in (None, LoadHistory("utilization", STEP, (), fetched_at=NOW)):
        backlog = _backlog(1.8 * 0.65, history)
        assert not backlog.fits and backlog.level == pytest.approx(1.8)


def test_a_fall_over_the_span_lowers_the_projection() -> None:
    # 0.6 forecast, 0.1 measured over the lookback and the hours before it.
    fallen = _backlog(0.1, _history(0.1), _forecast(0.6, 0.66))
    assert fallen.level == pytest.approx(0.1 / 0.6)
    assert fallen.arriving_replica_hours == pytest.approx(0.66 * REPLICAS * 8 * 0.1 / 0.6)
    assert (
        f"demand 0.17x the forecast's typical load over the lookback and "
        f"{FALL_SPAN.seconds // 3600}h: fallen"
    ) in fallen.describe()
    # The load back over the last hour: no fall, the forecast counts again.
    back = _backlog(0.6, _history(0.1), _forecast(0.6, 0.66))
    assert back.level == pytest.approx(1.0)
    assert back.arriving_replica_hours == pytest.approx(0.66 * REPLICAS * 8)
    # A quiet hour alone is no fall either.
    quiet = _backlog(0.1, _history(0.6), _forecast(0.6, 0.66))
    assert quiet.level == pytest.approx(1.0)


DEMAND_METRICS = {
    "metrics.demand": "sum(rate(requests_total[5m]))",
    "metrics.queueDepth": "sum(queue_items)",
}
FELL = datetime(2026, 11, 22, tzinfo=UTC)  # the demand falls from 100/s to 100/6 at midnight


def _fallen_history(until: datetime) -> LoadHistory:
    """Five days of demand at 100/s (utilization 0.6 of 4 replicas), then 100/6 from FELL."""
    first = FELL - timedelta(days=5)
    count = round((until - first) / STEP)
    samples = tuple(
        (at, 100.0 if at < FELL else 100 / 6) for at in (first + i * STEP for i in range(count))
    )
    return LoadHistory("demand", STEP, samples, fetched_at=until)


def test_a_hold_goes_on_past_its_window_when_the_load_fell_hours_ago() -> None:
    # The example placement (4 replicas, 8 pods, window 01:00-05:00 UTC) at 0.6: a whole day
    # does not fit the window, so the hold ending at 05:00 is restored until the next plan
    # (test_hold_through). The load fell at midnight to a sixth; the forecast's level follows
    # a fall only after most of a day, the lookback and the four hours before it show it now.
    # Retries at 0.1: a steady day's work then does not fit even 0.95 of the window.
    spec = make_spec(**DEMAND_METRICS, **{"costs.retryRate": 0.1})
    moved_at = datetime(2026, 11, 21, 12, tzinfo=UTC)
    busy = Observed(
        replicas=4,
        utilization=0.6,
        demand=100.0,
        backlog_metrics=True,
        history=_fallen_history(moved_at),
    )
    moved = decide(spec, busy, State(name="summarizer"), now=moved_at)
    assert moved.reason is Reason.MOVED_TO_BATCH
    job = JobObservation(
        "summarizer-20261122-0100", JobOutcome.SUCCEEDED, FELL + timedelta(hours=4)
    )
    end = FELL + timedelta(hours=5)
    held = Observed(
        replicas=0,
        demand=100 / 6,
        queue_depth=0.0,
        backlog_metrics=True,
        jobs=(job,),
        history=_fallen_history(end - timedelta(minutes=30)),
    )
    succeeded = decide(spec, held, moved.state, now=end - timedelta(minutes=55))
    at_end = decide(spec, held, succeeded.state, now=end)
    assert (at_end.action, at_end.noteworthy) == (Action.WAIT, False)
    assert at_end.state.holding and at_end.state.planned_hold == (end, end + timedelta(days=1))
    assert "held on past the planned hold's end" in at_end.message
    assert "x the forecast's typical load over the lookback and 4h: fallen" in at_end.message
    # Without the fall the same hold ends with its window, realtime until the next plan.
    steady = replace(held, demand=100.0, history=_fallen_history(FELL - timedelta(minutes=5)))
    restored = decide(spec, steady, succeeded.state, now=end)
    assert restored.action is Action.RESTORE and not restored.state.holding


def _with_spread(forecast: WorkForecast, spread: float) -> WorkForecast:
    return WorkForecast(replace(forecast.forecast, spread=spread), REPLICAS)


def test_quiet_hours_between_bursts_are_no_fall() -> None:
    # Hours of a bursty history stray 60% from their shape: four quiet hours at a sixth of
    # the typical load lie within the noise band (3 x 1.25 x 0.6 / sqrt(4) = 1.1): no fall,
    # the projection keeps the forecast. On steady load (5%) the same hours are a fall.
    bursty = _backlog(0.1, _history(0.1), _with_spread(_forecast(0.6, 0.66), 0.6))
    assert bursty.level == pytest.approx(1.0)
    assert bursty.arriving_replica_hours == pytest.approx(0.66 * REPLICAS * 8)
    assert "fallen" not in bursty.describe()
    steady = _backlog(0.1, _history(0.1), _with_spread(_forecast(0.6, 0.66), 0.05))
    assert steady.level == pytest.approx(0.1 / 0.6)
    assert "fallen" in steady.describe()
