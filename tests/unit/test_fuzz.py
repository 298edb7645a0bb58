"""Fuzzing the spec models and the policy (hypothesis).

- `WorkloadPlacementSpec.model_validate` on arbitrary JSON-like input raises only pydantic's
  ValidationError, never anything else (a crash would take a handler down with it).
- `decide()` on any spec the models accept and any observation and remembered state: no
  exception, never a negative replica count, never a scale-down on missing or bad
  utilization, and the status built from the decision validates.

Profiles (tests/unit/conftest.py): `ci` (the default: 500 examples per fuzz test, about 5 s)
is derandomized, so every run tries the same examples; HYPOTHESIS_PROFILE=fuzz explores
10,000 fresh random examples per fuzz test.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from placement.core.api import (
    ACCEPTABLE_DELAY_BOUNDS,
    LOOKBACK_BOUNDS,
    MAX_AMOUNT,
    MAX_EFFICIENCY,
    MAX_HOURLY_PRICE,
    MAX_PARALLEL_PODS,
    MIN_EFFICIENCY,
    MIN_HOURLY_PRICE,
    RETRY_WINDOW_BOUNDS,
    Phase,
    WorkloadPlacementSpec,
)
from placement.core.policy import JobObservation, JobOutcome, Observed, State, decide
from placement.core.reasons import Reason
from placement.core.status import build_status
from tests.unit.conftest import FUZZ_FACTOR
from tests.unit.factories import spec_dict

# -- arbitrary JSON-like input ------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", "0s", "24h", "01:00", "UTC", "Enforce", "High", "x" * 5000, "💥"]),
)
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_paths(value, (*prefix, key)))
    return found


EXAMPLE = spec_dict()
EXAMPLE_PATHS = _paths(EXAMPLE)


@st.composite
def mutated_specs(draw: st.DrawFn) -> Any:
    """The valid example with a few fields replaced, deleted or added: input that gets deep
    into the models, which purely random dictionaries rarely do."""
    spec = copy.deepcopy(EXAMPLE)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(EXAMPLE_PATHS))
        parent = spec
        for key in path[:-1]:
            if not isinstance(parent, dict) or not isinstance(parent.get(key), dict):
                break
            parent = parent[key]
        else:
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                parent[path[-1]] = draw(json_like)
            elif action == "delete":
                parent.pop(path[-1], None)
            else:
                parent[draw(st.text(max_size=12))] = draw(json_like)
    return spec


@settings(max_examples=settings.default.max_examples * FUZZ_FACTOR)
@given(st.one_of(json_like, mutated_specs()))
def test_the_models_raise_only_validation_errors(document: Any) -> None:
    try:
        spec = WorkloadPlacementSpec.model_validate(document)
    except ValidationError:
        return
    # Whatever the models accept, the policy must digest.
    decide(spec, Observed(replicas=3, utilization=0.5), State(name="fuzz"), now=_NOW)


# -- valid specs, arbitrary observations and state ----------------------------------------

_NOW = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)  # a DST change in Europe
clock = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))


def _written(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, rest = divmod(rest, 60)
    parts = ((days, "d"), (hours, "h"), (minutes, "m"), (rest, "s"))
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


def bounded_durations(bounds: tuple[dt.timedelta, dt.timedelta]) -> st.SearchStrategy[str]:
    """Durations the models accept for a field, its bounds included."""
    low, high = (int(bound.total_seconds()) for bound in bounds)
    return st.one_of(st.integers(low, high), st.sampled_from([low, high])).map(_written)


# Up to the models' bounds, both ends included: the extremes are where overflow lives.
prices = st.one_of(
    st.floats(min_value=MIN_HOURLY_PRICE, max_value=MAX_HOURLY_PRICE),
    st.sampled_from([MIN_HOURLY_PRICE, MAX_HOURLY_PRICE]),
)
amounts = st.one_of(st.floats(min_value=0, max_value=MAX_AMOUNT), st.just(MAX_AMOUNT))
efficiencies = st.one_of(
    st.floats(min_value=MIN_EFFICIENCY, max_value=MAX_EFFICIENCY),
    st.sampled_from([MIN_EFFICIENCY, MAX_EFFICIENCY]),
)
zones = st.sampled_from(
    ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]
)


@st.composite
def valid_specs(draw: st.DrawFn) -> WorkloadPlacementSpec:
    start = draw(clock)
    end = draw(clock.filter(lambda e: e != start))
    changes: dict[str, Any] = {
        "owner": draw(st.sampled_from(["", "team-ml"])),
        "mode": draw(st.sampled_from(["Recommend", "Enforce"])),
        "productRisk": draw(st.sampled_from(["Low", "Medium", "High"])),
        "target.warmReplicas": draw(st.integers(0, 10_000)),
        "latency.userVisible": draw(st.booleans()),
        "latency.acceptableDelay": draw(bounded_durations(ACCEPTABLE_DELAY_BOUNDS)),
        "batch.window": {"start": start, "end": end, "timeZone": draw(zones)},
        "batch.retryWindow": draw(bounded_durations(RETRY_WINDOW_BOUNDS)),
        "batch.jobTemplate.spec.parallelism": draw(st.one_of(st.none(), st.integers(1, 2**31 - 1))),
        "fallback.action": draw(st.sampled_from(["RestoreRealtime", "Alert"])),
        "costs": {
            "realtimeReplicaHourly": draw(prices),
            "batchPodHourly": draw(prices),
            "batchEfficiency": draw(efficiencies),
            "dataStagingPerRun": draw(amounts),
            "operationsPerDay": draw(amounts),
            "retryRate": draw(st.floats(0, 1, exclude_max=True)),
            "maxParallelPods": draw(st.one_of(st.none(), st.integers(1, MAX_PARALLEL_PODS))),
            "savingsMargin": draw(amounts),
        },
        "metrics.lookback": draw(bounded_durations(LOOKBACK_BOUNDS)),
    }
    return WorkloadPlacementSpec.model_validate(spec_dict(**changes))


times = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
)
odd_floats = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-0.5, 1.5),
    st.sampled_from([0.0, 1.0, math.nan, math.inf, -math.inf, -1e-300, 5e-324]),
)


@st.composite
def observations(draw: st.DrawFn, job_name: str) -> Observed:
    jobs = draw(
        st.lists(
            st.builds(
                JobObservation,
                name=st.one_of(st.just(job_name), st.text(max_size=8)),
                outcome=st.sampled_from(list(JobOutcome)),
                finished_at=st.one_of(st.none(), times),
            ),
            max_size=3,
        )
    )
    return Observed(
        replicas=draw(st.one_of(st.none(), st.integers(0, 2**31 - 1))),  # int32, as in k8s
        utilization=draw(odd_floats),
        queue_depth=draw(odd_floats),
        metrics_error=draw(st.one_of(st.none(), st.just("timeout"))),
        metrics_age=draw(st.one_of(st.none(), st.timedeltas(min_value=dt.timedelta(0)))),
        conflicting_autoscaler=draw(st.one_of(st.none(), st.just("hpa/x"))),
        jobs=tuple(jobs),
    )


@st.composite
def states(draw: st.DrawFn) -> State:
    return State(
        name="fuzz",
        phase=draw(st.one_of(st.none(), st.sampled_from(list(Phase)))),
        original_replicas=draw(st.one_of(st.none(), st.integers(0, 2**31 - 1))),
        baseline_utilization=draw(st.one_of(st.none(), st.floats(0, 1))),
        last_reason=draw(st.one_of(st.none(), st.sampled_from(list(Reason)))),
        batch_since=draw(st.one_of(st.none(), times)),
        current_job=draw(st.one_of(st.none(), st.just("fuzz-20260329-0100"))),
        last_succeeded=draw(st.one_of(st.none(), times)),
        last_failed=draw(st.one_of(st.none(), times)),
        missed_windows=draw(st.integers(0, 1000)),
        last_missed_window=draw(st.one_of(st.none(), st.just("20260328-0100"))),
        fallback_until=draw(st.one_of(st.none(), times)),
    )


def _trusted(observed: Observed) -> bool:
    value = observed.utilization
    return (
        observed.metrics_error is None
        and value is not None
        and math.isfinite(value)
        and 0 <= value <= 1
    )


@settings(max_examples=settings.default.max_examples * FUZZ_FACTOR)
@given(spec=valid_specs(), observed=observations("fuzz-20260329-0100"), state=states(), now=times)
def test_decide_never_raises_never_goes_negative_never_scales_down_blind(
    spec: WorkloadPlacementSpec, observed: Observed, state: State, now: dt.datetime
) -> None:
    decision = decide(spec, observed, state, now=now)

    desired = decision.desired_replicas
    assert desired is None or desired >= 0
    if desired is not None and observed.replicas is not None and desired < observed.replicas:
        # Scaling down rests on a trusted utilization, or on a hold that already exists.
        assert _trusted(observed) or state.holding, decision
    if decision.savings_per_day is not None:
        assert math.isfinite(decision.savings_per_day), decision
    build_status(decision, None, generation=1)  # validates: what the handler would write


def test_regression_an_astronomic_price_is_refused_not_turned_into_nan() -> None:
    # The fuzzer's first find: realtimeReplicaHourly 8.98e307 passed `> 0`, and capacity
    # avoided overflowed, so the savings were NaN, which no status patch (JSON) can carry.
    for field, value in (
        ("realtimeReplicaHourly", 8.98846567431158e307),
        ("batchEfficiency", 5e-324),
    ):
        try:
            WorkloadPlacementSpec.model_validate(spec_dict(**{f"costs.{field}": value}))
        except ValidationError as error:
            assert error.errors()[0]["loc"] == ("costs", field)
        else:
            raise AssertionError(f"{field}={value} was accepted")


def test_at_the_bounds_the_savings_stay_finite() -> None:
    spec = WorkloadPlacementSpec.model_validate(
        spec_dict(
            **{
                "costs.realtimeReplicaHourly": MAX_HOURLY_PRICE,
                "costs.batchPodHourly": MAX_HOURLY_PRICE,
                "costs.batchEfficiency": MIN_EFFICIENCY,
                "costs.dataStagingPerRun": MAX_AMOUNT,
                "costs.operationsPerDay": MAX_AMOUNT,
            }
        )
    )
    observed = Observed(replicas=2**31 - 1, utilization=1.0)
    decision = decide(spec, observed, State(name="fuzz"), now=_NOW)
    assert decision.savings_per_day is not None and math.isfinite(decision.savings_per_day)
    build_status(decision, None, generation=1)
