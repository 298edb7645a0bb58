"""/healthz's view of evaluations: stuck or failing for longer than the bound is not live;
no placements, or a recovery, is."""

from __future__ import annotations

from placement.runtime.liveness import Liveness


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_idle_is_live() -> None:
    assert Liveness(30, Clock()).problem() is None


def test_an_evaluation_running_past_the_bound_is_reported() -> None:
    clock = Clock()
    liveness = Liveness(30, clock)
    liveness.started("ml/nightly")
    clock.now += 29
    assert liveness.problem() is None
    clock.now += 2
    assert liveness.problem() == "evaluation of ml/nightly running for 31s (bound 30s)"
    liveness.finished("ml/nightly", ok=True)
    assert liveness.problem() is None


def test_failing_evaluations_with_none_completing_are_reported_until_one_completes() -> None:
    clock = Clock()
    liveness = Liveness(30, clock)
    for _ in range(8):  # e.g. every request times out against a paused API server
        liveness.started("ml/a")
        clock.now += 5
        liveness.finished("ml/a", ok=False)
    problem = liveness.problem()
    assert problem is not None and "no evaluation completed for 35s" in problem
    liveness.started("ml/a")
    liveness.finished("ml/a", ok=True)
    assert liveness.problem() is None
    assert liveness.summary() == {"completed": 1, "running": 0}


def test_one_placement_failing_among_working_ones_is_not_a_liveness_problem() -> None:
    clock = Clock()
    liveness = Liveness(30, clock)
    for _ in range(10):
        liveness.finished("ml/broken", ok=False)
        liveness.finished("ml/fine", ok=True)
        clock.now += 10
    assert liveness.problem() is None
