"""decide(): every gate, the batch lifecycle, fallbacks and hysteresis, with a fixed clock.

The example placement (tests/unit/factories.py) saves 41.20 USD/day at 4 replicas; its window
is 01:00-05:00 UTC, acceptableDelay 24h (held all day), retryWindow 1h, 8 pods in parallel:
a run needs 21.55 pod-hours / 8 = 2h41m37s. With acceptableDelay 8h (EIGHT_HOURS) it is held
21:00-05:00 only and saves 5.67 USD/day.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from placement.core.api import Action, Phase, WorkloadPlacementSpec
from placement.core.policy import (
    Decision,
    JobObservation,
    JobOutcome,
    Observed,
    State,
    decide,
)
from placement.core.reasons import ConditionType, EventType, Reason
from tests.unit.factories import EXAMPLE_UTILIZATION, make_spec

NAME = "summarizer"
JOB = "summarizer-20261122-0100"  # the window of 22 November
EVENING = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)  # 7h before the window ends: delay ok
WINDOW_OPEN = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
IN_WINDOW = datetime(2026, 11, 22, 1, 30, tzinfo=UTC)
WINDOW_END = datetime(2026, 11, 22, 5, 0, tzinfo=UTC)
MIDDAY = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # 17h before the next window ends

SAVES = (
    "saves 41.20 USD/day = capacity avoided 98.40 - batch 43.10 - staging 4.10"
    " - retries 2.00 - operations 8.00 - missed windows 0.00"
)
# The whole day's work, 22.55 batch pod-hours at the high quantile with retries, fits 0.8 of
# the window's 8 pods x 4h: the planned hold is the whole day acceptableDelay allows.
PLAN_24H = (
    "planned hold 2026-11-21 05:00 - 2026-11-22 05:00 UTC (1d): forecast 43.10 replica-hours, "
    "22.55 batch pod-hours at the high quantile, window capacity 25.60 pod-hours "
    "(8 pods x 4h x 0.8)"
)
NOT_WATCHED = "backlog not watched (no metrics.demand or metrics.queueDepth)"
EIGHT_HOURS = {"latency.acceptableDelay": "8h"}
PLAN_8H = (
    "planned hold 2026-11-21 21:00 - 2026-11-22 05:00 UTC (8h): forecast 14.37 replica-hours, "
    "7.52 batch pod-hours at the high quantile, window capacity 25.60 pod-hours "
    "(8 pods x 4h x 0.8)"
)
SAVES_HELD_8H = (
    "saves 5.67 USD/day (held 8h a day) = capacity avoided 32.80 - batch 14.37 - staging 4.10"
    " - retries 0.67 - operations 8.00 - missed windows 0.00"
)


def _at(hour: int, minute: int = 0, day: int = 22) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def _observed(**changes: Any) -> Observed:
    values: dict[str, Any] = {"replicas": 4, "utilization": EXAMPLE_UTILIZATION}
    values.update(changes)
    return Observed(**values)


def _holding(**changes: Any) -> State:
    """State after MovedToBatch the evening before the window."""
    state = State(
        name=NAME,
        phase=Phase.BATCH,
        original_replicas=4,
        baseline_utilization=EXAMPLE_UTILIZATION,
        last_action=Action.MOVE_TO_BATCH,
        last_reason=Reason.MOVED_TO_BATCH,
        batch_since=EVENING,
    )
    return replace(state, **changes)


def _decide(
    spec: WorkloadPlacementSpec | None = None,
    observed: Observed | None = None,
    state: State | None = None,
    *,
    now: datetime = IN_WINDOW,
) -> Decision:
    return decide(
        spec or make_spec(),
        observed or _observed(),
        state or State(name=NAME),
        now=now,
    )


def _job(outcome: JobOutcome, finished: datetime | None = None, name: str = JOB) -> JobObservation:
    return JobObservation(name=name, outcome=outcome, finished_at=finished)


# ------------------------------------------------------------------------------------------
# moving to batch
# ------------------------------------------------------------------------------------------


def test_design_example_moves_to_batch_and_creates_the_window_job() -> None:
    decision = _decide()
    assert decision.message == (
        f"{SAVES}; deployment/summarizer 4 -> 0; {PLAN_24H}; {NOT_WATCHED}; job {JOB} created"
    )
    assert decision.action is Action.MOVE_TO_BATCH
    assert decision.phase is Phase.BATCH
    assert decision.reason is Reason.MOVED_TO_BATCH
    assert decision.event_type is EventType.NORMAL
    assert decision.actuate is True
    assert decision.desired_replicas == 0
    assert decision.job_name == JOB
    assert decision.savings_per_day == 41.20
    assert decision.noteworthy is True
    state = decision.state
    assert state.original_replicas == 4
    assert state.baseline_utilization == EXAMPLE_UTILIZATION
    assert state.batch_since == IN_WINDOW
    assert state.current_job == JOB
    assert state.phase is Phase.BATCH
    assert (state.last_action, state.last_reason) == (Action.MOVE_TO_BATCH, Reason.MOVED_TO_BATCH)


def test_moving_before_the_window_creates_no_job_yet() -> None:
    decision = _decide(now=EVENING)
    assert decision.action is Action.MOVE_TO_BATCH
    assert decision.job_name is None
    assert decision.message.endswith("next window 2026-11-22 01:00-05:00 UTC")


def test_warm_replicas_are_kept() -> None:
    decision = _decide(make_spec(**{"target.warmReplicas": 1}))
    assert decision.desired_replicas == 1
    assert "deployment/summarizer 4 -> 1" in decision.message


def test_inputs_carry_the_numbers() -> None:
    inputs = _decide(observed=_observed(queue_depth=12.0)).inputs
    assert inputs.replicas == 4
    assert inputs.current_replicas == 4
    assert inputs.utilization == EXAMPLE_UTILIZATION
    assert inputs.queue_depth == 12.0
    assert inputs.batch_pod_hours == pytest.approx(21.5501)
    assert inputs.parallel_pods == 8
    assert inputs.window_hours == 4.0
    assert inputs.wait_hours == 3.5
    assert inputs.acceptable_delay_hours == 24.0
    assert inputs.held_hours_per_day == 24.0


def test_held_part_of_the_day_saves_only_for_those_hours() -> None:
    # acceptableDelay 8h: held 21:00-05:00, so 8h of capacity and of work, not 24h.
    decision = _decide(make_spec(**EIGHT_HOURS), now=EVENING)
    assert decision.message == (
        f"{SAVES_HELD_8H}; deployment/summarizer 4 -> 0; {PLAN_8H}; {NOT_WATCHED}; "
        "next window 2026-11-22 01:00-05:00 UTC"
    )
    assert decision.savings_per_day == 5.67
    assert decision.inputs.held_hours_per_day == 8.0
    assert decision.inputs.work_replica_hours == pytest.approx(14.3667)
    assert decision.inputs.batch_pod_hours == pytest.approx(7.1834)
    # the conditions carry the same text
    savings = next(c for c in decision.conditions if c.type is ConditionType.SAVINGS_POSITIVE)
    assert savings.message == SAVES_HELD_8H


def test_when_the_whole_day_does_not_fit_the_latest_hours_that_fit_are_held() -> None:
    # 1 pod at efficiency 4: each hour brings 4 x 0.44896 / 4 x 1.0464 = 0.47 batch
    # pod-hours; the window holds 0.8 x 4h = 3.2 of them, so 6 hours' work fits and 7 do not.
    # A whole day's (11.27) never fitted: before planned holds it stayed realtime all day.
    # (No staging or operations, so 6h a day still saves something.)
    one_pod = make_spec(
        **{
            "batch.jobTemplate.spec.parallelism": 1,
            "costs.batchEfficiency": 4,
            "costs.dataStagingPerRun": 0,
            "costs.operationsPerDay": 0,
        }
    )
    moved = _decide(one_pod, now=_at(23, day=21))
    assert moved.reason is Reason.MOVED_TO_BATCH
    assert moved.plan is not None
    assert (moved.plan.start, moved.plan.end) == (_at(23, day=21), WINDOW_END)
    assert moved.inputs.held_hours_per_day == 6.0
    assert (
        "planned hold 2026-11-21 23:00 - 2026-11-22 05:00 UTC (6h): forecast 10.78 "
        "replica-hours, 2.82 batch pod-hours at the high quantile, window capacity 3.20 "
        "pod-hours (1 pods x 4h x 0.8)"
    ) in moved.message
    assert moved.message.startswith("saves 18.96 USD/day (held 6h a day)")
    # An hour earlier the fleet stays realtime, and says until when and why.
    before = _decide(one_pod, now=_at(22, day=21))
    assert (before.action, before.reason) == (Action.STAY, Reason.HOLD_PLANNED)
    assert before.message.startswith(
        "realtime until the planned hold 2026-11-21 23:00 - 2026-11-22 05:00 UTC (6h)"
    )
    assert "a longer hold would not fit the window" in before.message


# ------------------------------------------------------------------------------------------
# gates, in order
# ------------------------------------------------------------------------------------------

GATE_CASES = [
    pytest.param(
        {},
        {"replicas": None},
        (Action.NONE, Phase.BLOCKED, Reason.TARGET_MISSING, EventType.WARNING),
        "deployment/summarizer not found",
        id="target-missing",
    ),
    pytest.param(
        {},
        {"conflicting_autoscaler": "horizontalpodautoscaler/summarizer"},
        (Action.NONE, Phase.BLOCKED, Reason.CONFLICTING_AUTOSCALER, EventType.WARNING),
        "horizontalpodautoscaler/summarizer also sets deployment/summarizer replicas",
        id="conflicting-autoscaler",
    ),
    pytest.param(
        {},
        {"metrics_error": "connection refused"},
        (Action.NONE, Phase.OBSERVING, Reason.METRICS_UNAVAILABLE, EventType.WARNING),
        "utilization query failed: connection refused",
        id="metrics-error",
    ),
    pytest.param(
        {},
        {"utilization": None},
        (Action.NONE, Phase.OBSERVING, Reason.METRICS_UNAVAILABLE, EventType.WARNING),
        "no sample",
        id="metrics-empty",
    ),
    pytest.param(
        {},
        {"utilization": 1.7},
        (Action.NONE, Phase.OBSERVING, Reason.METRICS_UNAVAILABLE, EventType.WARNING),
        "utilization 1.7 is outside [0,1]",
        id="metrics-out-of-range",
    ),
    pytest.param(
        {},
        {"utilization": math.nan},
        (Action.NONE, Phase.OBSERVING, Reason.METRICS_UNAVAILABLE, EventType.WARNING),
        "outside [0,1]",
        id="metrics-nan",
    ),
    pytest.param(
        {},
        {"metrics_age": timedelta(minutes=75)},
        (Action.NONE, Phase.OBSERVING, Reason.METRICS_UNAVAILABLE, EventType.WARNING),
        "newest utilization sample is 1h15m old, older than metrics.lookback 1h",
        id="metrics-stale",
    ),
    pytest.param(
        {"owner": ""},
        {},
        (Action.STAY, Phase.REALTIME, Reason.OWNER_MISSING, EventType.NORMAL),
        f"spec.owner is empty: nobody owns the batch path; {SAVES}",
        id="owner-missing",
    ),
    pytest.param(
        {"latency.userVisible": True},
        {},
        (Action.STAY, Phase.REALTIME, Reason.STAY_REALTIME, EventType.NORMAL),
        "latency.userVisible is true",
        id="user-visible",
    ),
    pytest.param(
        {"latency.acceptableDelay": "2h"},
        {},
        (Action.STAY, Phase.REALTIME, Reason.DELAY_NOT_TOLERATED, EventType.NORMAL),
        "work arriving now waits 3h30m until window 2026-11-22 01:00-05:00 UTC ends > "
        "acceptableDelay 2h",
        id="delay",
    ),
    pytest.param(
        {"costs.batchPodHourly": 20},
        {},
        (Action.STAY, Phase.REALTIME, Reason.SAVINGS_NEGATIVE, EventType.NORMAL),
        "loses ",
        id="savings-negative",
    ),
    pytest.param(
        {"costs.savingsMargin": 50},
        {},
        (Action.STAY, Phase.REALTIME, Reason.SAVINGS_NEGATIVE, EventType.NORMAL),
        "needs more than 50.00 USD/day (costs.savingsMargin)",
        id="savings-below-margin",
    ),
    pytest.param(
        {"batch.jobTemplate.spec.parallelism": 1},
        {},
        (Action.STAY, Phase.REALTIME, Reason.WINDOW_TOO_SHORT, EventType.NORMAL),
        "batch needs 22.55 pod-hours at the forecast's high quantile / 1 parallel pods = "
        "22h33m > 0.8 of window 2026-11-22 01:00-05:00 UTC (4h), and no shorter hold fits "
        "either",
        id="window-too-short",
    ),
    pytest.param(
        {"productRisk": "High"},
        {},
        (Action.MOVE_TO_BATCH, Phase.REALTIME, Reason.BATCH_RECOMMENDED, EventType.NORMAL),
        f"{SAVES}; {PLAN_24H}; would scale deployment/summarizer 4 -> 0 "
        "(productRisk High: the operator never acts on its own)",
        id="risk-high",
    ),
    pytest.param(
        {"mode": "Recommend"},
        {},
        (Action.MOVE_TO_BATCH, Phase.REALTIME, Reason.BATCH_RECOMMENDED, EventType.NORMAL),
        "(mode Recommend: nothing changed)",
        id="mode-recommend",
    ),
]


@pytest.mark.parametrize(("spec_changes", "observed_changes", "expected", "text"), GATE_CASES)
def test_gate(
    spec_changes: dict[str, Any],
    observed_changes: dict[str, Any],
    expected: tuple[Action, Phase, Reason, EventType],
    text: str,
) -> None:
    decision = _decide(make_spec(**spec_changes), _observed(**observed_changes))
    assert (decision.action, decision.phase, decision.reason, decision.event_type) == expected
    assert text in decision.message
    assert decision.message and not decision.message.startswith(f"{decision.reason}:")
    # nothing acts: no Job, and any replica count is only a recommendation
    assert decision.actuate is False
    assert decision.job_name is None
    assert decision.state.original_replicas is None


def test_delay_gate_depends_on_the_time_of_day() -> None:
    spec = make_spec(**EIGHT_HOURS)
    assert _decide(spec, now=MIDDAY).reason is Reason.DELAY_NOT_TOLERATED
    assert "waits 17h until window 2026-11-23 01:00-05:00 UTC ends" in (
        _decide(spec, now=MIDDAY).message
    )
    assert _decide(spec, now=EVENING).reason is Reason.MOVED_TO_BATCH
    # held all day: any time of day is within 24h of a window's end
    assert _decide(now=MIDDAY).reason is Reason.MOVED_TO_BATCH


@pytest.mark.parametrize(("spec_changes", "observed_changes", "expected", "text"), GATE_CASES)
def test_gates_decide_the_same_when_held_part_of_the_day(
    spec_changes: dict[str, Any],
    observed_changes: dict[str, Any],
    expected: tuple[Action, Phase, Reason, EventType],
    text: str,
) -> None:
    # Fewer held hours shrink the numbers, not the order or outcome of the gates.
    decision = _decide(make_spec(**{**EIGHT_HOURS, **spec_changes}), _observed(**observed_changes))
    assert (decision.action, decision.phase, decision.reason, decision.event_type) == expected


@pytest.mark.parametrize(
    ("spec_changes", "observed_changes", "reason"),
    [
        ({}, {"replicas": None, "metrics_error": "down"}, Reason.TARGET_MISSING),
        (
            {},
            {"conflicting_autoscaler": "hpa/x", "metrics_error": "down"},
            Reason.CONFLICTING_AUTOSCALER,
        ),
        ({"owner": ""}, {"metrics_error": "down"}, Reason.METRICS_UNAVAILABLE),
        ({"owner": "", "latency.userVisible": True}, {}, Reason.OWNER_MISSING),
        ({"latency.userVisible": True, "costs.batchPodHourly": 20}, {}, Reason.STAY_REALTIME),
        (
            {"latency.acceptableDelay": "1h", "costs.batchPodHourly": 20},
            {},
            Reason.DELAY_NOT_TOLERATED,
        ),
        (
            {"costs.batchPodHourly": 20, "batch.jobTemplate.spec.parallelism": 1},
            {},
            Reason.SAVINGS_NEGATIVE,
        ),
        ({"productRisk": "High", "costs.batchPodHourly": 20}, {}, Reason.SAVINGS_NEGATIVE),
    ],
)
def test_first_failing_gate_wins(
    spec_changes: dict[str, Any], observed_changes: dict[str, Any], reason: Reason
) -> None:
    assert _decide(make_spec(**spec_changes), _observed(**observed_changes)).reason is reason


def test_recommendation_is_recorded_but_not_actuated() -> None:
    decision = _decide(make_spec(mode="Recommend"))
    assert decision.desired_replicas == 0  # what Enforce would do
    assert decision.actuate is False
    assert decision.state.original_replicas is None
    assert decision.state.last_reason is Reason.BATCH_RECOMMENDED


def test_metrics_down_after_first_evaluation_reports_realtime() -> None:
    state = State(name=NAME, phase=Phase.REALTIME, last_reason=Reason.SAVINGS_NEGATIVE)
    decision = _decide(observed=_observed(metrics_error="timeout"), state=state)
    assert decision.phase is Phase.REALTIME
    assert decision.desired_replicas is None


# ------------------------------------------------------------------------------------------
# the batch lifecycle
# ------------------------------------------------------------------------------------------


def test_a_night_in_batch() -> None:
    spec = make_spec(**EIGHT_HOURS)
    steps: list[tuple[datetime, tuple[JobObservation, ...], Action, Reason, bool]] = [
        (EVENING, (), Action.MOVE_TO_BATCH, Reason.MOVED_TO_BATCH, True),
        (_at(0, 0), (), Action.WAIT, Reason.MOVED_TO_BATCH, False),
        (WINDOW_OPEN, (), Action.CREATE_JOB, Reason.BATCH_JOB_CREATED, True),
        (_at(1, 5), (_job(JobOutcome.RUNNING),), Action.WAIT, Reason.BATCH_JOB_CREATED, False),
        (
            _at(3, 0),
            (_job(JobOutcome.SUCCEEDED, _at(2, 55)),),
            Action.WAIT,
            Reason.BATCH_SUCCEEDED,
            True,
        ),
        (
            _at(3, 5),
            (_job(JobOutcome.SUCCEEDED, _at(2, 55)),),
            Action.WAIT,
            Reason.BATCH_SUCCEEDED,
            False,
        ),
        # the Job was cleaned up (TTL): it is not created a second time
        (_at(4, 0), (), Action.WAIT, Reason.BATCH_SUCCEEDED, False),
        # the window is over and the next one ends in 24h > 8h: realtime comes back
        (WINDOW_END, (), Action.RESTORE, Reason.RESTORED, True),
        (_at(6, 0), (), Action.STAY, Reason.DELAY_NOT_TOLERATED, True),
        (_at(21, 0), (), Action.MOVE_TO_BATCH, Reason.MOVED_TO_BATCH, True),
    ]
    state = State(name=NAME)
    for now, jobs, action, reason, noteworthy in steps:
        replicas = 4 if state.original_replicas is None else 0
        decision = decide(spec, _observed(replicas=replicas, jobs=jobs), state, now=now)
        assert (decision.action, decision.reason, decision.noteworthy) == (
            action,
            reason,
            noteworthy,
        ), f"{now}: {decision.message}"
        state = decision.state
        if action is Action.CREATE_JOB:
            assert decision.job_name == JOB
            assert state.current_job == JOB
        if action is Action.RESTORE:
            assert decision.desired_replicas == 4 and decision.actuate
            assert state.original_replicas is None
            assert "deployment/summarizer 0 -> 4; DelayNotTolerated:" in decision.message
    assert state.last_succeeded == _at(2, 55)
    assert state.missed_windows == 0


def test_batch_wait_keeps_the_deployment_at_warm_replicas() -> None:
    decision = _decide(observed=_observed(replicas=2), state=_holding(), now=_at(0, 30))
    assert decision.action is Action.WAIT
    assert decision.desired_replicas == 0 and decision.actuate  # level-based: re-applied
    assert "waiting for window 2026-11-22 01:00-05:00 UTC (starts in 30m)" in decision.message


def test_while_holding_live_metrics_are_not_needed() -> None:
    # The fleet is scaled to 0: no utilization sample, even a failing query, is normal.
    for observed in (
        _observed(replicas=0, utilization=None),
        _observed(replicas=0, metrics_error="connection refused"),
        _observed(replicas=0, utilization=0.0),
    ):
        decision = _decide(observed=observed, state=_holding(), now=_at(0, 30))
        assert decision.phase is Phase.BATCH
        assert decision.action is Action.WAIT
        assert decision.savings_per_day == 41.20  # from the baseline, not the live value
        assert decision.state.original_replicas == 4


def test_metrics_down_inside_the_window_still_creates_the_job() -> None:
    decision = _decide(
        observed=_observed(replicas=0, metrics_error="down"), state=_holding(), now=IN_WINDOW
    )
    assert (decision.action, decision.job_name) == (Action.CREATE_JOB, JOB)


def test_blocked_while_holding_keeps_the_original_replicas() -> None:
    blocked = _decide(
        observed=_observed(replicas=0, conflicting_autoscaler="hpa/summarizer"),
        state=_holding(),
        now=_at(0, 30),
    )
    assert blocked.phase is Phase.BLOCKED
    assert blocked.state.original_replicas == 4
    # once unblocked, batch continues; the original count is not overwritten by 0
    after = _decide(observed=_observed(replicas=0), state=blocked.state, now=_at(0, 35))
    assert after.phase is Phase.BATCH
    assert after.state.original_replicas == 4


def test_failed_job_within_retry_window_warns_then_waits() -> None:
    failed = (_job(JobOutcome.FAILED, _at(1, 40)),)
    first = _decide(observed=_observed(replicas=0, jobs=failed), state=_holding(), now=_at(2, 0))
    assert (first.action, first.reason, first.event_type) == (
        Action.WAIT,
        Reason.BATCH_JOB_FAILED,
        EventType.WARNING,
    )
    assert "may be retried (delete it to have it recreated) until 2026-11-22 02:40 UTC" in (
        first.message
    )
    assert first.state.last_failed == _at(1, 40)
    again = _decide(observed=_observed(replicas=0, jobs=failed), state=first.state, now=_at(2, 5))
    assert again.reason is Reason.BATCH_JOB_FAILED
    assert again.noteworthy is False


def test_deleted_failed_job_is_recreated_within_retry_window() -> None:
    state = _holding(last_failed=_at(1, 40), last_reason=Reason.BATCH_JOB_FAILED)
    decision = _decide(observed=_observed(replicas=0), state=state, now=_at(2, 10))
    assert (decision.action, decision.job_name) == (Action.CREATE_JOB, JOB)
    assert "(retry after a failure)" in decision.message


def test_failed_past_retry_window_restores_realtime() -> None:
    failed = (_job(JobOutcome.FAILED, _at(1, 40)),)
    decision = _decide(
        observed=_observed(replicas=0, jobs=failed), state=_holding(), now=_at(2, 45)
    )
    assert (decision.action, decision.phase, decision.reason, decision.event_type) == (
        Action.FALLBACK,
        Phase.FALLBACK,
        Reason.FALLBACK_RESTORED,
        EventType.WARNING,
    )
    assert decision.desired_replicas == 4 and decision.actuate
    assert decision.message.startswith(
        f"deployment/summarizer 0 -> 4; job {JOB} failed at 2026-11-22 01:40"
        " UTC and retryWindow 1h has passed"
    )
    state = decision.state
    assert state.original_replicas is None
    assert state.missed_windows == 1
    assert state.last_missed_window == "20261122-0100"
    assert state.fallback_until == _at(1, 0, day=23)


def test_failed_past_retry_window_with_alert_only_warns() -> None:
    failed = (_job(JobOutcome.FAILED, _at(1, 40)),)
    decision = _decide(
        make_spec(**{"fallback.action": "Alert"}),
        _observed(replicas=0, jobs=failed),
        _holding(),
        now=_at(2, 45),
    )
    assert (decision.action, decision.phase, decision.reason) == (
        Action.FALLBACK,
        Phase.FALLBACK,
        Reason.BATCH_JOB_FAILED,
    )
    assert decision.actuate is False and decision.desired_replicas is None
    assert "fallback Alert: deployment/summarizer left at 0 replicas" in decision.message
    assert decision.state.original_replicas == 4  # still held: nothing was restored
    assert decision.state.missed_windows == 1


@pytest.mark.parametrize(
    ("jobs", "label"),
    [
        ((_job(JobOutcome.RUNNING),), "job still running"),
        ((), "operator was down for the whole window"),
    ],
)
def test_window_ended_without_success_falls_back(
    jobs: tuple[JobObservation, ...], label: str
) -> None:
    decision = _decide(observed=_observed(replicas=0, jobs=jobs), state=_holding(), now=WINDOW_END)
    assert decision.reason is Reason.FALLBACK_RESTORED, label
    assert "window 2026-11-22 01:00-05:00 UTC ended without a succeeded Job" in decision.message
    assert decision.desired_replicas == 4


def test_window_missed_with_alert() -> None:
    alert = make_spec(**{"fallback.action": "Alert", "latency.acceptableDelay": "2d"})
    decision = _decide(
        alert,
        _observed(replicas=0),
        _holding(),
        now=_at(5, 10),
    )
    assert (decision.reason, decision.event_type) == (
        Reason.BATCH_WINDOW_MISSED,
        EventType.WARNING,
    )
    # evaluated again: the same window is not counted twice, and no new Event
    again = _decide(
        alert,
        _observed(replicas=0),
        decision.state,
        now=_at(5, 15),
    )
    assert again.state.missed_windows == 1
    assert again.phase is Phase.FALLBACK
    assert again.noteworthy is False


def test_no_fallback_for_windows_before_the_move() -> None:
    # Moved to batch at 06:00, after the window ended: that window was never ours.
    decision = _decide(
        observed=_observed(replicas=0),
        state=_holding(batch_since=_at(6, 0)),
        now=_at(6, 5),
        spec=make_spec(**{"latency.acceptableDelay": "2d"}),
    )
    assert decision.action is Action.WAIT


def test_after_a_fallback_batch_waits_for_the_next_window() -> None:
    spec = make_spec(**{"latency.acceptableDelay": "2d"})  # gates pass all day
    fallback = _decide(spec, _observed(replicas=0), _holding(), now=WINDOW_END)
    assert fallback.reason is Reason.FALLBACK_RESTORED
    held = fallback.state
    for hour in (6, 12, 23):
        decision = decide(spec, _observed(), held, now=_at(hour))
        assert (decision.action, decision.phase) == (Action.WAIT, Phase.FALLBACK), hour
        assert decision.desired_replicas is None and not decision.actuate
        assert decision.noteworthy is False
        held = decision.state
    retried = decide(spec, _observed(), held, now=_at(1, 0, day=23))
    assert retried.action is Action.MOVE_TO_BATCH
    assert retried.job_name == "summarizer-20261123-0100"
    assert retried.state.missed_windows == 1  # history is kept


# ------------------------------------------------------------------------------------------
# a move late in the window (a run needs 2h41m with 8 pods)
# ------------------------------------------------------------------------------------------

LATE = "batch needs 21.55 pod-hours / 8 parallel pods = 2h41m; moves for the next window"


@pytest.mark.parametrize(
    ("now", "action", "reason", "job", "text"),
    [
        pytest.param(
            _at(2, 18), Action.MOVE_TO_BATCH, Reason.MOVED_TO_BATCH, JOB, "created", id="02:18"
        ),
        pytest.param(
            _at(2, 20),
            Action.STAY,
            Reason.WINDOW_TOO_SHORT,
            None,
            f"only 2h40m left in the window 2026-11-22 01:00-05:00 UTC; {LATE}",
            id="02:20",
        ),
        pytest.param(
            _at(3, 0),
            Action.STAY,
            Reason.WINDOW_TOO_SHORT,
            None,
            f"only 2h left in the window 2026-11-22 01:00-05:00 UTC; {LATE}",
            id="03:00",
        ),
        pytest.param(
            _at(4, 50),
            Action.STAY,
            Reason.WINDOW_TOO_SHORT,
            None,
            f"only 10m left in the window 2026-11-22 01:00-05:00 UTC; {LATE}; {SAVES}",
            id="04:50",
        ),
        pytest.param(
            WINDOW_END,
            Action.MOVE_TO_BATCH,
            Reason.MOVED_TO_BATCH,
            None,
            "next window 2026-11-23 01:00-05:00 UTC",
            id="05:00-outside",
        ),
        pytest.param(
            EVENING,
            Action.MOVE_TO_BATCH,
            Reason.MOVED_TO_BATCH,
            None,
            "next window 2026-11-22 01:00-05:00 UTC",
            id="22:00-outside",
        ),
    ],
)
def test_a_move_needs_the_time_left_in_an_open_window(
    now: datetime, action: Action, reason: Reason, job: str | None, text: str
) -> None:
    decision = _decide(now=now)
    assert (decision.action, decision.reason, decision.job_name) == (action, reason, job)
    assert text in decision.message
    if reason is Reason.WINDOW_TOO_SHORT:
        assert decision.desired_replicas is None and decision.state.original_replicas is None


def test_with_more_pods_a_later_move_still_fits() -> None:
    # 32 pods: a run needs 40m, so 03:00 (2h left) is early enough
    decision = _decide(make_spec(**WIDE), now=_at(3, 0))
    assert (decision.reason, decision.job_name) == (Reason.MOVED_TO_BATCH, JOB)


@pytest.mark.parametrize("changes", [{"mode": "Recommend"}, {"productRisk": "High"}])
def test_recommendations_are_not_flipped_by_the_time_left(changes: dict[str, Any]) -> None:
    # A recommendation describes the placement, not this minute: no Event churn at each
    # window's end.
    decision = _decide(make_spec(**changes), now=_at(4, 50))
    assert decision.reason is Reason.BATCH_RECOMMENDED


def test_too_late_tonight_moves_for_the_next_window() -> None:
    spec = make_spec()
    late = _decide(spec, now=_at(4, 50))
    assert late.reason is Reason.WINDOW_TOO_SHORT
    moved = decide(spec, _observed(), late.state, now=WINDOW_END)
    assert (moved.reason, moved.job_name) == (Reason.MOVED_TO_BATCH, None)
    # the window that just ended was never ours: no fallback, no missed window
    waiting = decide(spec, _observed(replicas=0), moved.state, now=_at(5, 5))
    assert (waiting.action, waiting.phase) == (Action.WAIT, Phase.BATCH)
    assert waiting.state.missed_windows == 0
    created = decide(spec, _observed(replicas=0), waiting.state, now=_at(1, 0, day=23))
    assert created.job_name == "summarizer-20261123-0100"


def test_with_eight_hours_too_late_tonight_waits_for_the_delay_gate() -> None:
    spec = make_spec(**EIGHT_HOURS)
    assert _decide(spec, now=_at(4, 50)).reason is Reason.WINDOW_TOO_SHORT
    assert _decide(spec, now=_at(5, 0)).reason is Reason.DELAY_NOT_TOLERATED
    assert _decide(spec, now=_at(21, 0)).reason is Reason.MOVED_TO_BATCH


def test_holding_late_in_the_window_still_creates_its_job_best_effort() -> None:
    # The operator was down from before the window until 04:50: the Job is created anyway
    # (it may do part of the work), and the window's end still decides the fallback.
    spec = make_spec()
    late = _decide(spec, _observed(replicas=0), _holding(), now=_at(4, 50))
    assert (late.action, late.reason, late.job_name) == (
        Action.CREATE_JOB,
        Reason.BATCH_JOB_CREATED,
        JOB,
    )
    # The Job's own work, held since the evening (7h), not the daily 24 held hours (2h41m).
    assert late.message.endswith("; best effort: only 10m left, batch needs 47m8s")
    running = (_job(JobOutcome.RUNNING),)
    ended = decide(spec, _observed(replicas=0, jobs=running), late.state, now=WINDOW_END)
    assert (ended.action, ended.reason) == (Action.FALLBACK, Reason.FALLBACK_RESTORED)
    assert "window 2026-11-22 01:00-05:00 UTC ended without a succeeded Job" in ended.message
    assert ended.desired_replicas == 4
    assert ended.state.missed_windows == 1


def test_a_job_created_in_time_says_nothing_about_best_effort() -> None:
    decision = _decide(observed=_observed(replicas=0), state=_holding(), now=WINDOW_OPEN)
    assert decision.job_name == JOB
    assert "best effort" not in decision.message


# ------------------------------------------------------------------------------------------
# leaving batch, and hysteresis
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec_changes", "reason_in_message"),
    [
        ({"owner": ""}, "OwnerMissing"),
        ({"latency.userVisible": True}, "StayRealtime"),
        ({"costs.batchPodHourly": 20}, "SavingsNegative"),
        ({"mode": "Recommend"}, "mode Recommend"),
        ({"productRisk": "High"}, "productRisk High"),
    ],
)
def test_leaving_batch_restores_what_the_operator_scaled_down(
    spec_changes: dict[str, Any], reason_in_message: str
) -> None:
    decision = _decide(make_spec(**spec_changes), _observed(replicas=0), _holding(), now=_at(0, 30))
    assert (decision.action, decision.reason, decision.phase) == (
        Action.RESTORE,
        Reason.RESTORED,
        Phase.REALTIME,
    )
    # restoring undoes the operator's own change, so it happens even in Recommend mode
    assert decision.actuate is True and decision.desired_replicas == 4
    assert reason_in_message in decision.message
    assert decision.state.original_replicas is None
    assert decision.state.baseline_utilization is None


# Enough parallel pods that the window always fits, so only savings decide.
WIDE = {"batch.jobTemplate.spec.parallelism": 32}


def _utilization_for_savings(savings: float, held: float = 24) -> float:
    # example costs, held h hours a day:
    # savings = 4 * 1.025 * h - 4.10 - 8 - 4 * u * h / 2 * 2 * (1 + 0.0464)
    # (h = 24: savings = 86.3 - 96 * u * 1.0464)
    return (4.1 * held - 12.1 - savings) / (4 * held * 1.0464)


# The savings band works the same whether the Deployment is held all day or 8h of it.
HELD = pytest.mark.parametrize(("delay", "held"), [("24h", 24), ("8h", 8)])


@HELD
def test_savings_inside_the_margin_band_do_not_flap_in_batch(delay: str, held: float) -> None:
    spec = make_spec(**{"costs.savingsMargin": 10, "latency.acceptableDelay": delay}, **WIDE)
    # baseline that saves 5/day: below the entry margin, above the exit threshold
    state = _holding(baseline_utilization=_utilization_for_savings(5, held))
    decision = _decide(spec, _observed(replicas=0), state, now=_at(0, 30))
    assert decision.action is Action.WAIT
    assert decision.savings_per_day == pytest.approx(5, abs=0.01)
    # the same numbers while realtime do not move it
    realtime = _decide(
        spec,
        _observed(utilization=_utilization_for_savings(5, held)),
        State(name=NAME),
        now=_at(0, 30),
    )
    assert realtime.reason is Reason.SAVINGS_NEGATIVE


def test_live_utilization_noise_cannot_flap_enforce_mode() -> None:
    spec = make_spec()
    state = _holding()
    for utilization in (0.95, 0.0, 0.99, None, 0.5):
        decision = decide(
            spec, _observed(replicas=0, utilization=utilization), state, now=_at(0, 30)
        )
        assert decision.action is Action.WAIT
        state = decision.state
    assert state.baseline_utilization == EXAMPLE_UTILIZATION


@HELD
def test_recommendations_have_hysteresis(delay: str, held: float) -> None:
    spec = make_spec(
        **{"costs.savingsMargin": 10, "mode": "Recommend", "latency.acceptableDelay": delay},
        **WIDE,
    )
    sequence = [15, 5, 15, 5, -5, 5, 15]
    expected = [
        Reason.BATCH_RECOMMENDED,
        Reason.BATCH_RECOMMENDED,  # 5 > 0: keeps recommending
        Reason.BATCH_RECOMMENDED,
        Reason.BATCH_RECOMMENDED,
        Reason.SAVINGS_NEGATIVE,  # < 0: stops
        Reason.SAVINGS_NEGATIVE,  # 5 <= margin: does not start again
        Reason.BATCH_RECOMMENDED,
    ]
    state = State(name=NAME)
    reasons, events = [], 0
    for savings in sequence:
        observed = _observed(utilization=_utilization_for_savings(savings, held))
        decision = decide(spec, observed, state, now=EVENING)
        reasons.append(decision.reason)
        events += decision.noteworthy
        state = decision.state
    assert reasons == expected
    assert events == 3


# ------------------------------------------------------------------------------------------
# conditions, invariants
# ------------------------------------------------------------------------------------------


def _condition(decision: Decision, kind: ConditionType) -> tuple[str, str]:
    report = next(c for c in decision.conditions if c.type is kind)
    return report.status, report.reason


def test_conditions_after_moving_to_batch() -> None:
    decision = _decide()
    assert {c.type for c in decision.conditions} == set(ConditionType)
    assert _condition(decision, ConditionType.READY) == ("True", "Evaluated")
    assert _condition(decision, ConditionType.OWNER_RECORDED) == ("True", "OwnerSet")
    assert _condition(decision, ConditionType.METRICS_AVAILABLE) == ("True", "MetricsFresh")
    assert _condition(decision, ConditionType.SAVINGS_POSITIVE) == ("True", "SavingsPositive")
    assert _condition(decision, ConditionType.ACTUATED) == ("True", "HoldingBatch")
    assert _condition(decision, ConditionType.FALLBACK_ACTIVE) == ("False", "NoFallback")


def test_conditions_when_blocked_and_without_owner() -> None:
    blocked = _decide(make_spec(owner=""), _observed(replicas=None))
    assert _condition(blocked, ConditionType.READY) == ("False", "TargetMissing")
    assert _condition(blocked, ConditionType.OWNER_RECORDED) == ("False", "OwnerMissing")
    unmeasured = _decide(observed=_observed(metrics_error="down"))
    assert _condition(unmeasured, ConditionType.METRICS_AVAILABLE)[0] == "False"
    assert _condition(unmeasured, ConditionType.SAVINGS_POSITIVE) == ("Unknown", "SavingsUnknown")


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        _decide(now=datetime(2026, 11, 22, 1, 30))


@settings(max_examples=300)
@given(
    replicas=st.one_of(st.none(), st.integers(0, 50)),
    utilization=st.one_of(st.none(), st.floats(-1, 2), st.just(math.nan)),
    metrics_error=st.one_of(st.none(), st.just("down")),
    holding=st.booleans(),
    original=st.integers(0, 50),
    outcome=st.one_of(st.none(), st.sampled_from(list(JobOutcome))),
    minutes=st.integers(0, 3 * 24 * 60),
    mode=st.sampled_from(["Recommend", "Enforce"]),
    fallback=st.sampled_from(["RestoreRealtime", "Alert"]),
    warm=st.integers(0, 3),
)
def test_decide_is_total_and_safe(
    replicas: int | None,
    utilization: float | None,
    metrics_error: str | None,
    holding: bool,
    original: int,
    outcome: JobOutcome | None,
    minutes: int,
    mode: str,
    fallback: str,
    warm: int,
) -> None:
    spec = make_spec(mode=mode, **{"fallback.action": fallback, "target.warmReplicas": warm})
    now = EVENING + timedelta(minutes=minutes)
    jobs = () if outcome is None else (_job(outcome, IN_WINDOW if outcome != "Running" else None),)
    state = _holding(original_replicas=original) if holding else State(name=NAME)
    observed = Observed(
        replicas=replicas, utilization=utilization, metrics_error=metrics_error, jobs=jobs
    )
    decision = decide(spec, observed, state, now=now)
    assert decision.desired_replicas is None or decision.desired_replicas >= 0
    assert decision.message and not decision.message.startswith(f"{decision.reason}:")
    bad_data = metrics_error is not None or utilization is None or not 0 <= utilization <= 1
    if not holding:
        # nothing is ever scaled down on bad data, or without Enforce
        if bad_data or mode == "Recommend":
            assert not decision.actuate
        assert decision.action is not Action.RESTORE
    if decision.actuate and decision.desired_replicas is not None and not holding:
        assert decision.desired_replicas == warm
