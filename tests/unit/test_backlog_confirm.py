"""The backlog watch while held: a rise of the demand is applied to every hour left only when
the demand over CONFIRM_SPAN (the history's hours before the lookback, and the lookback) is
above the forecast too, so one hour of bursts does not restore a hold that fits.

A fleet of 6 replicas whose forecast is flat (by default typical 0.39, high 0.65: bursty
load); one unit of demand keeps 1/1000 of a replica busy. At 20:00, held until the window
00:00-04:00 UTC on 2 pods (8 pod-hours): 8 hours of the high forecast are 31.2 replica-hours,
5.46 batch pod-hours (efficiency 6, retries 0.05), which fit; 1.8 times that does not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from placement.core.api import BatchWindow
from placement.core.backlog import CONFIRM_SPAN, Backlog, BacklogInputs, project_backlog
from placement.core.forecast import Forecast, HourForecast
from placement.core.observation import LoadHistory
from placement.core.planning import WorkForecast
from placement.core.window import window_on

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
