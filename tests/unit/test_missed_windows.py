"""The missed-window term: costs.missedWindowCost x the missed-window rate, per day, shown as
its own term in the message, the breakdown in status, explain and the Events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from placement.core.api import LearningSpec
from placement.core.explain import explain
from placement.core.learning import Run, learn
from placement.core.policy import Observed, State, decide
from placement.core.status import build_status
from tests.unit.factories import EXAMPLE_UTILIZATION, make_spec

IN_WINDOW = datetime(2026, 11, 22, 1, 30, tzinfo=UTC)
RISKY = {"costs.missedWindowCost": 200, "costs.missedWindowRate": 0.05}


def _succeeded(day: int) -> Run:
    finished = datetime(2026, 11, day, 3, 0, tzinfo=UTC)
    return Run(f"summarizer-202611{day:02d}-0100", finished, True, 4.0, 0.0, 8.0)


def test_declared_rate_prices_a_missed_window_per_day() -> None:
    # 200 USD a missed window x 0.05 of the windows = 10.00 a day: 41.20 - 10.00 = 31.20
    decision = decide(
        make_spec(**RISKY),
        Observed(replicas=4, utilization=EXAMPLE_UTILIZATION),
        State(name="summarizer"),
        now=IN_WINDOW,
    )
    assert decision.savings_per_day == 31.20
    assert decision.message.startswith(
        "saves 31.20 USD/day = capacity avoided 98.40 - batch 43.10 - staging 4.10"
        " - retries 2.00 - operations 8.00 - missed windows 10.00;"
    )
    status = build_status(decision, None)
    assert status.decision is not None and status.decision.breakdown is not None
    assert status.decision.breakdown.missed_window_risk == 10.0
    dumped = status.model_dump(by_alias=True, mode="json")
    assert dumped["decision"]["breakdown"]["missedWindowRisk"] == 10.0


def test_explain_shows_the_term() -> None:
    answer = explain(make_spec(**RISKY), 4, EXAMPLE_UTILIZATION, None, IN_WINDOW)
    assert answer["breakdown"]["missedWindowRisk"] == 10.0
    assert "missed windows 10.00" in answer["message"]


def test_the_rate_is_measured_once_min_runs_windows_are_known() -> None:
    spec = make_spec(**RISKY)
    runs = tuple(_succeeded(day) for day in range(16, 20))  # 4 windows with a success
    early = learn(spec.costs, spec.learning, runs[:3], missed_windows=1)
    assert early.missed_window_rate is not None
    assert early.missed_window_rate.runs == 4  # windows known < minRuns 5: declared
    assert not early.missed_window_rate.in_use
    assert early.costs(spec.costs).missed_window_rate == 0.05
    known = learn(spec.costs, spec.learning, runs, missed_windows=1)
    assert known.missed_window_rate is not None
    assert known.missed_window_rate.measured == pytest.approx(0.2)  # 1 of 5 windows
    assert known.missed_window_rate.in_use
    assert "missedWindowRate 0.200 measured over 5 windows (declared 0.05)" in known.describe()


def test_a_placement_that_missed_windows_prices_them_from_its_own_history() -> None:
    # 1 of 5 windows missed: 200 x 0.2 = 40.00 a day, 41.20 - 40.00 = 1.20
    state = State(
        name="summarizer",
        missed_windows=1,
        runs=tuple(_succeeded(day) for day in range(16, 20)),
    )
    decision = decide(
        make_spec(**RISKY, **{"costs.batchEfficiency": 2.0}),
        Observed(replicas=4, utilization=EXAMPLE_UTILIZATION),
        state,
        now=IN_WINDOW,
    )
    assert decision.breakdown is not None
    assert decision.breakdown.missed_window_risk == pytest.approx(40.0)
    assert "missed windows 40.00" in decision.message
    assert "missedWindowRate 0.200 measured over 5 windows" in decision.message
    learning = build_status(decision, None).learning
    assert learning.missed_window_rate is not None
    assert (learning.missed_window_rate.measured, learning.missed_window_rate.runs) == (0.2, 5)


def test_without_a_cost_per_missed_window_the_rate_is_shown_but_changes_nothing() -> None:
    spec = make_spec()
    learned = learn(
        spec.costs, LearningSpec.model_validate({"minRuns": 1}), (_succeeded(16),), missed_windows=1
    )
    assert learned.missed_window_rate is not None
    assert learned.missed_window_rate.measured == pytest.approx(0.5)
    assert not learned.missed_window_rate.in_use
    assert "missedWindowRate" not in learned.describe()


def test_every_window_missed_is_a_rate_of_one_not_more() -> None:
    spec = make_spec(**RISKY)
    learned = learn(spec.costs, LearningSpec.model_validate({"minRuns": 1}), (), missed_windows=7)
    assert learned.missed_window_rate is not None
    assert learned.missed_window_rate.measured == 1.0
    assert learned.costs(spec.costs).missed_window_rate == 1.0
