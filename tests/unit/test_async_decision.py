"""Async serving in decide(): the formula's terms, every gate with its reason, the choice
between batch and async, hysteresis, and leaving.

The async example: the docs/design.md placement (4 replicas at 1.025/h) with acceptableDelay
10m, far too short for the 01:00-05:00 batch window, and spec.async (scaleUpTime 2m,
targetUtilization 0.8), queue 1 USD/day, operations 8 USD/day. At utilization 0.15 the work
is 0.6 replicas -> ceil(0.6 / 0.8) = 1 async replica: capacity avoided (4 - 1) * 1.025 * 24 =
73.80, savings 73.80 - 1.00 - 8.00 = 64.80 USD/day.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from placement.core.api import MAX_AMOUNT, Action, AsyncSpec, Phase
from placement.core.asyncmode import (
    AsyncSeen,
    QueueState,
    async_costs,
    async_replicas,
    async_wins,
    idle_hours_per_day,
)
from placement.core.policy import Observed, State, decide
from placement.core.reasons import ConditionType, EventType, Reason
from placement.core.status import build_status
from tests.unit.conftest import FUZZ_FACTOR
from tests.unit.factories import EXAMPLE_UTILIZATION, make_spec
from tests.unit.test_fuzz import observations, states, times, valid_specs

NAME = "summarizer"
MIDDAY = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LOW = 0.15
SAVES = (
    "async saves 64.80 USD/day = capacity avoided 73.80 (4 -> 1 replicas) - queue 1.00"
    " - operations 8.00"
)
READY = AsyncSeen(queue=QueueState.READ, queue_detail="queue = 12", keda_installed=True)


def async_spec(**changes: Any) -> Any:
    values: dict[str, Any] = {
        "latency.acceptableDelay": "10m",
        "async": {"queue": 'sum(queue_depth{queue="summarize"})', "scaleUpTime": "2m"},
        "costs.queuePerDay": 1.0,
    }
    values.update(changes)
    return make_spec(**values)


def observed(**changes: Any) -> Observed:
    values: dict[str, Any] = {"replicas": 4, "utilization": LOW, "async_seen": READY}
    values.update(changes)
    return Observed(**values)


def in_async(**changes: Any) -> State:
    values: dict[str, Any] = {
        "name": NAME,
        "phase": Phase.ASYNC,
        "original_replicas": 4,
        "baseline_utilization": LOW,
        "async_since": MIDDAY.replace(hour=9),
        "last_action": Action.MOVE_TO_ASYNC,
        "last_reason": Reason.MOVED_TO_ASYNC,
    }
    values.update(changes)
    return State(**values)


# -- the formula ---------------------------------------------------------------------------------


def test_every_term_of_the_async_savings() -> None:
    spec = async_spec()
    assert spec.async_ is not None
    breakdown = async_costs(spec.costs, spec.async_, replicas=4, warm_replicas=0, utilization=LOW)
    assert breakdown.work_replicas == pytest.approx(0.6)
    assert breakdown.busy_replicas == 1
    assert breakdown.expected_replicas == 1
    assert breakdown.capacity_avoided == pytest.approx(73.8)
    assert (breakdown.queue, breakdown.operations) == (1.0, 8.0)
    assert breakdown.savings == pytest.approx(64.8)
    assert breakdown.format("USD") == SAVES


def test_hours_with_no_work_run_warm_replicas_and_the_days_work_is_not_made_smaller() -> None:
    spec = async_spec()
    assert spec.async_ is not None
    # Half the history at zero: the day's 0.6 * 24 replica-hours arrive in 12 busy hours at
    # 1.2 replicas of work -> ceil(1.5) = 2 replicas for 12h, warm (1) for the other 12h.
    breakdown = async_costs(
        spec.costs, spec.async_, replicas=4, warm_replicas=1, utilization=LOW, idle_hours=12
    )
    assert breakdown.busy_replicas == 2
    assert breakdown.expected_replicas == pytest.approx(1.5)
    assert breakdown.capacity_avoided == pytest.approx(2.5 * 1.025 * 24)
    assert idle_hours_per_day([0.0, 0.3, 0.0, 0.5]) == 12
    assert idle_hours_per_day([]) is None


def test_async_replicas_are_whole_and_bounded_by_warm_and_the_original_count() -> None:
    assert async_replicas(0.6, target=0.8, warm=0, maximum=4) == 1
    assert async_replicas(0.8, target=0.8, warm=0, maximum=4) == 1  # exactly at target
    assert async_replicas(0.0, target=0.8, warm=0, maximum=4) == 0  # scale to zero
    assert async_replicas(0.0, target=0.8, warm=2, maximum=4) == 2
    assert async_replicas(9.0, target=0.8, warm=0, maximum=4) == 4


# -- moving, and each gate -----------------------------------------------------------------------


def test_async_fits_where_the_batch_window_does_not_and_moves() -> None:
    decision = decide(async_spec(), observed(), State(name=NAME), now=MIDDAY)
    assert (decision.action, decision.phase, decision.reason) == (
        Action.MOVE_TO_ASYNC,
        Phase.ASYNC,
        Reason.MOVED_TO_ASYNC,
    )
    assert decision.actuate and decision.desired_replicas is None  # KEDA sets the count
    assert decision.message.startswith(SAVES)
    assert "scaledobject/placement-summarizer: 0 to 4 replicas" in decision.message
    assert decision.savings_per_day == 64.8
    assert decision.state.original_replicas == 4 and decision.state.async_since == MIDDAY
    assert decision.state.baseline_utilization == LOW


def test_a_slow_scale_up_keeps_it_realtime() -> None:
    spec = async_spec(**{"async.scaleUpTime": "15m"})
    decision = decide(spec, observed(), State(name=NAME), now=MIDDAY)
    assert (decision.phase, decision.reason) == (Phase.REALTIME, Reason.SCALE_UP_TOO_SLOW)
    assert "acceptableDelay 10m is not longer than async.scaleUpTime 15m" in decision.message
    assert "batch: DelayNotTolerated" in decision.message  # and why batch does not fit either
    assert decision.savings_per_day == 64.8  # what it would save


@pytest.mark.parametrize(
    ("seen", "why"),
    [
        (AsyncSeen(keda_installed=True), "not read"),
        (AsyncSeen(QueueState.EMPTY, "queue query empty: no series", True), "no series"),
        (AsyncSeen(QueueState.FAILED, "queue query error: 503", True), "503"),
    ],
)
def test_a_queue_that_cannot_be_read_keeps_it_realtime(seen: AsyncSeen, why: str) -> None:
    decision = decide(async_spec(), observed(async_seen=seen), State(name=NAME), now=MIDDAY)
    assert decision.reason is Reason.ASYNC_QUEUE_UNAVAILABLE
    assert decision.event_type is EventType.WARNING and decision.phase is Phase.REALTIME
    assert why in decision.message and not decision.actuate


@pytest.mark.parametrize(
    ("installed", "why"),
    [(False, "is not served in this cluster"), (None, "not known yet")],
)
def test_without_keda_the_placement_stays_realtime_saying_async_needs_it(
    installed: bool | None, why: str
) -> None:
    seen = replace(READY, keda_installed=installed)
    decision = decide(async_spec(), observed(async_seen=seen), State(name=NAME), now=MIDDAY)
    assert (decision.action, decision.phase) == (Action.STAY, Phase.REALTIME)
    assert decision.reason is Reason.ASYNC_NEEDS_KEDA
    assert decision.message.startswith("async needs KEDA: ") and why in decision.message
    assert decision.state.original_replicas is None


def test_async_that_loses_money_leaves_the_word_to_the_batch_path() -> None:
    spec = async_spec(**{"costs.queuePerDay": 100.0})
    decision = decide(spec, observed(), State(name=NAME), now=MIDDAY)
    assert decision.reason is Reason.DELAY_NOT_TOLERATED  # batch's reason, as without async
    assert decision.async_breakdown is not None and decision.async_breakdown.savings < 0


def test_no_async_section_changes_nothing() -> None:
    decision = decide(
        make_spec(), observed(utilization=EXAMPLE_UTILIZATION), State(NAME), now=MIDDAY
    )
    assert decision.reason is Reason.MOVED_TO_BATCH and decision.async_breakdown is None


@pytest.mark.parametrize("changes", [{"mode": "Recommend"}, {"productRisk": "High"}])
def test_recommend_or_high_risk_recommends_async_and_touches_nothing(
    changes: dict[str, Any],
) -> None:
    decision = decide(async_spec(**changes), observed(), State(name=NAME), now=MIDDAY)
    assert (decision.action, decision.reason) == (Action.MOVE_TO_ASYNC, Reason.ASYNC_RECOMMENDED)
    assert decision.phase is Phase.REALTIME and not decision.actuate
    assert decision.state.original_replicas is None
    assert "would hand deployment/summarizer to a KEDA ScaledObject" in decision.message


def test_user_visible_work_stays_realtime_with_the_shared_reason() -> None:
    spec = async_spec(**{"latency.userVisible": True})
    decision = decide(spec, observed(), State(name=NAME), now=MIDDAY)
    assert decision.reason is Reason.STAY_REALTIME


# -- batch or async ------------------------------------------------------------------------------


def test_when_both_fit_the_larger_saving_wins() -> None:
    # acceptableDelay 24h: batch fits all day. At 0.15 batch saves 71.23, async 64.80.
    both = {"latency.acceptableDelay": "24h"}
    decision = decide(async_spec(**both), observed(), State(name=NAME), now=MIDDAY)
    assert decision.reason is Reason.MOVED_TO_BATCH
    assert decision.async_breakdown is not None
    assert decision.breakdown is not None
    assert decision.breakdown.savings > decision.async_breakdown.savings
    # Dearer batch pods: batch saves 41.10, async still 64.80.
    dear = async_spec(**both, **{"costs.batchPodHourly": 6.0})
    decision = decide(dear, observed(), State(name=NAME), now=MIDDAY)
    assert decision.reason is Reason.MOVED_TO_ASYNC
    assert "; batch would save 41.10;" in decision.message


def test_a_tie_goes_to_async_and_the_last_recommendation_is_kept_within_the_margin() -> None:
    assert async_wins(50.0, 50.0, margin=5, incumbent=None)
    assert async_wins(50.0, 50.004, margin=5, incumbent=None)  # the same to the cent
    assert not async_wins(50.0, 50.02, margin=5, incumbent=None)
    assert not async_wins(54.0, 50.0, margin=5, incumbent="batch")
    assert async_wins(55.02, 50.0, margin=5, incumbent="batch")
    assert async_wins(46.0, 50.0, margin=5, incumbent="async")
    assert not async_wins(44.0, 50.0, margin=5, incumbent="async")


# -- in async: staying, hysteresis, leaving ------------------------------------------------------


def test_in_async_it_waits_quietly_while_keda_sets_the_replicas() -> None:
    decision = decide(async_spec(), observed(replicas=1), in_async(), now=MIDDAY)
    assert (decision.action, decision.phase, decision.reason) == (
        Action.WAIT,
        Phase.ASYNC,
        Reason.MOVED_TO_ASYNC,
    )
    assert not decision.noteworthy and not decision.actuate
    assert decision.desired_replicas is None
    actuated = next(c for c in decision.conditions if c.type is ConditionType.ACTUATED)
    assert actuated.reason == "HoldingAsync"


def test_in_async_an_empty_queue_is_an_empty_queue_and_live_metrics_are_not_needed() -> None:
    seen = AsyncSeen(QueueState.EMPTY, "no series", True)
    bad = observed(replicas=0, utilization=None, metrics_error="timeout", async_seen=seen)
    decision = decide(async_spec(), bad, in_async(), now=MIDDAY)
    assert decision.reason is Reason.MOVED_TO_ASYNC and decision.phase is Phase.ASYNC
    assert decision.savings_per_day == 64.8  # from the baseline frozen at the move


def test_hysteresis_staying_needs_only_no_loss() -> None:
    # Margin 70: a move needs more than 70 a day, staying only >= 0.
    spec = async_spec(**{"costs.savingsMargin": 70.0})
    assert decide(spec, observed(), State(name=NAME), now=MIDDAY).reason is not (
        Reason.MOVED_TO_ASYNC
    )
    assert decide(spec, observed(), in_async(), now=MIDDAY).reason is Reason.MOVED_TO_ASYNC


@pytest.mark.parametrize(
    ("spec_changes", "seen", "why"),
    [
        ({"costs.queuePerDay": 100.0}, READY, "SavingsNegative: async loses money"),
        ({"async.scaleUpTime": "15m"}, READY, "ScaleUpTooSlow"),
        ({}, AsyncSeen(QueueState.FAILED, "error: 503", True), "AsyncQueueUnavailable"),
        ({}, replace(READY, keda_installed=False), "AsyncNeedsKeda"),
        ({"mode": "Recommend"}, READY, "mode Recommend"),
        ({"productRisk": "High"}, READY, "productRisk High"),
        ({"latency.userVisible": True}, READY, "StayRealtime"),
        ({"owner": ""}, READY, "OwnerMissing"),
        ({"async": None}, READY, "spec.async was removed"),
    ],
)
def test_leaving_async_deletes_the_scaled_object_and_restores(
    spec_changes: dict[str, Any], seen: AsyncSeen, why: str
) -> None:
    decision = decide(
        async_spec(**spec_changes), observed(replicas=1, async_seen=seen), in_async(), now=MIDDAY
    )
    assert (decision.action, decision.phase, decision.reason) == (
        Action.RESTORE,
        Phase.REALTIME,
        Reason.LEFT_ASYNC,
    )
    assert decision.actuate and decision.desired_replicas == 4
    assert decision.message.startswith(
        "scaledobject/placement-summarizer deleted, deployment/summarizer 1 -> 4;"
    )
    assert why in decision.message
    assert decision.state.original_replicas is None and decision.state.async_since is None
    assert decision.noteworthy


# -- fuzz --------------------------------------------------------------------------------------

UNITS = ["Requests", "Tokens"]
_seen = st.builds(
    AsyncSeen,
    queue=st.sampled_from(list(QueueState)),
    queue_detail=st.text(max_size=8),
    keda_installed=st.sampled_from([True, False, None]),
)


@st.composite
def _async_case(draw: st.DrawFn) -> tuple[Any, Observed, State]:
    spec = draw(valid_specs())
    spec = spec.model_copy(
        update={
            "async_": AsyncSpec.model_validate(
                {
                    "queue": "q",
                    "targetUtilization": draw(st.floats(0.05, 1)),
                    "scaleUpTime": draw(st.sampled_from(["1s", "2m", "6h"])),
                }
            ),
            "costs": spec.costs.model_copy(
                update={"queue_per_day": draw(st.floats(0, MAX_AMOUNT))}
            ),
            "metrics": spec.metrics.model_copy(
                update={
                    "requests": "r",
                    "requests_unit": draw(st.sampled_from(["Requests", "Tokens"])),
                }
            ),
        }
    )
    observed = replace(
        draw(observations("fuzz-20260329-0100")),
        requests=draw(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))),
        async_seen=draw(_seen),
        idle_hours=draw(st.one_of(st.none(), st.floats(0, 24))),
    )
    state = replace(draw(states()), async_since=draw(st.one_of(st.none(), times)))
    return spec, observed, state


@settings(max_examples=settings.default.max_examples * FUZZ_FACTOR)
@given(case=_async_case(), now=times)
def test_async_decisions_never_raise_and_move_only_on_what_they_can_trust(
    case: tuple[Any, Observed, State], now: datetime
) -> None:
    spec, seen, state = case
    decision = decide(spec, seen, state, now=now)
    if decision.action is Action.MOVE_TO_ASYNC and decision.actuate:
        assert seen.async_seen.queue is QueueState.READ
        assert seen.async_seen.keda_installed is True
        assert seen.utilization is not None and 0 <= seen.utilization <= 1
        assert decision.async_breakdown is not None
        assert decision.async_breakdown.savings > spec.costs.savings_margin
    if decision.savings_per_day is not None:
        assert math.isfinite(decision.savings_per_day)
    assert decision.desired_replicas is None or decision.desired_replicas >= 0
    build_status(decision, None, generation=1)  # validates: what the handler would write
