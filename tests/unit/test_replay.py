"""placement replay on small series whose costs are computed by hand.

The placement: 2 replicas at 1.00/h, batch pods at 1.00/h, batchEfficiency 2, no retries,
8 parallel pods, window 01:00-05:00 UTC, evaluated every hour. Every hourly sample carries
2 * 0.5 = 1 replica-hour of work; holding one hour saves 2.00 of capacity and costs
1 / 2 = 0.50 of batch: a gain of 1.50. The first sample (23:00) only fills the 1h lookback.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from placement.core.api import WorkloadPlacementSpec
from placement.core.observation import Observation
from placement.core.reconcile import reconcile
from placement.replay.replay import (
    ANY_HOLD,
    WHOLE_HOURS,
    HoldShape,
    ReplayOptions,
    ReplayResult,
    oracle_placement,
    replay,
)
from placement.replay.series import Sample, format_series
from placement.runtime.cli import main
from tests.unit.factories import example_manifest, make_spec

HISTORY = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)


def _spec(**changes: Any) -> WorkloadPlacementSpec:
    values: dict[str, Any] = {
        "costs.realtimeReplicaHourly": 1.0,
        "costs.batchPodHourly": 1.0,
        "costs.batchEfficiency": 2.0,
        "costs.retryRate": 0.0,
        "costs.dataStagingPerRun": 2.0,
        "costs.operationsPerDay": 2.0,
        "metrics.lookback": "1h",
        "evaluationInterval": "1h",
    }
    values.update(changes)
    return make_spec(**values)


def _hourly(hours: int, *, failed_at: datetime | None = None) -> list[Sample]:
    """The history sample at 23:00, then `hours` samples from 00:00 on 22 November."""
    samples = []
    for index in range(hours + 1):
        at = HISTORY + timedelta(hours=index)
        samples.append(Sample(at, 2, 0.5, job_outcome="failed" if at == failed_at else None))
    return samples


def test_series_shorter_than_the_lookback_is_refused() -> None:
    with pytest.raises(ValueError, match=r"metrics.lookback"):
        replay(
            _spec(), [*_hourly(0)[:1], Sample(HISTORY + timedelta(minutes=30), 2, 0.5)], name="s"
        )


def test_a_held_part_of_the_day_against_the_oracle_by_hand() -> None:
    # acceptableDelay 8h: the Deployment may be held 21:00-05:00. 47 priced hours, 00:00 on
    # 22 November to 22:00 on 23 November. Cycles end with each window (05:00):
    #   cycle 1: 00:00-04:00, 5 hours   gain 7.50 > staging 2 + operations 2: held
    #   cycle 2: 21:00-04:00, 8 hours   gain 12.00: held
    #   cycle 3: 21:00-22:00, 2 hours   gain 3.00 < 4.00: the oracle does not hold;
    #            the operator cannot know the series ends, holds, and pays for it.
    result = replay(_spec(**{"latency.acceptableDelay": "8h"}), _hourly(47), name="s")
    assert result.always.total == pytest.approx(94.0)  # 47 h * 2 replicas * 1.00
    oracle = result.oracle.costs
    # realtime 34 h * 2, batch 13 replica-hours / 2, staging and operations for 2 cycles
    assert (oracle.realtime, oracle.batch, oracle.staging, oracle.operations) == pytest.approx(
        (68.0, 6.5, 4.0, 4.0)
    )
    assert result.oracle_saving == pytest.approx(11.5)
    operator = result.operator
    # realtime 32 h * 2; batch 9 replica-hours / 2: the Jobs' 7 (00:00-01:00, then
    # 21:00-01:00) and the 2 still queued at the end (21:00-22:00, no Job yet). 02:00-04:00
    # arrived after the day's Job had drained its queue: the fleet restored at 05:00 serves it
    # with the capacity its load leaves (2 * 0.5 an hour), paid for anyway. Staging for 2
    # Jobs and the queued work; operations for 3 cycles.
    assert (operator.realtime, operator.batch, operator.staging, operator.operations) == (
        pytest.approx((64.0, 4.5, 6.0, 6.0))
    )
    # More than the oracle's, whose held work all goes to batch: the bound assumes no fleet
    # catches up after a hold.
    assert result.operator_saving == pytest.approx(13.5)
    assert result.captured_share == pytest.approx(13.5 / 11.5)
    assert result.pending_work == pytest.approx(2.0)
    # held 00-04, released at 05, held from 21:00 twice: 4 changes, and the same for the oracle
    # up to its last cycle
    assert result.mode_changes == 4
    assert result.oracle_mode_changes == 3
    assert (result.missed_windows, result.fallbacks) == (0, 0)
    assert [d.reason for d in result.decisions][:3] == [
        "MovedToBatch",
        "BatchJobCreated",
        "BatchSucceeded",
    ]


def test_a_whole_day_held_captures_all_of_the_oracles_saving() -> None:
    # acceptableDelay 24h: both hold all 48 hours; 3 cycles of fixed costs each.
    result = replay(_spec(), _hourly(48), name="s")
    assert result.always.total == pytest.approx(96.0)
    assert result.oracle.costs.total == pytest.approx(96.0 - 48 * 1.5 + 3 * 4.0)
    assert result.operator.total == pytest.approx(result.oracle.costs.total)
    assert result.captured_share == pytest.approx(1.0)
    assert result.mode_changes == 0


def test_the_oracle_never_acts_where_the_operator_may_not() -> None:
    for changes in ({"owner": ""}, {"latency.userVisible": True}, {"productRisk": "High"}):
        spec = _spec(**changes)
        oracle = oracle_placement(spec, _hourly(48)[1:])
        assert not any(oracle.held)
        assert oracle.costs.total == pytest.approx(96.0)
        result = replay(spec, _hourly(48), name="s")
        assert result.operator.total == pytest.approx(96.0)
        assert result.captured_share == 1.0  # nothing to capture, nothing lost


def test_the_oracle_holds_only_what_fits_the_window() -> None:
    # One parallel pod at efficiency 2 drains 8 replica-hours in the 4h window: of a day's
    # 24 replica-hours only the 8 best hours may be held.
    spec = _spec(**{"batch.jobTemplate.spec.parallelism": 1})
    oracle = oracle_placement(spec, _hourly(48)[1:])
    cycle_two = [
        held
        for sample, held in zip(_hourly(48)[1:], oracle.held, strict=True)
        if datetime(2026, 11, 22, 5, tzinfo=UTC)
        <= sample.at
        < datetime(2026, 11, 23, 5, tzinfo=UTC)
    ]
    assert sum(cycle_two) == 8


def test_the_oracle_of_the_operators_hold_shape_holds_less_than_the_oracle() -> None:
    # One pod at efficiency 2: 8 replica-hours fit the 4h window. Quiet mornings (05:00-17:00,
    # 0.5 replica-hours an hour, else 1.0): the oracle holds 05:00-19:00 (14 hours, the
    # morning's 6 and 2 more) for the next window; a hold ending with the window, as the
    # operator's planned holds do, only its last 8 hours; within half the window, 4.
    spec = _spec(**{"batch.jobTemplate.spec.parallelism": 1})
    samples = [
        replace(s, utilization=0.25 if 5 <= s.at.hour < 17 else 0.5) for s in _hourly(48)[1:]
    ]
    day = datetime(2026, 11, 22, 5, tzinfo=UTC)

    def held_in_cycle_two(shape: HoldShape) -> list[int]:
        oracle = oracle_placement(spec, samples, shape=shape)
        return [
            s.at.hour
            for s, held in zip(samples, oracle.held, strict=True)
            if held and day <= s.at < day + timedelta(days=1)
        ]

    assert held_in_cycle_two(ANY_HOLD) == list(range(5, 19))
    assert held_in_cycle_two(HoldShape(ends_with_window=True)) == [*range(21, 24), *range(5)]
    assert held_in_cycle_two(HoldShape(ends_with_window=True, margin=0.5)) == [1, 2, 3, 4]
    bound = oracle_placement(spec, samples, shape=HoldShape(ends_with_window=True))
    assert bound.costs.total > oracle_placement(spec, samples).costs.total


def test_the_oracle_of_a_finer_hold_step_starts_nearer_the_fill() -> None:
    # One pod at efficiency 2: 8 replica-hours fit the 4h window, 7.6 at a 0.95 margin.
    # Five-minute samples of 1 replica-hour an hour: a hold ending with the window may start
    # 7h35m before its end (21:25) on any step, 7h30m (21:30) on quarter hours, 7h (22:00)
    # on whole hours; the finer the step, the more it saves.
    spec = _spec(**{"batch.jobTemplate.spec.parallelism": 1})
    samples = [Sample(HISTORY + timedelta(minutes=5 * i), 2, 0.5) for i in range(12 * 48)]
    day = datetime(2026, 11, 22, 5, tzinfo=UTC)

    def first_held_in_cycle_two(step: timedelta | None) -> datetime:
        shape = HoldShape(ends_with_window=True, step=step, margin=0.95)
        oracle = oracle_placement(spec, samples, shape=shape)
        return min(
            s.at
            for s, held in zip(samples, oracle.held, strict=True)
            if held and day <= s.at < day + timedelta(days=1)
        )

    evening = datetime(2026, 11, 22, 21, tzinfo=UTC)
    assert first_held_in_cycle_two(None) == evening + timedelta(minutes=25)
    assert first_held_in_cycle_two(timedelta(minutes=15)) == evening + timedelta(minutes=30)
    assert first_held_in_cycle_two(WHOLE_HOURS) == evening + timedelta(hours=1)
    costs = [
        oracle_placement(
            spec, samples, shape=HoldShape(ends_with_window=True, step=step, margin=0.95)
        ).costs.total
        for step in (None, timedelta(minutes=15), WHOLE_HOURS)
    ]
    assert costs[0] < costs[1] < costs[2]


def test_the_oracle_that_starts_at_the_earliest_holds_the_busy_morning() -> None:
    # One pod at efficiency 2: 8 replica-hours fit the 4h window. Busy mornings (05:00-12:00,
    # 1.0 replica-hour an hour, else 0.5): the oracle skips them and holds 12:00-04:00 (16
    # hours); a hold that starts as early as acceptableDelay allows (05:00, the previous
    # window's end, as bursty's planned holds do) spends the window on the morning: 9 hours.
    spec = _spec(**{"batch.jobTemplate.spec.parallelism": 1})
    samples = [
        replace(s, utilization=0.5 if 5 <= s.at.hour < 12 else 0.25) for s in _hourly(48)[1:]
    ]
    day = datetime(2026, 11, 22, 5, tzinfo=UTC)

    def held_in_cycle_two(shape: HoldShape) -> list[int]:
        oracle = oracle_placement(spec, samples, shape=shape)
        return [
            s.at.hour
            for s, held in zip(samples, oracle.held, strict=True)
            if held and day <= s.at < day + timedelta(days=1)
        ]

    assert held_in_cycle_two(ANY_HOLD) == [*range(12, 24), *range(4)]
    assert held_in_cycle_two(HoldShape(starts_earliest=True)) == list(range(5, 14))
    earliest = oracle_placement(spec, samples, shape=HoldShape(starts_earliest=True))
    assert earliest.costs.total > oracle_placement(spec, samples).costs.total


def test_a_failed_job_past_retry_window_falls_back_and_misses_the_window() -> None:
    # The Job of 23 November starts at 01:00 with 24 replica-hours (16 per hour on 8 pods)
    # and fails at 02:00; retryWindow 1h passes at 03:00: fallback, the window is missed.
    failed_at = datetime(2026, 11, 23, 2, tzinfo=UTC)
    result = replay(_spec(), _hourly(48, failed_at=failed_at), name="s")
    assert result.fallbacks == 1
    assert result.missed_windows == 1
    failed = [job for job in result.jobs if job.outcome == "Failed"]
    assert [job.name for job in failed] == ["s-20261123-0100"]
    assert failed[0].failed_pod_hours == failed[0].pod_hours == pytest.approx(8.0)
    assert "FallbackRestored" in [d.reason for d in result.decisions]
    assert result.captured_share < 1


def test_learning_measures_the_true_efficiency_and_acts_on_it() -> None:
    # Declared efficiency 2, true 0.4: a day's 24 replica-hours would cost 60.00 of batch,
    # more than the 48.00 of capacity avoided. After the first Job (minRuns 1) the operator
    # knows and gives the replicas back.
    spec = _spec(**{"learning.minRuns": 1})
    result = replay(spec, _hourly(48), name="s", options=ReplayOptions(batch_efficiency=0.4))
    assert result.learned is not None
    efficiency = result.learned.batch_efficiency
    assert efficiency.measured == pytest.approx(0.4)
    assert efficiency.in_use
    assert efficiency.declared == 2.0
    restored = next(d for d in result.decisions if d.reason == "Restored")
    assert "SavingsNegative" in restored.message
    assert "batchEfficiency 0.40 measured over 1 runs (declared 2)" in restored.message
    assert result.operator.batch == pytest.approx(2 / 0.4)  # 00:00 and 01:00 went to batch


def test_recommend_mode_is_replayed_as_enforce_unless_kept() -> None:
    spec = _spec(mode="Recommend")
    assert replay(spec, _hourly(48), name="s").operator_saving > 0
    kept = replay(spec, _hourly(48), name="s", options=ReplayOptions(enforce=False))
    assert kept.operator_saving == 0
    assert kept.mode_changes == 0


def test_the_cli_writes_the_summary_and_the_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = example_manifest()
    manifest["spec"]["costs"].update(realtimeReplicaHourly=1.0, batchPodHourly=1.0)
    placement = tmp_path / "placement.yaml"
    placement.write_text(json.dumps(manifest))
    series = tmp_path / "series.csv"
    series.write_text(format_series(_hourly(48)))
    code = main(
        [
            "replay",
            "--placement",
            str(placement),
            "--series",
            str(series),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "captured share of the oracle's saving" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary) >= {
        "cost",
        "saving",
        "captured_share",
        "missed_windows",
        "fallbacks",
        "mode_changes",
        "decisions",
    }
    assert summary["decisions"][0]["reason"] == "MovedToBatch"
    png = (tmp_path / "out" / "timeline.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_the_cli_names_a_bad_series_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    placement = tmp_path / "placement.yaml"
    placement.write_text(json.dumps(example_manifest()))
    series = tmp_path / "series.csv"
    series.write_text(
        "timestamp,replicas,utilization\n2026-11-22T00:00:00Z,2,0.5\n2026-11-22T01:00:00Z,2,1.5\n"
    )
    assert main(["replay", "--placement", str(placement), "--series", str(series)]) == 1
    assert "row 3: utilization 1.5 is outside [0,1]" in capsys.readouterr().err


# -- async ---------------------------------------------------------------------------------------
# 2 replicas at 0.2: 0.4 replicas of work -> ceil(0.4 / 0.8) = 1 async replica, 1.00/h saved;
# queue 1.00 and operations 2.00 per cycle. Cycles end with the windows: 00:00-04:00 (5 h)
# and 05:00-23:00 (19 h) of 22 November.
ASYNC = {
    "latency.acceptableDelay": "10m",
    "async": {"queue": "sum(queue_depth)", "scaleUpTime": "2m"},
    "costs.queuePerDay": 1.0,
}


def _quiet(hours: int, utilization: float = 0.2) -> list[Sample]:
    return [Sample(HISTORY + timedelta(hours=i), 2, utilization) for i in range(hours + 1)]


def test_async_in_replay_follows_the_queue_and_is_priced_by_hand() -> None:
    result = replay(_spec(**ASYNC), _quiet(24), name="summarizer")
    assert [d.reason for d in result.decisions] == ["MovedToAsync"]
    assert {s.mode for s in result.steps} == {"Async"}
    assert {s.deployment_replicas for s in result.steps} == {1}  # KEDA's count
    # 24 replica-hours at 1.00 + 2 cycles * (queue 1.00 + operations 2.00)
    assert result.operator.rounded() == {
        "realtime": 24.0,
        "batch": 0.0,
        "staging": 0.0,
        "operations": 4.0,
        "queue": 2.0,
        "total": 30.0,
    }
    assert result.always.total == 48.0
    # The oracle: batch may not hold (10m before a window's end), async pays in both cycles.
    assert result.oracle.cycles_async == 2 and result.oracle.cycles_held == 0
    assert result.oracle.costs.total == pytest.approx(30.0)
    assert result.captured_share == pytest.approx(1.0)
    assert result.trace[0][1][:2] == (
        "TakeHold deployment/summarizer 2",
        "ApplyScaledObject placement-summarizer",
    )
    summary = result.summary()
    assert summary["operator"]["asyncHours"] == 24.0
    assert summary["oracle"]["cyclesAsync"] == 2


def test_deleting_in_async_deletes_the_scaled_object_before_restoring() -> None:
    options = ReplayOptions(delete_at_end=True)
    result = replay(_spec(**ASYNC), _quiet(3), name="summarizer", options=options)
    assert result.trace[-1][1][:2] == (
        "DeleteScaledObject placement-summarizer",
        "Restore deployment/summarizer 2",
    )


@pytest.mark.parametrize(
    ("pod_hourly", "mode"),
    [(1.0, "Batch"), (8.0, "Async")],
)
def test_the_oracle_chooses_the_cheaper_of_batch_and_async_per_cycle(
    pod_hourly: float, mode: str
) -> None:
    # acceptableDelay 24h: batch may hold the whole cycle. Per held hour it saves 2.00 of
    # capacity and pays 0.4 / 2 * podHourly of batch: at 1.00 batch saves 30.20 in the long
    # cycle against async's 16.00; at 8.00 only 3.60.
    spec = _spec(**{**ASYNC, "latency.acceptableDelay": "24h", "costs.batchPodHourly": pod_hourly})
    samples = _quiet(24)[1:]
    oracle = oracle_placement(spec, samples)
    assert {str(m) for m in oracle.modes} == {mode}
    assert (oracle.cycles_held, oracle.cycles_async) == ((2, 0) if mode == "Batch" else (0, 2))


def test_the_oracle_keeps_async_out_when_the_fleet_scales_up_too_slowly() -> None:
    spec = _spec(**{**ASYNC, "async": {"queue": "q", "scaleUpTime": "15m"}})
    oracle = oracle_placement(spec, _quiet(24)[1:])
    assert oracle.cycles_async == 0 and oracle.costs.total == 48.0


def test_the_cost_per_request_over_the_series_and_in_each_decision() -> None:
    # 2 requests/s all day: 172,800 requests. Always realtime 48.00 -> 0.2778 per 1,000;
    # the operator and the oracle 30.00 -> 0.1736.
    spec = _spec(**ASYNC, **{"metrics.requests": "sum(rate(requests_total[5m]))"})
    samples = [replace(s, requests=2.0) for s in _quiet(24)]
    result = replay(spec, samples, name="summarizer")
    assert result.cost_per_request() == {
        "unit": "1,000 requests",
        "requests": 172800.0,
        "alwaysRealtime": 0.277778,
        "operator": 0.173611,
        "oracle": 0.173611,
    }
    # The move: 2 replicas now at 1.00/h over 7,200 requests an hour; async forecast
    # (48 - 21) / 172,800 * 1,000.
    assert "cost per 1,000 requests 0.2778 USD now, 0.1562 USD in Async" in (
        result.decisions[0].message
    )


def test_the_table_names_the_async_hours_and_the_cost_per_request() -> None:
    from placement.replay.report import table

    spec = _spec(**ASYNC)
    samples = [replace(s, requests=2.0) for s in _quiet(24)]
    text = table(replay(spec, samples, name="summarizer"))
    assert "+ queue 2.00" in text
    assert "async hours: operator 24, oracle 24 (2 cycles)" in text
    assert "cost per 1,000 requests: always realtime 0.2778, operator 0.1736, oracle 0.1736" in text


def test_the_plot_draws_an_async_replay(tmp_path: Path) -> None:
    from placement.replay.report import plot  # matplotlib: a dev dependency, never skipped

    path = tmp_path / "async.png"
    plot(replay(_spec(**ASYNC), _quiet(24), name="summarizer"), path)
    assert path.stat().st_size > 10_000


# -- what the operator reads -------------------------------------------------------------------


def _observed(
    monkeypatch: pytest.MonkeyPatch,
    spec: WorkloadPlacementSpec,
    samples: list[Sample],
    options: ReplayOptions | None = None,
) -> tuple[ReplayResult, dict[datetime, Observation]]:
    """The replay, and the Observation reconcile() was given at each evaluation."""
    seen: dict[datetime, Observation] = {}

    def recording(
        placement: Any, spec: WorkloadPlacementSpec, observation: Observation, now: datetime,
        *args: Any, **kwargs: Any,
    ) -> Any:  # fmt: skip
        seen[now] = observation
        return reconcile(placement, spec, observation, now, *args, **kwargs)

    monkeypatch.setattr("placement.replay.replay.reconcile", recording)
    return replay(spec, samples, name="s", options=options), seen


def at(hour: int, day: int = 22) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def test_the_policy_reads_demand_and_the_held_work_as_queue_depth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Capacity 10 units/s per replica: 2 replicas at 0.5 bring 10 units/s whatever the fleet.
    spec = _spec(**{"metrics.demand": "sum(rate(tokens_total[5m]))", "metrics.queueDepth": "q"})
    result, seen = _observed(
        monkeypatch, spec, _hourly(48), ReplayOptions(capacity_per_replica=10.0)
    )
    assert result.decisions[0].reason == "MovedToBatch"  # at 00:00
    assert {o.demand.value for o in seen.values() if o.demand} == {10.0}
    assert all(
        o.demand is not None and o.demand.query.startswith("sum(rate") for o in seen.values()
    )
    # 00:00-01:00 held: 1 replica-hour waits for the 01:00 Job: 10 units/s * 3600 s.
    queue = seen[at(1)].queue_depth
    assert queue is not None and queue.value == pytest.approx(36000.0)
    # While held the warm replica serves none of it: utilization no longer shows the load.
    assert seen[at(0)].utilization is not None and seen[at(0)].utilization.value == 0.5
    assert seen[at(2)].utilization is not None and seen[at(2)].utilization.value == 0.0
    held = [step for step in result.steps if step.held]
    assert held and all(step.observed_utilization == 0.0 for step in held[1:])


def test_the_history_is_demand_before_now_read_again_every_refresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = _spec(**{"metrics.demand": "d", "metrics.history": "1d"})
    options = ReplayOptions(capacity_per_replica=10.0, history_refresh=timedelta(hours=3))
    _, seen = _observed(monkeypatch, spec, _hourly(48), options)
    first = seen[at(0)].history
    assert first is not None
    assert first.source == "demand"
    assert first.step == timedelta(hours=1)
    assert first.samples == ((HISTORY, 10.0),)  # the series before the replayed range
    assert seen[at(2)].history is first  # not refreshed before 3 h have passed
    refreshed = seen[at(3)].history
    assert refreshed is not None and refreshed.fetched_at == at(3)
    assert [moment for moment, _ in refreshed.samples] == [HISTORY, at(0), at(1), at(2)]
    late = seen[at(12, day=23)].history
    assert late is not None and late.fetched_at == at(12, day=23)
    assert late.samples[0][0] == at(12)  # metrics.history (1d) before now
    assert all(value == 10.0 for _, value in late.samples)


def test_without_a_demand_query_the_history_is_the_utilization_as_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, seen = _observed(monkeypatch, _spec(), _hourly(48))
    observation = seen[at(12)]
    assert observation.demand is None
    assert observation.queue_depth is None  # not configured: not read
    assert observation.history is not None and observation.history.source == "utilization"
    # Held since 00:00: the readings after it say 0, not the load.
    assert [value for _, value in observation.history.samples] == [0.5, 0.5] + [0.0] * 11


def test_missed_windows_of_failed_jobs_are_counted_apart() -> None:
    failed_at = datetime(2026, 11, 23, 2, tzinfo=UTC)
    result = replay(_spec(), _hourly(48, failed_at=failed_at), name="s")
    assert result.missed_windows == 1
    assert result.missed_windows_failed_jobs == 1
    assert result.missed_windows_load == 0
    summary = result.summary()
    assert summary["missed_windows_load"] == 0
    assert summary["missed_windows_failed_jobs"] == 1


def test_restored_realtime_serves_the_held_work_left_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The 23 November Job fails at 02:00 and is not retried in time: the fallback restores
    # realtime at 03:00 with the day's work waiting. The 2 replicas at 0.5 leave 1
    # replica-hour an hour to serve it: the queue the operator reads shrinks by 1 replica-hour
    # (10 units/s * 3600 s) an hour.
    spec = _spec(**{"metrics.queueDepth": "q"})
    failed_at = datetime(2026, 11, 23, 2, tzinfo=UTC)
    result, seen = _observed(
        monkeypatch,
        spec,
        _hourly(48, failed_at=failed_at),
        ReplayOptions(capacity_per_replica=10.0),
    )
    assert result.fallbacks == 1
    depths = [seen[at(hour, day=23)].queue_depth for hour in (5, 6, 7)]
    values = [depth.value for depth in depths if depth is not None]
    assert len(values) == 3 and values[0] > 0
    assert values[0] - values[1] == pytest.approx(36000.0)
    assert values[1] - values[2] == pytest.approx(36000.0)
    # 25 replica-hours waited at 03:00 (the failed Job's 24 and the 02:00 hour); 21 hours
    # of spare capacity, 03:00-23:00, leave 4 for the end.
    assert result.pending_work == pytest.approx(4.0)
