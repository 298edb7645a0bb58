"""Learning from finished Jobs: the measurement, its use in decide(), status and the Job."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client

from placement.adapters.kube import job_state
from placement.core.api import MIN_EFFICIENCY, Action, LearningSpec, Phase, WorkloadPlacementStatus
from placement.core.jobs import job_manifest
from placement.core.labels import WORK_ANNOTATION
from placement.core.learning import Run, learn, record
from placement.core.policy import JobObservation, JobOutcome, Observed, State, decide
from placement.core.status import build_status, state_from_status
from tests.unit.factories import EXAMPLE_UTILIZATION, make_spec

NAME = "summarizer"
IN_WINDOW = datetime(2026, 11, 22, 1, 30, tzinfo=UTC)
T0 = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


def _run(
    job: str, *, ok: bool = True, pod: float = 4.0, failed: float = 0.0, work: float | None = 8.0
) -> Run:
    return Run(job, T0 + timedelta(days=int(job[-1])), ok, pod, failed, work)


def test_measured_values_by_hand() -> None:
    # efficiency: (6 + 8) work / ((4 - 1) + 4) productive pod-hours = 2.0
    # retry rate: (1 + 2) failed / (4 + 4 + 2) pod-hours = 0.3
    runs = [
        _run("j1", work=6.0, failed=1.0),
        _run("j2"),
        _run("j3", ok=False, pod=2.0, failed=2.0, work=None),
    ]
    costs = make_spec().costs
    learned = learn(costs, LearningSpec.model_validate({"minRuns": 3}), runs)
    assert learned.batch_efficiency.measured == pytest.approx(2.0)
    assert learned.batch_efficiency.runs == 2  # the failed run did no work
    assert not learned.batch_efficiency.in_use  # 2 succeeded runs < minRuns 3
    assert learned.retry_rate.measured == pytest.approx(0.3)
    assert learned.retry_rate.runs == 3
    assert learned.retry_rate.in_use
    used = learned.costs(costs)
    assert used.batch_efficiency == costs.batch_efficiency
    assert used.retry_rate == pytest.approx(0.3)


def test_measured_values_are_not_used_when_switched_off() -> None:
    learned = learn(
        make_spec().costs,
        LearningSpec.model_validate({"useMeasured": False, "minRuns": 1}),
        [_run("j1")],
    )
    assert learned.batch_efficiency.measured == pytest.approx(2.0)
    assert not learned.in_use


def test_only_the_latest_runs_count_and_none_twice() -> None:
    runs = record((), [_run("j2"), _run("j1")], keep=2)
    assert [r.job for r in runs] == ["j1", "j2"]
    runs = record(runs, [_run("j1", pod=100.0), _run("j3")], keep=2)  # j1 is known
    assert [r.job for r in runs] == ["j2", "j3"]


def test_min_runs_must_not_exceed_max_runs() -> None:
    with pytest.raises(ValueError, match="minRuns"):
        LearningSpec.model_validate({"minRuns": 5, "maxRuns": 4})


def _finished_job(
    name: str, *, pod_hours: float, work: float, failed: float = 0.0
) -> JobObservation:
    return JobObservation(
        name=name,
        outcome=JobOutcome.SUCCEEDED,
        finished_at=T0,
        pod_hours=pod_hours,
        failed_pod_hours=failed,
        work_replica_hours=work,
    )


def test_decide_measures_finished_jobs_and_uses_them_once_enough_exist() -> None:
    # The example declares batchEfficiency 2.0; the Job did 10.8 replica-hours in 10.8
    # pod-hours: efficiency 1. With minRuns 1 the batch term doubles: 43.10 -> 86.20.
    # (16 pods, so that the whole day's 43.10 pod-hours still fit 0.8 of the window.)
    spec = make_spec(
        **{
            "learning.minRuns": 1,
            "costs.retryRate": 0.0,
            "batch.jobTemplate.spec.parallelism": 16,
        }
    )
    observed = Observed(
        replicas=4,
        utilization=EXAMPLE_UTILIZATION,
        jobs=(_finished_job("summarizer-20261120-0100", pod_hours=10.8, work=10.8),),
    )
    decision = decide(spec, observed, State(NAME), now=IN_WINDOW)
    assert decision.state.runs == (Run("summarizer-20261120-0100", T0, True, 10.8, 0.0, 10.8),)
    assert decision.breakdown is not None
    assert decision.breakdown.batch_processing == pytest.approx(86.20, abs=0.01)
    assert decision.inputs.batch_efficiency == 1.0
    assert "batchEfficiency 1.00 measured over 1 runs (declared 2)" in decision.message
    # A running Job is not measured.
    running = Observed(
        replicas=4,
        utilization=EXAMPLE_UTILIZATION,
        jobs=(JobObservation("summarizer-20261122-0100", JobOutcome.RUNNING),),
    )
    assert decide(spec, running, State(NAME), now=IN_WINDOW).state.runs == ()


def test_the_window_job_is_given_the_work_held_before_the_window_ends() -> None:
    # Moving at 01:30 inside the 01:00-05:00 window: 3.5 h held * 4 replicas * 0.44896.
    decision = decide(
        make_spec(),
        Observed(replicas=4, utilization=EXAMPLE_UTILIZATION),
        State(NAME),
        now=IN_WINDOW,
    )
    assert decision.job_name is not None
    assert decision.job_work_replica_hours == pytest.approx(3.5 * 4 * EXAMPLE_UTILIZATION, abs=1e-4)
    manifest = job_manifest(
        make_spec(),
        placement=NAME,
        job_name=decision.job_name,
        window_label="20261122-0100",
        work_replica_hours=decision.job_work_replica_hours,
    )
    assert manifest["metadata"]["annotations"][WORK_ANNOTATION] == "6.2854"


def test_status_shows_measured_beside_declared_and_survives_a_restart() -> None:
    spec = make_spec(**{"learning.minRuns": 2})
    observed = Observed(
        replicas=4,
        utilization=EXAMPLE_UTILIZATION,
        jobs=(_finished_job("summarizer-20261120-0100", pod_hours=4.0, work=6.0, failed=1.0),),
    )
    decision = decide(spec, observed, State(NAME), now=IN_WINDOW)
    status = build_status(decision, None)
    body = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    assert body["learning"]["batchEfficiency"] == {
        "declared": 2.0,
        "measured": 2.0,
        "runs": 1,
        "inUse": False,
    }
    assert body["learning"]["retryRate"] == {
        "declared": 0.0464,
        "measured": 0.25,
        "runs": 1,
        "inUse": False,
    }
    assert body["learning"]["runs"][0]["job"] == "summarizer-20261120-0100"
    assert body["decision"]["inputs"]["batchEfficiency"] == 2.0
    reread = state_from_status(NAME, WorkloadPlacementStatus.model_validate(body))
    assert reread.runs == decision.state.runs
    assert reread.phase is Phase.BATCH


def test_a_finished_job_is_measured_from_its_status_alone() -> None:
    started = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
    job = client.V1Job(
        metadata=client.V1ObjectMeta(
            name="summarizer-20261122-0100", annotations={WORK_ANNOTATION: "21.55"}
        ),
        spec=client.V1JobSpec(parallelism=8, completions=4, template=client.V1PodTemplateSpec()),
        status=client.V1JobStatus(
            start_time=started,
            succeeded=4,
            failed=1,
            conditions=[
                client.V1JobCondition(
                    type="Complete",
                    status="True",
                    last_transition_time=started + timedelta(hours=2),
                )
            ],
        ),
    )
    state = job_state(job)
    assert state.outcome is JobOutcome.SUCCEEDED
    assert state.pod_hours == pytest.approx(8.0)  # 2 h * min(parallelism 8, completions 4)
    assert state.failed_pod_hours == pytest.approx(8.0 / 5)  # 1 of 5 pods failed
    assert state.work_replica_hours == 21.55


# -- learned values are bounded like declared ones (issue 15, finding 6) ---------------------


def test_a_job_reporting_a_denormal_work_figure_cannot_make_savings_nan() -> None:
    # Issue 15: a Job annotated `work-replica-hours: 5e-324` measured an efficiency of
    # 5e-324 / 0.5 pod-hours = 1e-323, so batch pod-hours were infinite and the savings NaN
    # (inf - inf); the status patch never landed and the placement was never evaluated again.
    spec = make_spec(**{"learning.minRuns": 1})
    job = _finished_job("summarizer-20261120-0100", pod_hours=0.5, work=5e-324)
    decision = decide(
        spec,
        Observed(replicas=4, utilization=EXAMPLE_UTILIZATION, jobs=(job,)),
        State(NAME),
        now=IN_WINDOW,
    )
    assert decision.savings_per_day is not None and math.isfinite(decision.savings_per_day)
    used = decision.learned
    assert used is not None and used.batch_efficiency.in_use
    assert used.batch_efficiency.value == MIN_EFFICIENCY  # as low as a declaration may go
    body = build_status(decision, None).model_dump(by_alias=True, mode="json", exclude_none=True)
    assert body["decision"]["savingsPerDay"] == decision.savings_per_day
    assert "nan" not in decision.message.lower()


def test_a_learned_efficiency_of_zero_while_holding_still_lets_the_fallback_run() -> None:
    # Issue 15: work figures so small that work / pod-hours rounds to 0.0 raised
    # ZeroDivisionError in decide() while holding, before the fallback step could run.
    spec = make_spec(**{"learning.minRuns": 1})
    runs = tuple(
        Run(f"summarizer-2026111{day}-0100", T0 - timedelta(days=day), True, 8.0, 0.0, 5e-324)
        for day in range(1, 4)
    )
    holding = State(
        NAME,
        phase=Phase.BATCH,
        original_replicas=4,
        baseline_utilization=EXAMPLE_UTILIZATION,
        batch_since=T0 - timedelta(days=1),
        runs=runs,
    )
    # The window of 2026-11-21 ended without a succeeded Job: the fallback restores realtime.
    decision = decide(spec, Observed(replicas=0), holding, now=T0 + timedelta(days=1))
    assert decision.action is Action.FALLBACK
    assert decision.desired_replicas == 4
    assert decision.savings_per_day is not None and math.isfinite(decision.savings_per_day)
    assert decision.learned is not None
    assert decision.learned.batch_efficiency.measured == MIN_EFFICIENCY
