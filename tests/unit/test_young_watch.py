"""The backlog watch on a young history: while the history is younger than the forecast needs
(fewer than 24 hours: the forecast is the lookback's average, taken for every hour to the
window), the watch restores on the queue measured: when the work waiting and the next hour's
would pass 0.9 of the window. The work waiting then still fits the window and is left to the
window's Job (a waiting hold), as after a planned restore: no fallback. On DST's first day the
projection of the newest hour over 20 hours had restored a hold whose work came to 6.6 of the
window's 8 pod-hours.

The example placement of tests/unit/test_backlog.py (8 pods, window 01:00-05:00 UTC), moved at
22:00 with 100 requests/s keeping 1.80 replicas busy.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from placement.core.api import Action, Phase
from placement.core.observation import LoadHistory
from placement.core.policy import Decision, Observed, State, decide
from placement.core.reasons import EventType, Reason
from tests.unit.factories import make_spec
from tests.unit.test_backlog import DEMAND, WINDOW, _at, _held

RATIO = 0.0179584  # replicas one request/s keeps busy (recorded at the move)
STEP = timedelta(minutes=5)


def _young(now: datetime, hours: int = 8) -> LoadHistory:
    """`hours` of demand at 100/s, then 150/s over the last hour: a rise."""
    samples = []
    moment = now - timedelta(hours=hours)
    while moment < now:
        samples.append((moment, 150.0 if moment >= now - timedelta(hours=1) else 100.0))
        moment += STEP
    return LoadHistory("demand", STEP, tuple(samples), fetched_at=now)


def _queue(replica_hours: float) -> float:
    return replica_hours * 3600 / RATIO


def _while_held(state: State, now: datetime, **changes: Any) -> Decision:
    values: dict[str, Any] = {"replicas": 0, "utilization": None, "backlog_metrics": True}
    values.update(changes)
    return decide(make_spec(**DEMAND), Observed(**values), state, now=now)


def test_a_young_history_holds_on_while_the_work_measured_fits() -> None:
    now = _at(21, 23, 30)
    # 48 replica-hours waiting and 150/s (2.69 replicas busy) over the 5.5 hours left to the
    # window's end: 62.8 replica-hours, 32.9 pod-hours > 32 (the lookback's level taken for
    # every hour falls back). The work waiting and the next hour's: 50.7, 26.52 <= 0.9 x 32.
    observed = {"demand": 150.0, "queue_depth": _queue(48.0)}
    held = _while_held(_held(), now, history=_young(now), **observed)
    assert (held.action, held.phase) == (Action.WAIT, Phase.BATCH)
    assert held.reason is Reason.MOVED_TO_BATCH and not held.noteworthy
    backlog = held.backlog
    assert backlog is not None and backlog.fits
    assert abs(backlog.arriving_replica_hours - 150 * RATIO) < 1e-6
    assert "26.52 batch pod-hours" in backlog.describe()
    assert "<= 0.9 of window capacity 32.00" in backlog.describe()
    assert "young history" in backlog.describe()
    # Without a history read at all the lookback is all there is: projected to the window.
    unread = _while_held(_held(), now, **observed)
    assert (unread.action, unread.reason) == (Action.FALLBACK, Reason.BACKLOG_WILL_MISS_WINDOW)


def test_a_young_history_restores_when_the_work_waiting_nears_the_window() -> None:
    now = _at(21, 23, 30)
    # 54 waiting + 2.69 arriving in the next hour = 29.66 pod-hours > 0.9 x 32; the 54 waiting
    # (28.25 pod-hours) fit: left to the window's Job, the Deployment realtime, no fallback.
    state = _held()
    restored = _while_held(state, now, demand=150.0, queue_depth=_queue(54.0), history=_young(now))
    assert (restored.action, restored.phase, restored.reason, restored.event_type) == (
        Action.RESTORE,
        Phase.REALTIME,
        Reason.RESTORED,
        EventType.NORMAL,
    )
    assert restored.desired_replicas == 4 and restored.state.fallback_until is None
    assert restored.state.waiting_hold == (_at(21, 22), now)
    assert "> 0.9 of window capacity 32.00" in restored.message
    assert f"waits for the job of {WINDOW}" in restored.message
    # In the window its Job is created while the Deployment stays realtime.
    job = decide(
        make_spec(**DEMAND),
        Observed(replicas=4, utilization=0.45, demand=100.0, backlog_metrics=True),
        restored.state,
        now=_at(22, 1),
    )
    assert (job.action, job.phase, job.reason) == (
        Action.CREATE_JOB,
        Phase.REALTIME,
        Reason.BATCH_JOB_CREATED,
    )
    assert job.job_name == "summarizer-20261122-0100"


def test_a_workload_made_user_visible_leaves_no_held_work_to_a_job() -> None:
    # The spec takes the placement off batch: realtime back, the restored fleet takes the
    # work held, and no Job is created for it later.
    state = _held()
    spec = make_spec(**DEMAND, **{"latency.userVisible": True})
    observed = Observed(replicas=0, demand=100.0, queue_depth=_queue(5.0), backlog_metrics=True)
    restored = decide(spec, observed, state, now=_at(21, 23, 30))
    assert (restored.action, restored.reason) == (Action.RESTORE, Reason.RESTORED)
    assert "StayRealtime" in restored.message and restored.state.waiting_hold is None
