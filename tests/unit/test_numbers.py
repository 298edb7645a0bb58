"""Numbers that stay numbers (issue 15, deliverable 6): property tests of decide() over the
CRD's own bounds, and the guards that keep NaN and infinity out of status and messages.

The specs are drawn from the models' generated JSON schema (minimum, maximum, exclusive
bounds, patterns), not from bounds restated here: when api.py tightens a bound, the strategy
follows it. A drawn value the models refuse (a cross-field rule, or a bound only a validator
knows) keeps the example's value for that field, so every spec drawn is one the CRD admits.

For every such spec, any observation (utilization in [0,1], missing, NaN or out of range;
NaN, infinite or huge queue depths; stale metrics; Jobs reporting any figure), any remembered
State (holding or not, learned runs, missed windows) and any `now` (DST transitions of the
window's zone included), decide() must not raise, every float of the decision and of the
status built from it is finite, the status serializes as strict JSON, and no message says
'nan' or 'inf'.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import enum
import functools
import json
import math
import re
import sys
import zoneinfo
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from placement.adapters.kubewatch import float_or_none as _float_or_none
from placement.core.api import (
    MAX_EFFICIENCY,
    MIN_EFFICIENCY,
    Action,
    BatchWindow,
    CostsSpec,
    FallbackAction,
    JobSpecTemplate,
    LatencySpec,
    LearningSpec,
    Mode,
    Phase,
    ProductRisk,
    TargetSpec,
    WorkloadPlacementSpec,
)
from placement.core.costs import MAX_PARALLEL_PODS, batch_duration, daily_costs, parallel_pods
from placement.core.learning import (
    EFFICIENCY_BOUNDS,
    RETRY_RATE_BOUNDS,
    Run,
    declared_bounds,
    learn,
)
from placement.core.policy import JobObservation, JobOutcome, Observed, State, decide
from placement.core.reasons import Reason
from placement.core.status import build_status
from placement.core.window import current_or_next_window, job_name, last_ended_window
from tests.unit.conftest import FUZZ_FACTOR
from tests.unit.factories import EXAMPLE_UTILIZATION, make_spec, spec_dict

NAME = "numbers"
# The API server keeps integers as int64: no integer field of the CRD holds more.
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1  # Deployment .spec.replicas
# 'nan', 'inf', 'infinity' as words, as Python would print them ('infinite' is fine).
NOT_A_NUMBER_WORD = re.compile(r"(?<![A-Za-z])[-+]?(nan|inf|infinity)(?![A-Za-z])", re.I)

# -- the CRD's own bounds -------------------------------------------------------------------


def _property(model: type[BaseModel], alias: str) -> dict[str, Any]:
    return dict(model.model_json_schema(by_alias=True)["properties"][alias])


def _from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of one numeric schema property, its bounds (both ends) included: the extremes
    are where overflow lives."""
    branches = [b for b in schema.get("anyOf", [schema]) if b.get("type") != "null"]
    nullable = len(branches) < len(schema.get("anyOf", [schema]))
    (schema,) = branches
    if schema["type"] == "integer":
        low = schema.get("minimum", schema.get("exclusiveMinimum", -INT64_MAX - 2) + 1)
        high = schema.get("maximum", schema.get("exclusiveMaximum", INT64_MAX + 1) - 1)
        low, high = int(max(low, -INT64_MAX - 1)), int(min(high, INT64_MAX))
        values: st.SearchStrategy[Any] = st.one_of(
            st.integers(low, high), st.sampled_from([low, high, min(low + 1, high)])
        )
    else:
        big = sys.float_info.max
        low = float(schema.get("minimum", schema.get("exclusiveMinimum", -big)))
        high = float(schema.get("maximum", schema.get("exclusiveMaximum", big)))
        exclude_low, exclude_high = "exclusiveMinimum" in schema, "exclusiveMaximum" in schema
        edges = [
            math.nextafter(low, math.inf) if exclude_low else low,
            math.nextafter(high, -math.inf) if exclude_high else high,
        ]
        values = st.one_of(
            st.floats(low, high, exclude_min=exclude_low, exclude_max=exclude_high),
            st.sampled_from(edges),
        )
    return st.one_of(st.none(), values) if nullable else values


def _numeric_fields(model: type[BaseModel], prefix: str) -> list[tuple[str, st.SearchStrategy]]:
    properties = model.model_json_schema(by_alias=True)["properties"]
    return [
        (f"{prefix}.{alias}", _from_schema(schema))
        for alias, schema in properties.items()
        if {b.get("type") for b in schema.get("anyOf", [schema])} & {"integer", "number"}
    ]


def _pattern(model: type[BaseModel], alias: str) -> st.SearchStrategy[str]:
    schema = _property(model, alias)
    return st.from_regex(schema["pattern"], fullmatch=True).filter(
        lambda text: schema.get("minLength", 0) <= len(text) <= schema.get("maxLength", 1 << 30)
    )


_durations = st.one_of(
    _pattern(LatencySpec, "acceptableDelay"),
    st.sampled_from(["1s", "59m", "90m", "8h", "24h", "2d", "7d", "0s"]),
)
_clocks = st.one_of(
    _pattern(BatchWindow, "start"),
    st.sampled_from(["00:00", "01:30", "02:00", "02:30", "03:00", "23:59"]),  # DST hours
)
ZONES = sorted(zoneinfo.available_timezones() | {"UTC"})
_DST_ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"]

FIELDS: list[tuple[str, st.SearchStrategy[Any]]] = [
    ("owner", st.sampled_from(["", "team-ml"])),
    ("mode", st.sampled_from(list(Mode))),
    ("productRisk", st.sampled_from(list(ProductRisk))),
    ("fallback.action", st.sampled_from(list(FallbackAction))),
    ("latency.userVisible", st.booleans()),
    ("latency.acceptableDelay", _durations),
    ("batch.retryWindow", _durations),
    ("metrics.lookback", _durations),
    ("evaluationInterval", _durations),
    ("batch.window.start", _clocks),
    ("batch.window.end", _clocks),
    ("batch.window.timeZone", st.one_of(st.sampled_from(ZONES), st.sampled_from(_DST_ZONES))),
    ("learning.useMeasured", st.booleans()),
    *_numeric_fields(TargetSpec, "target"),
    *_numeric_fields(CostsSpec, "costs"),
    *_numeric_fields(LearningSpec, "learning"),
    *_numeric_fields(JobSpecTemplate, "batch.jobTemplate.spec"),
]


@st.composite
def crd_specs(draw: st.DrawFn) -> WorkloadPlacementSpec:
    """A spec the CRD admits, each field drawn within the schema's bounds."""
    example = spec_dict(**{"learning.minRuns": 1})  # learned values in use from the 1st run
    drawn = [(path, draw(values)) for path, values in FIELDS]
    try:
        return WorkloadPlacementSpec.model_validate(_with(example, drawn))
    except ValidationError:
        pass
    # Some value is refused by a rule beyond the schema's bounds (start == end, a 0s lookback,
    # minRuns > maxRuns, a bound api.py adds later): keep the example's value for that field.
    document = example
    for change in drawn:
        candidate = _with(document, [change])
        try:
            WorkloadPlacementSpec.model_validate(candidate)
        except ValidationError:
            continue
        document = candidate
    return WorkloadPlacementSpec.model_validate(document)


def _with(document: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    for path, value in changes:
        *parents, leaf = path.split(".")
        node = changed
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value.value if isinstance(value, enum.Enum) else value
    return changed


# -- now, DST transitions included ----------------------------------------------------------


@functools.cache
def transitions(zone_key: str, year: int) -> tuple[dt.datetime, ...]:
    """The instants (UTC, to the minute) at which `zone`'s UTC offset changes in `year`."""
    zone = zoneinfo.ZoneInfo(zone_key)
    found = []
    moment = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    offset = moment.astimezone(zone).utcoffset()
    while moment.year == year:
        later = moment + dt.timedelta(days=1)  # no zone changes its offset twice a day
        if later.astimezone(zone).utcoffset() != offset:
            low, high = moment, later  # offset changes in (low, high]: bisect to the minute
            while high - low > dt.timedelta(minutes=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            found.append(high.replace(second=0, microsecond=0))
            offset = later.astimezone(zone).utcoffset()
        moment = later
    return tuple(found)


_anytime = st.datetimes(
    min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
)
_offsets = st.timedeltas(min_value=dt.timedelta(hours=-26), max_value=dt.timedelta(hours=26))


@st.composite
def moments(draw: st.DrawFn, spec: WorkloadPlacementSpec) -> dt.datetime:
    """Any time; or near a DST change of the window's zone; or near the window's edges;
    in UTC, as the operator's clock gives it, or in the window's own zone."""
    kind = draw(st.sampled_from(["any", "dst", "edge"]))
    moment = draw(_anytime)
    if kind == "dst":
        changes = transitions(spec.batch.window.time_zone, draw(st.integers(2000, 2100)))
        if changes:
            moment = draw(st.sampled_from(changes)) + draw(_offsets)
    elif kind == "edge":
        span = current_or_next_window(spec.batch.window, moment)
        edge = draw(st.sampled_from([span.start, span.end]))
        moment = edge + draw(st.timedeltas(dt.timedelta(minutes=-90), dt.timedelta(minutes=90)))
    return moment.astimezone(spec.batch.window.zone) if draw(st.booleans()) else moment


# -- observations and state: anything the adapters or a status could hand over --------------

_any_float = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1e-300, 1e300, 1.7e308, math.nan, math.inf]),
)
_fraction = st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0, 5e-324, 1 - 2**-53]))


@st.composite
def situations(draw: st.DrawFn) -> tuple[WorkloadPlacementSpec, Observed, State, dt.datetime]:
    spec = draw(crd_specs())
    now = draw(moments(spec))
    window = spec.batch.window
    current = current_or_next_window(window, now)
    ended = last_ended_window(window, now)
    names = [job_name(NAME, current), job_name(NAME, ended), f"{NAME}-old"]
    near = st.builds(lambda delta: now + delta, _offsets)
    jobs = draw(
        st.lists(
            st.builds(
                JobObservation,
                name=st.sampled_from(names),
                outcome=st.sampled_from(list(JobOutcome)),
                finished_at=st.one_of(st.none(), near),
                pod_hours=st.one_of(st.none(), _any_float),
                failed_pod_hours=_any_float,
                work_replica_hours=st.one_of(st.none(), _any_float),
            ),
            max_size=3,
        )
    )
    observed = Observed(
        replicas=draw(st.one_of(st.none(), st.integers(0, INT32_MAX))),
        utilization=draw(st.one_of(st.none(), _fraction, _any_float)),
        queue_depth=draw(st.one_of(st.none(), _any_float)),
        metrics_error=draw(st.one_of(st.none(), st.just("timeout"))),
        metrics_age=draw(st.one_of(st.none(), st.timedeltas(min_value=dt.timedelta(0)))),
        conflicting_autoscaler=draw(st.one_of(st.none(), st.just("hpa/x"))),
        jobs=tuple(jobs),
    )
    runs = draw(
        st.lists(
            st.builds(
                Run,
                job=st.text("abc", min_size=1, max_size=6),
                finished_at=near,
                succeeded=st.booleans(),
                pod_hours=_any_float,
                failed_pod_hours=_any_float,
                work_replica_hours=st.one_of(st.none(), _any_float),
            ),
            max_size=spec.learning.max_runs,
            unique_by=lambda run: run.job,
        )
    )
    holding = draw(st.booleans())
    moment = st.one_of(st.none(), near, _anytime)
    state = State(
        name=NAME,
        phase=draw(st.one_of(st.none(), st.sampled_from(list(Phase)))),
        original_replicas=draw(st.integers(0, INT64_MAX)) if holding else None,
        baseline_utilization=draw(st.one_of(st.none(), _fraction, _any_float)),
        last_action=draw(st.one_of(st.none(), st.sampled_from(list(Action)))),
        last_reason=draw(st.one_of(st.none(), st.sampled_from(list(Reason)))),
        batch_since=draw(moment),
        current_job=draw(st.one_of(st.none(), st.sampled_from(names))),
        last_succeeded=draw(moment),
        last_failed=draw(moment),
        missed_windows=draw(st.one_of(st.integers(0, 1000), st.just(INT64_MAX))),
        last_missed_window=draw(st.one_of(st.none(), st.sampled_from([ended.label, "x"]))),
        fallback_until=draw(moment),
        runs=tuple(sorted(runs, key=lambda run: run.finished_at)),
    )
    return spec, observed, state, now


def _floats(value: Any, path: str = "") -> Iterator[tuple[str, float]]:
    """Every float inside a decision (dataclasses, tuples, dicts, lists), with its path."""
    if isinstance(value, float):
        yield path, value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            yield from _floats(getattr(value, item.name), f"{path}.{item.name}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _floats(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _floats(item, f"{path}[{index}]")


@settings(max_examples=settings.default.max_examples * FUZZ_FACTOR)
@given(situations())
def test_decide_keeps_every_number_a_number(
    situation: tuple[WorkloadPlacementSpec, Observed, State, dt.datetime],
) -> None:
    spec, observed, state, now = situation

    decision = decide(spec, observed, state, now=now)

    # The state included: its runs and baseline are what status will hold.
    bad = [(path, value) for path, value in _floats(decision) if not math.isfinite(value)]
    assert not bad, bad
    assert decision.desired_replicas is None or decision.desired_replicas >= 0
    texts = [decision.message, *(condition.message for condition in decision.conditions)]
    assert not [text for text in texts if NOT_A_NUMBER_WORD.search(text)], texts
    status = build_status(decision, None, generation=1)
    body = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    json.dumps(body, allow_nan=False)  # what kopf sends: strict JSON, or the write is lost
    assert not [(p, v) for p, v in _floats(body) if not math.isfinite(v)]


# -- the guards, one by one -----------------------------------------------------------------


def test_learned_values_are_bounded_by_the_declared_fields_own_bounds() -> None:
    assert EFFICIENCY_BOUNDS == (MIN_EFFICIENCY, MAX_EFFICIENCY)
    assert RETRY_RATE_BOUNDS[0] == 0 and RETRY_RATE_BOUNDS[1] < 1
    costs = make_spec().costs
    learning = LearningSpec.model_validate({"minRuns": 1})
    at = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    tiny = learn(costs, learning, [Run("a", at, True, 1.0, 0.0, 5e-324)])
    huge = learn(costs, learning, [Run("a", at, True, 5e-324, 0.0, 1e308)])
    overflowing = learn(  # the sum of work overflows: inf / finite
        costs, learning, [Run(j, at, True, 1.0, 0.0, 1.7e308) for j in "ab"]
    )
    assert tiny.batch_efficiency.value == MIN_EFFICIENCY
    assert huge.batch_efficiency.value == MAX_EFFICIENCY
    assert overflowing.batch_efficiency.value == MAX_EFFICIENCY
    for learned in (tiny, huge, overflowing):
        CostsSpec.model_validate(
            learned.costs(costs).model_dump(by_alias=True)
        )  # a valid declaration
    shown = decide(
        make_spec(**{"learning.minRuns": 1}),
        Observed(replicas=4, utilization=EXAMPLE_UTILIZATION),
        State(NAME, runs=(Run("a", at, True, 1.0, 0.0, 5e-324),)),
        now=at,
    )
    assert shown.inputs.batch_efficiency == MIN_EFFICIENCY  # not a 0 that reads as x / 0
    assert "batchEfficiency 1e-06 measured over 1 runs (declared 2)" in shown.message


def test_runs_with_figures_that_are_no_numbers_are_not_measured() -> None:
    at = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    job = JobObservation("j", JobOutcome.SUCCEEDED, at, math.nan, 0.0, 1.0)
    assert job.run() is None
    job = JobObservation("j", JobOutcome.SUCCEEDED, at, 2.0, math.inf, math.nan)
    assert job.run() == Run("j", at, True, 2.0, 0.0, None)
    status_runs = (Run("x", at, True, math.inf, 0.0, 1.0), Run("y", at, True, 1.0, 0.0, 2.0))
    learned = learn(make_spec().costs, LearningSpec.model_validate({"minRuns": 1}), status_runs)
    assert learned.batch_efficiency.runs == 1 and learned.batch_efficiency.value == 2.0


def test_a_baseline_that_is_no_number_keeps_the_hold_and_says_so() -> None:
    # A status edited by hand (or an older operator) may carry any baseline: the savings are
    # unknown, the batch path goes on, and the message names the bad figure.
    spec = make_spec()
    holding = State(
        NAME,
        phase=Phase.BATCH,
        original_replicas=4,
        baseline_utilization=math.nan,
        last_reason=Reason.MOVED_TO_BATCH,
        batch_since=dt.datetime(2026, 11, 21, 20, tzinfo=dt.UTC),
    )
    decision = decide(
        spec, Observed(replicas=0), holding, now=dt.datetime(2026, 11, 22, 0, 30, tzinfo=dt.UTC)
    )
    assert decision.state.holding and decision.desired_replicas == 0
    assert decision.savings_per_day is None
    savings = next(c for c in decision.conditions if c.type == "SavingsPositive")
    assert "baselineUtilization not a number is outside [0,1]" in savings.message


def test_savings_that_cannot_be_computed_change_nothing_and_name_the_number() -> None:
    # No Deployment has more replicas than a float holds; a forged figure still never moves.
    decision = decide(
        make_spec(),
        Observed(replicas=10**400, utilization=EXAMPLE_UTILIZATION),
        State(NAME),
        now=dt.datetime(2026, 11, 22, 1, 30, tzinfo=dt.UTC),
    )
    assert decision.reason is Reason.METRICS_UNAVAILABLE
    assert decision.desired_replicas is None and decision.job_name is None
    assert "capacity avoided is ∞" in decision.message
    json.dumps(build_status(decision, None).model_dump(by_alias=True, mode="json"), allow_nan=False)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_utilization_or_queue_depth_that_is_no_number_is_named_in_words(value: float) -> None:
    now = dt.datetime(2026, 11, 22, 1, 30, tzinfo=dt.UTC)
    decision = decide(make_spec(), Observed(replicas=4, utilization=value), State(NAME), now=now)
    assert decision.reason is Reason.METRICS_UNAVAILABLE
    assert "is outside [0,1]" in decision.message
    assert not NOT_A_NUMBER_WORD.search(decision.message), decision.message
    holding = State(
        NAME,
        phase=Phase.BATCH,
        original_replicas=4,
        baseline_utilization=EXAMPLE_UTILIZATION,
        last_reason=Reason.MOVED_TO_BATCH,
        batch_since=now - dt.timedelta(hours=5),
    )
    decision = decide(make_spec(), Observed(replicas=0, queue_depth=value), holding, now=now)
    assert decision.reason is Reason.BATCH_JOB_CREATED
    assert "queue depth not shown (the query returned" in decision.message
    assert decision.inputs.queue_depth is None


def test_a_run_longer_than_a_timedelta_never_fits_and_never_raises() -> None:
    assert batch_duration(math.inf, 1) == dt.timedelta.max
    assert batch_duration(5e16, 1) == dt.timedelta.max
    # The CRD bounds maxParallelPods (100,000); parallel_pods still caps at int32 for any input.
    spec = make_spec(**{"costs.maxParallelPods": 100_000})
    assert parallel_pods(spec.costs, spec.batch.job_template) == 8  # parallelism is smaller
    spec = make_spec(
        **{"costs.maxParallelPods": 100_000, "batch.jobTemplate.spec.parallelism": None}
    )
    assert parallel_pods(spec.costs, spec.batch.job_template) == 100_000
    huge = spec.costs.model_copy(update={"max_parallel_pods": 10**400})
    assert parallel_pods(huge, spec.batch.job_template) == MAX_PARALLEL_PODS
    breakdown = daily_costs(
        spec.costs, replicas=10**400, warm_replicas=0, utilization=1.0, held_hours=24
    )
    assert breakdown.non_finite() == "capacity avoided is ∞"


def test_dst_transitions_are_found() -> None:
    # Europe/Berlin 2026: clocks forward at 01:00 UTC on 29 March, back on 25 October.
    assert transitions("Europe/Berlin", 2026) == (
        dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 10, 25, 1, 0, tzinfo=dt.UTC),
    )


def test_declared_bounds_are_read_from_the_model_exclusive_ends_included() -> None:
    assert declared_bounds("batch_efficiency") == (MIN_EFFICIENCY, MAX_EFFICIENCY)
    assert declared_bounds("retry_rate") == (0.0, math.nextafter(1.0, 0.0))  # lt=1
    low, _ = declared_bounds("batch_pod_hourly")  # gt=0 today: the smallest float above
    assert low > 0 and CostsSpec.model_validate({**_COSTS, "batchPodHourly": low})


_COSTS = make_spec().costs.model_dump(by_alias=True)


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "1e400", "-1", "x", ""])
def test_a_job_annotation_that_is_no_finite_count_reads_as_absent(text: str) -> None:
    assert _float_or_none(text) is None
    assert _float_or_none("5e-324") == 5e-324  # a number: learning bounds what it measures
