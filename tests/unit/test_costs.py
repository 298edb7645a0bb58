"""The daily savings formula, with numbers worked out by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from placement.core.api import CostsSpec, JobTemplate
from placement.core.costs import (
    CostBreakdown,
    daily_costs,
    fits_window,
    held_hours_per_day,
    parallel_pods,
)
from placement.core.durations import parse_duration
from tests.unit.factories import EXAMPLE_UTILIZATION, make_spec


def _costs(**values: float) -> CostsSpec:
    return CostsSpec.model_validate(values)


def test_design_example() -> None:
    # capacity 4 * 1.025 * 24 = 98.40; work 4 * 0.44896 * 24 = 43.10 replica-hours;
    # pod-hours 43.10 / 2 = 21.55; batch 21.55 * 2.0 = 43.10; retries 43.10 * 0.0464 = 2.00;
    # savings 98.40 - 43.10 - 4.10 - 2.00 - 8.00 = 41.20
    spec = make_spec()
    result = daily_costs(
        spec.costs, replicas=4, warm_replicas=0, utilization=EXAMPLE_UTILIZATION, held_hours=24
    )
    assert result.capacity_avoided == pytest.approx(98.40)
    assert result.work_replica_hours == pytest.approx(43.10016)
    assert result.batch_pod_hours == pytest.approx(21.55008)
    assert result.batch_processing == pytest.approx(43.10016)
    assert result.retries == pytest.approx(1.99985, abs=1e-5)
    assert result.data_staging == pytest.approx(4.10)
    assert result.operations == pytest.approx(8.00)
    assert result.savings == pytest.approx(41.20, abs=0.005)
    assert result.format("USD") == (
        "saves 41.20 USD/day = capacity avoided 98.40 - batch 43.10 - staging 4.10"
        " - retries 2.00 - operations 8.00 - missed windows 0.00"
    )


@pytest.mark.parametrize(
    ("acceptable_delay", "held_hours"),
    [
        ("90m", 1.5),  # held only the last 90 minutes before each window ends
        ("8h", 8.0),  # window 01:00-05:00: held 21:00-05:00
        ("24h", 24.0),  # held all day: docs/design.md's formula
        ("2d", 24.0),  # a longer delay cannot hold more than a day a day
    ],
)
def test_held_hours_are_the_acceptable_delay_capped_at_a_day(
    acceptable_delay: str, held_hours: float
) -> None:
    assert held_hours_per_day(parse_duration(acceptable_delay)) == held_hours


def test_held_eight_hours_a_day_counts_eight_hours() -> None:
    # The same fleet held 21:00-05:00 only (acceptableDelay 8h, window 01:00-05:00):
    # capacity 4 * 1.025 * 8 = 32.80; work 4 * 0.44896 * 8 = 14.37 replica-hours;
    # pod-hours 14.37 / 2 = 7.18; batch 7.18 * 2.0 = 14.37; retries 14.37 * 0.0464 = 0.67;
    # staging 4.10 (one run a day) and operations 8.00 stay per day;
    # savings 32.80 - 14.37 - 4.10 - 0.67 - 8.00 = 5.67 (not the 41.20 of a full day)
    spec = make_spec(**{"latency.acceptableDelay": "8h"})
    held = held_hours_per_day(spec.latency.acceptable_delay.timedelta)
    result = daily_costs(
        spec.costs, replicas=4, warm_replicas=0, utilization=EXAMPLE_UTILIZATION, held_hours=held
    )
    assert result.capacity_avoided == pytest.approx(32.80)
    assert result.work_replica_hours == pytest.approx(14.36672)
    assert result.batch_pod_hours == pytest.approx(7.18336)
    assert result.batch_processing == pytest.approx(14.36672)
    assert result.retries == pytest.approx(0.666616, abs=1e-6)
    assert result.data_staging == pytest.approx(4.10)
    assert result.operations == pytest.approx(8.00)
    assert result.savings == pytest.approx(5.67, abs=0.005)
    assert result.format("USD") == (
        "saves 5.67 USD/day (held 8h a day) = capacity avoided 32.80 - batch 14.37"
        " - staging 4.10 - retries 0.67 - operations 8.00 - missed windows 0.00"
    )


def test_a_short_hold_can_turn_savings_into_a_loss() -> None:
    # 90m a day: capacity 4 * 1.025 * 1.5 = 6.15; batch 4 * 0.44896 * 1.5 = 2.69;
    # retries 0.12; staging and operations still 12.10 -> loses 8.77
    result = daily_costs(
        make_spec().costs,
        replicas=4,
        warm_replicas=0,
        utilization=EXAMPLE_UTILIZATION,
        held_hours=1.5,
    )
    assert result.format("USD") == (
        "loses 8.77 USD/day (held 1h30m a day) = capacity avoided 6.15 - batch 2.69"
        " - staging 4.10 - retries 0.12 - operations 8.00 - missed windows 0.00"
    )


def test_warm_replicas_reduce_capacity_avoided_but_not_the_work() -> None:
    # capacity (6 - 2) * 3 * 24 = 288; work 6 * 0.5 * 24 = 72; pod-hours 72 / 4 = 18;
    # batch 18 * 1.5 = 27; retries 2.7; savings 288 - 27 - 10 - 2.7 - 5 = 243.3
    costs = _costs(
        realtimeReplicaHourly=3,
        batchPodHourly=1.5,
        batchEfficiency=4,
        dataStagingPerRun=10,
        operationsPerDay=5,
        retryRate=0.1,
    )
    result = daily_costs(costs, replicas=6, warm_replicas=2, utilization=0.5, held_hours=24)
    assert result == CostBreakdown(
        capacity_avoided=288.0,
        batch_processing=27.0,
        data_staging=10.0,
        retries=pytest.approx(2.7),
        operations=5.0,
        work_replica_hours=72.0,
        batch_pod_hours=18.0,
        held_hours=24,
    )
    assert result.savings == pytest.approx(243.3)
    assert result.rounded() == {
        "capacityAvoided": 288.0,
        "batchProcessing": 27.0,
        "dataStaging": 10.0,
        "retries": 2.7,
        "operations": 5.0,
        "missedWindowRisk": 0.0,
    }


def test_a_loss_says_loses() -> None:
    # capacity 24; batch 1 * 0.9 * 24 / 1 * 4 = 86.40; savings 24 - 86.4 - 5 - 0 - 10 = -77.40
    costs = _costs(
        realtimeReplicaHourly=1,
        batchPodHourly=4,
        batchEfficiency=1,
        dataStagingPerRun=5,
        operationsPerDay=10,
    )
    result = daily_costs(costs, replicas=1, warm_replicas=0, utilization=0.9, held_hours=24)
    assert result.savings == pytest.approx(-77.40)
    assert result.format("EUR") == (
        "loses 77.40 EUR/day = capacity avoided 24.00 - batch 86.40 - staging 5.00"
        " - retries 0.00 - operations 10.00 - missed windows 0.00"
    )


def test_more_warm_replicas_than_replicas_avoids_nothing() -> None:
    costs = _costs(realtimeReplicaHourly=1, batchPodHourly=1, batchEfficiency=1)
    result = daily_costs(costs, replicas=1, warm_replicas=3, utilization=0.5, held_hours=24)
    assert result.capacity_avoided == 0
    assert result.batch_processing == 12


def test_idle_fleet_costs_no_batch() -> None:
    costs = _costs(realtimeReplicaHourly=2, batchPodHourly=9, batchEfficiency=1)
    result = daily_costs(costs, replicas=3, warm_replicas=0, utilization=0, held_hours=24)
    assert result.batch_processing == 0
    assert result.savings == 144


@pytest.mark.parametrize(
    ("max_parallel_pods", "parallelism", "expected"),
    [(None, None, 1), (None, 8, 8), (3, None, 3), (3, 8, 3), (8, 3, 3)],
)
def test_parallel_pods_is_the_smaller_limit(
    max_parallel_pods: int | None, parallelism: int | None, expected: int
) -> None:
    costs = _costs(realtimeReplicaHourly=1, batchPodHourly=1, batchEfficiency=1).model_copy(
        update={"max_parallel_pods": max_parallel_pods}
    )
    template = JobTemplate.model_validate(
        {
            "spec": {
                "parallelism": parallelism,
                "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}},
            }
        }
    )
    assert parallel_pods(costs, template) == expected


@pytest.mark.parametrize(
    ("pod_hours", "pods", "window", "fits"),
    [
        (18, 4, timedelta(hours=4), False),  # 4.5h
        (18, 5, timedelta(hours=4), True),  # 3.6h
        (16, 4, timedelta(hours=4), True),  # exactly the window
        (0, 1, timedelta(minutes=1), True),
    ],
)
def test_fits_window(pod_hours: float, pods: int, window: timedelta, fits: bool) -> None:
    assert fits_window(pod_hours, pods, window) is fits


positive = st.floats(min_value=0.01, max_value=1_000, allow_nan=False)


@given(
    replicas=st.integers(0, 500),
    warm=st.integers(0, 500),
    utilization=st.floats(0, 1),
    hourly=positive,
    pod_hourly=positive,
    efficiency=positive,
    staging=st.floats(0, 1_000),
    operations=st.floats(0, 1_000),
    retry_rate=st.floats(0, 0.99),
    held=st.floats(0, 24),
)
def test_savings_is_capacity_minus_every_term(
    replicas: int,
    warm: int,
    utilization: float,
    hourly: float,
    pod_hourly: float,
    efficiency: float,
    staging: float,
    operations: float,
    retry_rate: float,
    held: float,
) -> None:
    costs = _costs(
        realtimeReplicaHourly=hourly,
        batchPodHourly=pod_hourly,
        batchEfficiency=efficiency,
        dataStagingPerRun=staging,
        operationsPerDay=operations,
        retryRate=retry_rate,
    )
    result = daily_costs(
        costs, replicas=replicas, warm_replicas=warm, utilization=utilization, held_hours=held
    )
    terms = (result.batch_processing, result.data_staging, result.retries, result.operations)
    assert all(term >= 0 for term in (result.capacity_avoided, *terms))
    assert result.savings == pytest.approx(result.capacity_avoided - sum(terms))
    assert result.retries <= result.batch_processing
    more_work = daily_costs(
        costs,
        replicas=replicas,
        warm_replicas=warm,
        utilization=min(utilization + 0.1, 1),
        held_hours=held,
    )
    assert more_work.savings <= result.savings + 1e-9  # more work never saves more
    # a full day never shows less capacity avoided or less work than part of one
    full_day = daily_costs(
        costs, replicas=replicas, warm_replicas=warm, utilization=utilization, held_hours=24
    )
    assert full_day.capacity_avoided >= result.capacity_avoided - 1e-9
    assert full_day.work_replica_hours >= result.work_replica_hours - 1e-9
    assert (full_day.data_staging, full_day.operations) == (result.data_staging, result.operations)
