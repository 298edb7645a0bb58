"""The plan says what depends on what: a move validates the Job, then takes the hold, then
creates the Job, each step requiring the one before; a refused validation ends the plan
before anything is scaled. Nothing is inferred after the steps ran."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from placement.adapters.fakecluster import FakeCluster
from placement.core.executor import execute
from placement.core.observation import DeploymentState, Observation, Outcome, Reading
from placement.core.reconcile import CreateJob, Placement, TakeHold, ValidateJob, reconcile
from tests.unit.factories import example_manifest, make_spec
from tests.unit.fake_operator import Recorder

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # inside the window


def _move() -> tuple[Placement, Observation]:
    placement = Placement("summarizer", "ml", 1, example_manifest()["spec"], {})
    deployment = DeploymentState("summarizer", 4, None, None, resource_version="1")
    reading = Reading("utilization", "x", Outcome.OK, 0.44896, sampled_at=NOW)
    return placement, Observation(deployment, utilization=reading)


def test_a_move_is_validate_then_hold_then_create() -> None:
    placement, observation = _move()
    plan = reconcile(placement, make_spec(), observation, NOW)
    validate, hold, create = plan.steps
    assert isinstance(validate, ValidateJob) and validate.requires == ()
    assert isinstance(hold, TakeHold) and hold.requires == ("validate",)
    assert (hold.replicas, hold.original) == (0, 4)
    assert isinstance(create, CreateJob) and create.requires == ("hold",)
    assert validate.job == create.job
    assert plan.report.event is not None and plan.report.event.reason == "MovedToBatch"


def test_a_refused_validation_stops_the_hold_and_the_job() -> None:
    placement, observation = _move()
    plan = reconcile(placement, make_spec(), observation, NOW)
    cluster = FakeCluster()
    cluster.add("summarizer", 4)
    cluster.refuse_jobs = "422: spec.template.spec.containers[0].image: Required value"
    executed = execute(plan, cluster, Recorder(), namespace="ml", placement="summarizer")
    assert executed.steps[0].startswith("ValidateJob")
    assert not any(step.startswith(("TakeHold", "CreateJob")) for step in executed.steps)
    assert cluster.writes == []
    assert executed.report.status is not None and executed.report.status["phase"] == "Blocked"
    event = executed.report.event
    assert event is not None and event.reason == "BatchJobRejected"
    assert "(422: spec.template" in event.message


def test_a_failed_job_brings_the_next_evaluation_to_its_retry_windows_end() -> None:
    """The Job watch wakes the evaluation when the Job fails; the fallback then follows
    retryWindow, not the next evaluationInterval (a 2m grace would otherwise be up to 5m)."""
    from datetime import timedelta

    from placement.core.policy import JobObservation, JobOutcome

    placement, observation = _move()

    def interval(retry_window: str, failed_ago: timedelta) -> float:
        failed = JobObservation(
            "summarizer-20261124-0100", JobOutcome.FAILED, finished_at=NOW - failed_ago
        )
        spec = make_spec(**{"batch.retryWindow": retry_window, "evaluationInterval": "5m"})
        seen = replace(observation, jobs=(failed,))
        return reconcile(placement, spec, seen, NOW).interval

    assert interval("2m", timedelta(seconds=10)) == 111  # just past the grace period
    assert interval("30m", timedelta(seconds=10)) == 300  # the interval comes first
    assert interval("2m", timedelta(minutes=3)) == 300  # past already: as usual


def test_the_next_evaluation_comes_at_the_moment_the_decision_turns_on() -> None:
    """A move at 21:00 (acceptableDelay 8h before a 05:00 window end) or a Job at the
    window's 01:00 start happens then, not up to an evaluationInterval (5m) later."""
    placement, observation = _move()

    def interval(now: datetime, **changes: str) -> float:
        spec = make_spec(evaluationInterval="5m", **changes)
        reading = Reading("utilization", "x", Outcome.OK, 0.44896, sampled_at=now)
        seen = replace(observation, utilization=reading)
        return reconcile(placement, spec, seen, now).interval

    evening = datetime(2026, 11, 23, 20, 58, tzinfo=UTC)
    assert interval(evening, **{"latency.acceptableDelay": "8h"}) == 121  # 21:00:01
    night = datetime(2026, 11, 24, 0, 57, tzinfo=UTC)
    assert interval(night) == 181  # the window's start, 01:00:01
    noon = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert interval(noon, **{"latency.acceptableDelay": "8h"}) == 300  # nothing before
