"""Between the status subresource and the pure decision: read State, write status. Pure.

`reconcile` reads `state_from_status(name, status)` and writes every outcome through
`status_update`: a decision (`build_status`, then the merge patch from the stored status) or
a placement blocked before anything could be decided (`Blocked`).
"""

from __future__ import annotations

import hashlib
import math
import pickle
import re
import threading
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, Generic, TypeVar

from placement.core.api import (
    HISTORY_LIMIT,
    Action,
    AsyncSavings,
    AsyncStatus,
    BacklogStatus,
    BatchStatus,
    Breakdown,
    Condition,
    CostPerRequestStatus,
    DecisionInputs,
    DecisionStatus,
    HistoryEntry,
    LearningStatus,
    MeasuredValue,
    Phase,
    PlannedHold,
    RunStatus,
    WaitingHold,
    WorkloadPlacementStatus,
)
from placement.core.backlog import Backlog
from placement.core.learning import Learned, Measured, Run, measurable
from placement.core.planning import HoldPlan
from placement.core.policy import ConditionReport, Decision, Inputs, State
from placement.core.reasons import Reason
from placement.core.scaledobject import scaled_object_name


def state_from_status(name: str, status: WorkloadPlacementStatus | None) -> State:
    """What the operator remembers, as recorded in status (empty on a new object)."""
    if status is None:
        return State(name=name)
    batch = status.batch
    decision = status.decision
    return State(
        name=name,
        phase=status.phase,
        original_replicas=status.original_replicas,
        baseline_utilization=batch.baseline_utilization,
        last_action=decision.action if decision else None,
        last_reason=decision.reason if decision else None,
        batch_since=batch.since,
        current_job=batch.current_job,
        last_succeeded=batch.last_succeeded,
        last_failed=batch.last_failed,
        missed_windows=batch.missed_windows,
        last_missed_window=batch.last_missed_window,
        fallback_until=batch.fallback_until,
        runs=tuple(Run(**run.model_dump()) for run in status.learning.runs),
        async_since=status.async_.since,
        planned_hold=None
        if batch.planned_hold is None
        else (batch.planned_hold.from_, batch.planned_hold.until),
        replicas_per_demand=batch.replicas_per_demand,
        waiting_hold=None
        if batch.waiting_hold is None
        else (batch.waiting_hold.from_, batch.waiting_hold.until),
        # Every restore is news (its action differs from the hold's), so history has it.
        restored_at=next(
            (e.evaluated_at for e in reversed(status.history) if e.action is Action.RESTORE),
            None,
        ),
    )


# The status builder is the last boundary before JSON, which has no NaN or infinity: kopf's
# patch carrying one is refused by the API server, the status never lands and the placement
# is silently never evaluated again (issue 15). decide() keeps its numbers finite; should one
# slip through anyway, the figure is left out (shown as unknown) rather than the whole write
# lost, and the decision's message, which says what happened, still lands.


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _fraction(value: float | None) -> float | None:
    return value if value is not None and 0 <= value <= 1 else None  # NaN fails too


def build_status(
    decision: Decision,
    previous: WorkloadPlacementStatus | None,
    *,
    generation: int | None = None,
) -> WorkloadPlacementStatus:
    """The status to write after `decision`: history bounded, condition times kept."""
    state = decision.state
    previous = previous or WorkloadPlacementStatus()
    history = list(previous.history)
    if decision.noteworthy:
        history.append(
            HistoryEntry(
                evaluated_at=decision.evaluated_at,
                phase=decision.phase,
                action=decision.action,
                reason=decision.reason,
                savings_per_day=_finite(decision.savings_per_day),
                message=decision.message,
            )
        )
    return WorkloadPlacementStatus(
        observed_generation=generation,
        phase=decision.phase,
        decision=decision_status(decision),
        original_replicas=state.original_replicas,
        batch=BatchStatus(
            current_job=state.current_job,
            since=state.batch_since,
            baseline_utilization=_fraction(state.baseline_utilization),
            last_succeeded=state.last_succeeded,
            last_failed=state.last_failed,
            missed_windows=state.missed_windows,
            last_missed_window=state.last_missed_window,
            fallback_until=state.fallback_until,
            planned_hold=planned_hold_status(decision.plan),
            waiting_hold=waiting_hold_status(decision),
            replicas_per_demand=_finite(state.replicas_per_demand),
            backlog=backlog_status(decision.backlog)
            if state.original_replicas is not None
            else None,
        ),
        **{"async": _async_status(state)},
        learning=learning_status(decision.learned, state.runs),
        history=history[-HISTORY_LIMIT:],
        conditions=merge_conditions(
            previous.conditions, decision.conditions, decision.evaluated_at, generation
        ),
    )


def _async_status(state: State) -> AsyncStatus:
    if not state.in_async:
        return AsyncStatus()
    return AsyncStatus(since=state.async_since, scaled_object=scaled_object_name(state.name))


def waiting_hold_status(decision: Decision) -> WaitingHold | None:
    """The hold whose work waits for its window, and that window."""
    waiting, window = decision.state.waiting_hold, decision.waiting_window
    if waiting is None or window is None:
        return None
    return WaitingHold.model_validate(
        {
            "from": waiting[0],
            "until": waiting[1],
            "windowStart": window.start,
            "windowEnd": window.end,
        }
    )


def planned_hold_status(plan: HoldPlan | None) -> PlannedHold | None:
    """The plan, to the cent: a forecast that moves in the fourth decimal is no news."""
    if plan is None:
        return None
    figures = (plan.work_replica_hours, plan.batch_pod_hours, plan.capacity_pod_hours)
    if not all(math.isfinite(value) and value >= 0 for value in figures):
        return None
    return PlannedHold.model_validate(
        {
            "from": plan.start,
            "until": plan.end,
            "hours": round(plan.hours, 2),
            "forecastWorkReplicaHours": round(plan.work_replica_hours, 2),
            "forecastBatchPodHours": round(plan.batch_pod_hours, 2),
            "windowCapacityPodHours": round(plan.capacity_pod_hours, 2),
            "forecast": plan.basis[:2048],
        }
    )


def backlog_status(backlog: Backlog | None) -> BacklogStatus | None:
    if backlog is None:
        return None
    if not backlog.watched:
        return BacklogStatus(watched=False, note=backlog.note)
    return BacklogStatus(
        watched=True,
        note=backlog.note,
        waiting_replica_hours=_cents(backlog.waiting_replica_hours),
        arriving_replica_hours=_cents(backlog.arriving_replica_hours),
        projected_batch_pod_hours=_cents(backlog.batch_pod_hours),
        window_capacity_pod_hours=_cents(backlog.capacity_pod_hours),
    )


def _cents(value: float) -> float | None:
    finite = _finite(value)
    return None if finite is None else round(finite, 2)


def learning_status(learned: Learned | None, runs: tuple[Run, ...]) -> LearningStatus:
    """Measured beside declared values, and the runs they rest on."""
    return LearningStatus(
        batch_efficiency=None if learned is None else _measured(learned.batch_efficiency, 4),
        retry_rate=None if learned is None else _measured(learned.retry_rate, 4),
        missed_window_rate=None
        if learned is None or learned.missed_window_rate is None
        else _measured(learned.missed_window_rate, 4),
        # The same fields both ways; only runs learning can measure.
        runs=[RunStatus(**asdict(clean)) for run in runs if (clean := measurable(run))],
    )


def _measured(item: Measured, digits: int) -> MeasuredValue:
    measured = _finite(item.measured)
    return MeasuredValue(
        declared=item.declared,
        measured=None if measured is None else _rounded(measured, digits),
        runs=item.runs,
        in_use=item.in_use,
    )


def _rounded(value: float, digits: int) -> float:
    """`digits` decimals, or as many significant digits when those would show 0."""
    rounded = round(value, digits)
    return float(f"{value:.{digits}g}") if value and not rounded else rounded


def decision_status(decision: Decision) -> DecisionStatus:
    breakdown = decision.breakdown
    savings = _finite(decision.savings_per_day)
    if breakdown is not None and (savings is None or breakdown.non_finite() is not None):
        breakdown, savings = None, None
    return DecisionStatus(
        action=decision.action,
        reason=decision.reason,
        message=decision.message,
        evaluated_at=decision.evaluated_at,
        actuated=decision.actuate,
        desired_replicas=decision.desired_replicas,
        savings_per_day=savings,
        breakdown=None if breakdown is None else Breakdown.model_validate(breakdown.rounded()),
        async_breakdown=_async_savings(decision),
        cost_per_request=None
        if decision.cost_per_request is None
        else CostPerRequestStatus.model_validate(decision.cost_per_request.rounded()),
        inputs=inputs_status(decision.inputs),
    )


def _async_savings(decision: Decision) -> AsyncSavings | None:
    breakdown = decision.async_breakdown
    if breakdown is None or breakdown.non_finite() is not None:
        return None
    return AsyncSavings.model_validate(breakdown.rounded())


def inputs_status(inputs: Inputs) -> DecisionInputs:
    return DecisionInputs(
        replicas=inputs.replicas,
        current_replicas=inputs.current_replicas,
        warm_replicas=inputs.warm_replicas,
        utilization=_finite(inputs.utilization),
        queue_depth=_finite(inputs.queue_depth),
        demand=_finite(inputs.demand),
        work_replica_hours=_finite(inputs.work_replica_hours),
        batch_pod_hours=_finite(inputs.batch_pod_hours),
        parallel_pods=inputs.parallel_pods,
        window_hours=_finite(inputs.window_hours),
        wait_hours=_finite(inputs.wait_hours),
        acceptable_delay_hours=_finite(inputs.acceptable_delay_hours),
        held_hours_per_day=_finite(inputs.held_hours_per_day),
        metrics_age_seconds=_finite(inputs.metrics_age_seconds),
        batch_efficiency=_finite(inputs.batch_efficiency),
        retry_rate=_finite(inputs.retry_rate),
    )


def merge_conditions(
    previous: list[Condition],
    reports: tuple[ConditionReport, ...],
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """New conditions; lastTransitionTime moves only when a condition's status changes."""
    before = {condition.type: condition for condition in previous}
    merged = []
    for report in reports:
        old = before.get(report.type)
        unchanged = old is not None and old.status == report.status
        merged.append(
            Condition.model_validate(
                {
                    "type": report.type,
                    "status": report.status,
                    "reason": report.reason,
                    "message": report.message,
                    "lastTransitionTime": old.last_transition_time if old and unchanged else now,
                    "observedGeneration": generation,
                }
            )
        )
    return merged


def status_patch(current: dict[str, Any], status: WorkloadPlacementStatus) -> dict[str, Any] | None:
    """The merge patch that turns the stored status into `status`, or None when only the
    clock moved (the evaluation time, the wait until the window ends, the age of a sample, and
    the durations in messages that say so): no write at all then.

    Keys the new status no longer has are sent as None, which a merge patch deletes; a plain
    update would leave e.g. originalReplicas behind after a restore.
    """
    new = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    if _same_but_volatile(new, current):
        return None
    patch: dict[str, Any] = {key: None for key in current if key not in new}
    patch.update({key: _with_deletions(current.get(key), value) for key, value in new.items()})
    return patch


def _with_deletions(old: Any, new: Any) -> Any:
    if isinstance(old, dict) and isinstance(new, dict):
        merged = {key: None for key in old if key not in new}
        merged.update({k: _with_deletions(old.get(k), v) for k, v in new.items()})
        return merged
    return new


# Figures that move with the clock alone. A status that differs only in them is not written:
# it stays the consistent snapshot of its decision.evaluatedAt, and with a thousand waiting
# placements a write per evaluation would be a thousand writes per cycle that say nothing.
_CLOCK_INPUTS = frozenset({"waitHours", "metricsAgeSeconds"})
# Durations as format_duration writes them into messages ("waits 7h5m", "starts in 45m").
_DURATION = re.compile(r"\b\d+[dhms](?:\d+[dhms])*\b")


def _same_but_volatile(new: dict[str, Any], current: dict[str, Any]) -> bool:
    """`_without_volatile(new) == _without_volatile(current)`, without the copies: nearly
    every steady evaluation asks it, and most messages are equal as they stand (the
    durations in them are masked only when they differ)."""
    if new.keys() - {"kopf"} != current.keys() - {"kopf"}:
        return False
    for key, value in new.items():
        if key == "kopf":
            continue
        old = current[key]
        if value is old or value == old:
            continue
        same = _COMPARED_APART.get(key)
        if same is None or not same(value, old):
            return False
    return True


def _same_conditions(new: Any, old: Any) -> bool:
    if not (isinstance(new, list) and isinstance(old, list)) or len(new) != len(old):
        return False
    return all(map(_same_condition, new, old))


def _same_batch(new: Any, old: Any) -> bool:
    # The planned hold's forecast basis names the history's extent ("lookback average:
    # history 5h < 1d"), which grows with the clock alone: at 10,000 placements, hundreds of
    # writes per cycle after each hour. A new forecast changes its figures, which are written.
    if not (isinstance(new, dict) and isinstance(old, dict)):
        return False
    if not _same_except(new, old, _PLANNED_HOLD):
        return False
    hold, before = new.get("plannedHold"), old.get("plannedHold")
    if not (isinstance(hold, dict) and isinstance(before, dict)):
        return bool(hold == before)
    return _same_except(hold, before, _FORECAST) and _same_basis(
        hold.get("forecast"), before.get("forecast")
    )


def _same_basis(new: Any, old: Any) -> bool:
    if not (isinstance(new, str) and isinstance(old, str)):
        return bool(new == old)
    return new == old or _clock_free_basis(new) == _clock_free_basis(old)


def _clock_free_basis(basis: str) -> str:
    # "history 2h < 1d", "history 2h of 3h < 1d" (hours with samples of the span): both move
    # with the clock alone.
    return _DURATION.sub("<duration>", basis).replace(" of <duration>", "")


def _same_decision(new: Any, old: Any) -> bool:
    if not (isinstance(new, dict) and isinstance(old, dict)):
        return False
    if new.keys() - {"evaluatedAt"} != old.keys() - {"evaluatedAt"}:
        return False
    for key, value in new.items():
        if key == "evaluatedAt":
            continue
        before = old[key]
        if value == before:
            continue
        if key == "inputs" and isinstance(value, dict) and isinstance(before, dict):
            if not _same_except(value, before, _CLOCK_INPUTS):
                return False
        elif key != "message" or not _same_message(value, before):
            return False
    return True


def _same_condition(new: Any, old: Any) -> bool:
    if new == old:
        return True
    if not (isinstance(new, dict) and isinstance(old, dict)) or new.keys() != old.keys():
        return False
    return _same_except(new, old, _MESSAGE) and _same_message(
        new.get("message"), old.get("message")
    )


def _same_except(new: dict[str, Any], old: dict[str, Any], volatile: frozenset[str]) -> bool:
    if new.keys() - volatile != old.keys() - volatile:
        return False
    return all(value == old[key] for key, value in new.items() if key not in volatile)


def _same_message(new: Any, old: Any) -> bool:
    # Only a message on both sides is masked (as _without_volatile does).
    if not (isinstance(new, str) and isinstance(old, str)):
        return bool(new == old)
    return new == old or _DURATION.sub("<duration>", new) == _DURATION.sub("<duration>", old)


_MESSAGE = frozenset({"message"})
# Status keys whose clock-driven parts are looked past (the rest must be equal).
_COMPARED_APART: dict[str, Callable[[Any, Any], bool]] = {
    "decision": _same_decision,
    "conditions": _same_conditions,
    "batch": _same_batch,
}
_PLANNED_HOLD = frozenset({"plannedHold"})
_FORECAST = frozenset({"forecast"})


def _without_volatile(status: dict[str, Any]) -> dict[str, Any]:
    # kopf's own bookkeeping, the evaluation time and clock-driven figures are not news.
    copy = {k: v for k, v in status.items() if k != "kopf"}
    decision = copy.get("decision")
    if isinstance(decision, dict):
        decision = {k: v for k, v in decision.items() if k != "evaluatedAt"}
        inputs = decision.get("inputs")
        if isinstance(inputs, dict):
            decision["inputs"] = {k: v for k, v in inputs.items() if k not in _CLOCK_INPUTS}
        if isinstance(decision.get("message"), str):
            decision["message"] = _DURATION.sub("<duration>", decision["message"])
        copy["decision"] = decision
    batch = copy.get("batch")
    hold = batch.get("plannedHold") if isinstance(batch, dict) else None
    if isinstance(batch, dict) and isinstance(hold, dict) and isinstance(hold.get("forecast"), str):
        hold = {**hold, "forecast": _clock_free_basis(hold["forecast"])}
        copy["batch"] = {**batch, "plannedHold": hold}
    conditions = copy.get("conditions")
    if isinstance(conditions, list):
        copy["conditions"] = [
            {**c, "message": _DURATION.sub("<duration>", c["message"])}
            if isinstance(c, dict) and isinstance(c.get("message"), str)
            else c
            for c in conditions
        ]
    return copy


@dataclass(frozen=True)
class Blocked:
    """Nothing could be decided: why (the Ready condition's reason and message)."""

    reason: Reason
    message: str


def ready_condition(status: dict[str, Any]) -> dict[str, Any]:
    """The stored Ready condition, or {}."""
    conditions = status.get("conditions") or []
    return next((c for c in conditions if isinstance(c, dict) and c.get("type") == "Ready"), {})


def status_update(
    current: dict[str, Any],
    outcome: Decision | Blocked,
    *,
    previous: WorkloadPlacementStatus | None,
    generation: int | None,
    now: datetime,
    stored: tuple[str, str] | None = None,
) -> dict[str, Any] | None:
    """The one status writer: the merge patch that records `outcome` over the stored status
    `current`, or None when there is nothing new to write.

    Blocked: phase Blocked and Ready=False with the reason; the last decision, batch and
    history stay as they were (a merge patch), and a message already shown is not rewritten.

    `stored`: what identifies the stored status `current` (the placement's uid and
    resourceVersion), when known: a decision equal but for the clock to the last one that
    needed no write over that same stored status needs none either, and is not built again
    (`QUIET`)."""
    if isinstance(outcome, Decision):
        digest = None if stored is None else clock_free_digest(outcome)
        if stored is not None and QUIET.unchanged(stored, digest, generation):
            return None
        patch = status_patch(current, build_status(outcome, previous, generation=generation))
        if stored is not None:
            QUIET.record(stored, digest, generation, written=patch is not None)
        return patch
    ready = ready_condition(current)
    if current.get("phase") == Phase.BLOCKED and ready.get("message") == outcome.message:
        return None  # already said
    return {
        "phase": str(Phase.BLOCKED),
        "observedGeneration": generation,
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": str(outcome.reason),
                "message": outcome.message[:2048],
                "lastTransitionTime": now.isoformat().replace("+00:00", "Z"),
            }
        ],
    }


# -- decisions that need no write ------------------------------------------------------------

# Decision fields compared apart from the rest: the clock's (see _same_but_volatile).
_DECISION_APART = frozenset({"evaluated_at", "message", "inputs", "conditions"})
_DECISION_FIELDS = tuple(f.name for f in fields(Decision) if f.name not in _DECISION_APART)
_INPUT_FIELDS = tuple(
    f.name for f in fields(Inputs) if f.name not in {"wait_hours", "metrics_age_seconds"}
)


def clock_free_digest(decision: Decision) -> bytes | None:
    """A digest of everything of `decision` its status is built from but the clock's part
    (the evaluation time, the clock's inputs, the durations in messages: what
    `_same_but_volatile` looks past): equal digests build statuses that differ only there.
    None for a noteworthy decision (it adds a history entry with its time). Every field of
    the decision goes in, fields added later included (pickle writes floats and datetimes
    exactly; a difference it does not see, e.g. two orders of one set, only costs a build)."""
    if decision.noteworthy:
        return None
    inputs = decision.inputs
    masked = (
        tuple(getattr(decision, name) for name in _DECISION_FIELDS),
        _DURATION.sub("<duration>", decision.message),
        tuple(getattr(inputs, name) for name in _INPUT_FIELDS),
        tuple(
            (c.type, c.status, c.reason, _DURATION.sub("<duration>", c.message))
            for c in decision.conditions
        ),
    )
    try:
        data = pickle.dumps(masked, protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None  # a value pickle cannot write: compared in full, as without the memo
    return hashlib.blake2b(data, digest_size=20).digest()


V = TypeVar("V")


class PerPlacement(Generic[V]):
    """One remembered value per placement (by uid), valid for one version of it (its
    resourceVersion, with whatever else the caller adds to `version`). At most `size`
    placements, the least recently remembered going first; thread-safe."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._last: dict[str, tuple[Hashable, V]] = {}
        self._lock = threading.Lock()

    def get(self, uid: str, version: Hashable) -> V | None:
        known = self._last.get(uid)
        return known[1] if known is not None and known[0] == version else None

    def put(self, uid: str, version: Hashable, value: V) -> None:
        with self._lock:
            self._last.pop(uid, None)  # re-inserted last: the oldest is the least recent
            while len(self._last) >= self.size:
                del self._last[next(iter(self._last))]
            self._last[uid] = (version, value)

    def forget(self, uid: str) -> None:
        with self._lock:
            self._last.pop(uid, None)

    def clear(self) -> None:
        with self._lock:
            self._last.clear()

    def __len__(self) -> int:
        return len(self._last)


class QuietDecisions:
    """Per placement, the digest of the last decision whose status needed no write, with the
    stored status it was compared to. A steady re-evaluation (nothing changed but the clock)
    then skips building the status and comparing it: a third of a steady evaluation's CPU
    (bench/evaluate.py). The stored status is known by the placement's resourceVersion, which
    every change of it (ours or anyone's) moves. About 100 bytes a placement."""

    def __init__(self, size: int) -> None:
        self._last: PerPlacement[bytes] = PerPlacement(size)
        self.hits = 0

    def unchanged(
        self, stored: tuple[str, str], digest: bytes | None, generation: int | None
    ) -> bool:
        uid, version = stored
        if digest is None or self._last.get(uid, (version, generation)) != digest:
            return False
        self.hits += 1
        return True

    def record(
        self,
        stored: tuple[str, str],
        digest: bytes | None,
        generation: int | None,
        *,
        written: bool,
    ) -> None:
        uid, version = stored
        if written or digest is None:
            self._last.forget(uid)
        else:
            self._last.put(uid, (version, generation), digest)

    def forget(self, uid: str) -> None:
        self._last.forget(uid)

    def clear(self) -> None:
        self._last.clear()

    def __len__(self) -> int:
        return len(self._last)


# One entry per placement.
QUIET = QuietDecisions(50_000)
