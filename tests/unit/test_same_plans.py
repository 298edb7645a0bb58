"""Replay and the operator run the same plans: one scripted scenario (a move, the window's
Job, its success, a failed night, the fallback, the deletion) through the operator's
executor against the in-memory FakeCluster and through replay's simulation gives the same
steps at the same moments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from placement.core.policy import JobOutcome
from placement.replay.replay import ReplayOptions, replay
from placement.replay.series import Sample
from tests.unit.factories import example_manifest, make_spec
from tests.unit.fake_operator import ASYNC_QUERY, AsyncOperator, FakeOperator

START = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
FAILS_AT = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # the second night's Job fails


def _series() -> list[Sample]:
    samples = []
    for step in range(60 * 12):  # 60 hours, every 5 minutes
        at = START + timedelta(minutes=5 * step)
        samples.append(Sample(at, 4, 0.45, job_outcome="failed" if at == FAILS_AT else None))
    return samples


def test_the_operator_and_replay_carry_out_the_same_steps() -> None:
    samples = _series()
    # The fake operator's Prometheus has no history: neither has the replay's.
    replayed = replay(
        make_spec(),
        samples,
        name="summarizer",
        options=ReplayOptions(delete_at_end=True, read_history=False),
    )
    operator = FakeOperator()
    operator.metrics.value = 0.45
    seen: list[tuple[datetime, tuple[str, ...]]] = []
    *evaluations, (deleted_at, _) = replayed.trace
    for at, _ in evaluations:
        # The world moves as in the replay: its Jobs finish when the simulated ones did.
        for job in replayed.jobs:
            finished = job.finished_at
            if finished is not None and finished <= at and job.name in operator.cluster.jobs:
                operator.cluster.finish(job.name, job.outcome, finished, job.pod_hours)
        seen.append((at, operator.evaluate(at).steps))
    seen.append((deleted_at, operator.delete()))

    def acted(
        trace: list[tuple[datetime, tuple[str, ...]]],
    ) -> list[tuple[datetime, tuple[str, ...]]]:
        return [(at, steps) for at, steps in trace if steps]

    assert acted(seen) == acted(list(replayed.trace))
    kinds = [step.split()[0] + " " + step.split()[1] for _, steps in acted(seen) for step in steps]
    for expected in (
        "Event MovedToBatch",
        "CreateJob summarizer-20261124-0100",
        "Event BatchSucceeded",
        "Event BatchJobFailed",
        "Event FallbackRestored",
        "Event Restored",  # the deletion gives the replicas back
    ):
        assert expected in kinds
    assert {job.outcome for job in replayed.jobs} == {JobOutcome.SUCCEEDED, JobOutcome.FAILED}


def test_async_runs_the_same_plans_in_the_operator_and_in_replay() -> None:
    # acceptableDelay 10m: no batch window fits; at 0.15 async saves 64.80 a day. The
    # operator's fake KEDA sets the replicas replay's KEDA set at each evaluation.
    manifest = example_manifest()
    spec = manifest["spec"]
    spec["latency"]["acceptableDelay"] = "10m"
    spec["async"] = {"queue": ASYNC_QUERY, "scaleUpTime": "2m"}
    spec["costs"]["queuePerDay"] = 1.0
    samples = [Sample(START + timedelta(minutes=5 * i), 4, 0.15) for i in range(12 * 6)]
    replayed = replay(
        make_spec(
            **{"latency.acceptableDelay": "10m", "async": spec["async"], "costs.queuePerDay": 1.0}
        ),
        samples,
        name="summarizer",
        options=ReplayOptions(delete_at_end=True),
    )
    operator = AsyncOperator(manifest=manifest, requests=None)
    operator.metrics.value = 0.15
    replicas = {step.at: step.deployment_replicas for step in replayed.steps}
    seen: list[tuple[datetime, tuple[str, ...]]] = []
    *evaluations, (deleted_at, _) = replayed.trace
    for at, _ in evaluations:
        if operator.cluster.scaled_objects:
            operator.cluster.scale("summarizer", replicas[at])
        seen.append((at, operator.evaluate(at).steps))
    seen.append((deleted_at, operator.delete()))
    acted = [(at, steps) for at, steps in seen if steps]
    assert acted == [(at, steps) for at, steps in replayed.trace if steps]
    assert acted[0][1] == (
        "TakeHold deployment/summarizer 4",
        "ApplyScaledObject placement-summarizer",
        "Event MovedToAsync",
    )
    assert acted[-1][1][:2] == (
        "DeleteScaledObject placement-summarizer",
        "Restore deployment/summarizer 4",
    )
