"""status <-> State: what survives a restart, bounded history, condition transition times."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from placement.core.api import HISTORY_LIMIT, Phase, WorkloadPlacementStatus
from placement.core.policy import Observed, State, decide
from placement.core.reasons import ConditionType
from placement.core.status import build_status, state_from_status
from tests.unit.factories import EXAMPLE_UTILIZATION, make_spec

NAME = "summarizer"
IN_WINDOW = datetime(2026, 11, 22, 1, 30, tzinfo=UTC)


def _dump(status: WorkloadPlacementStatus) -> dict[str, object]:
    return status.model_dump(by_alias=True, mode="json", exclude_none=True)


def test_state_survives_a_round_trip_through_status() -> None:
    decision = decide(
        make_spec(),
        Observed(replicas=4, utilization=EXAMPLE_UTILIZATION),
        State(NAME),
        now=IN_WINDOW,
    )
    status = build_status(decision, None, generation=3)
    # what the API server would hand back after a restart
    reread = WorkloadPlacementStatus.model_validate(_dump(status))
    assert state_from_status(NAME, reread) == decision.state
    body = _dump(status)
    assert body["phase"] == "Batch"
    assert body["originalReplicas"] == 4
    assert body["observedGeneration"] == 3
    assert body["decision"]["savingsPerDay"] == 41.2
    assert body["decision"]["breakdown"] == {
        "capacityAvoided": 98.4,
        "batchProcessing": 43.1,
        "dataStaging": 4.1,
        "retries": 2.0,
        "operations": 8.0,
        "missedWindowRisk": 0.0,
    }
    assert body["batch"]["currentJob"] == "summarizer-20261122-0100"


def test_empty_status_is_a_new_placement() -> None:
    assert state_from_status(NAME, None) == State(NAME)
    assert state_from_status(NAME, WorkloadPlacementStatus()) == State(NAME)


def test_history_records_changes_only_and_is_bounded() -> None:
    spec = make_spec(mode="Recommend")
    status: WorkloadPlacementStatus | None = None
    now = IN_WINDOW
    for step in range(3 * HISTORY_LIMIT):
        # alternate between a recommendation and a metrics outage: every step is a change,
        # then repeat one decision: no new entries
        observed = Observed(
            replicas=4,
            utilization=EXAMPLE_UTILIZATION,
            metrics_error="down" if step % 2 else None,
        )
        decision = decide(spec, observed, state_from_status(NAME, status), now=now)
        status = build_status(decision, status)
        now += timedelta(minutes=5)
    assert status is not None
    assert len(status.history) == HISTORY_LIMIT
    assert status.history[-1].evaluated_at == now - timedelta(minutes=5)
    # the same decision twice: the second is no news and adds nothing
    observed = Observed(replicas=4, utilization=EXAMPLE_UTILIZATION)
    first = decide(spec, observed, state_from_status(NAME, status), now=now)
    status = build_status(first, status)
    second = decide(spec, observed, state_from_status(NAME, status), now=now + timedelta(minutes=5))
    assert (first.noteworthy, second.noteworthy) == (True, False)
    assert build_status(second, status).history == status.history


def test_condition_transition_time_moves_only_on_change() -> None:
    spec = make_spec()
    first = decide(spec, Observed(replicas=4, utilization=None), State(NAME), now=IN_WINDOW)
    status = build_status(first, None)
    later = IN_WINDOW + timedelta(minutes=5)
    second = decide(
        spec, Observed(replicas=4, utilization=None), state_from_status(NAME, status), now=later
    )
    status2 = build_status(second, status)
    metrics = {c.type: c for c in status2.conditions}[ConditionType.METRICS_AVAILABLE]
    assert (metrics.status, metrics.last_transition_time) == ("False", IN_WINDOW)
    third = decide(
        spec,
        Observed(replicas=4, utilization=EXAMPLE_UTILIZATION),
        state_from_status(NAME, status2),
        now=later + timedelta(minutes=5),
    )
    status3 = build_status(third, status2)
    metrics = {c.type: c for c in status3.conditions}[ConditionType.METRICS_AVAILABLE]
    assert (metrics.status, metrics.last_transition_time) == ("True", later + timedelta(minutes=5))
    assert status3.phase is Phase.BATCH


def test_a_figure_that_is_no_number_is_left_out_and_the_status_still_lands() -> None:
    # JSON has no NaN or infinity: one such figure made the API server refuse the whole
    # patch (issue 15). decide() keeps its figures finite; the builder is the last guard.
    decision = decide(
        make_spec(),
        Observed(replicas=4, utilization=EXAMPLE_UTILIZATION),
        State(NAME),
        now=IN_WINDOW,
    )
    assert decision.breakdown is not None
    broken = replace(
        decision,
        breakdown=replace(decision.breakdown, batch_processing=math.nan),
        inputs=replace(decision.inputs, queue_depth=math.inf, utilization=math.nan),
        state=replace(decision.state, baseline_utilization=math.nan),
    )
    body = _dump(build_status(broken, None))
    json.dumps(body, allow_nan=False)
    assert "savingsPerDay" not in body["decision"] and "breakdown" not in body["decision"]
    assert "queueDepth" not in body["decision"]["inputs"]
    assert "utilization" not in body["decision"]["inputs"]
    assert "baselineUtilization" not in body["batch"]
    assert body["decision"]["message"] == decision.message
