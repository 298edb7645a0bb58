"""A shared answer keeps what its placements read (a number per key), not Prometheus's JSON,
and every placement reads from it what the answer as returned would have given it."""

from __future__ import annotations

import math
import tracemalloc
from datetime import timedelta

import pytest

from placement.adapters.grouping import NAMESPACE, Series, split
from placement.adapters.prometheus import BatchedMetricsReader, _Shares, _single_value
from tests.unit.test_tenancy_across import FakePrometheus, expression, fleet, one_pass

LOOKBACK = timedelta(minutes=5)


def answer(*samples: tuple[str, object]) -> list[Series]:
    """One series per (deployment, sample), in one namespace."""
    return [
        {"metric": {NAMESPACE: "a", "deployment": name}, "value": sample}
        for name, sample in samples
    ]


ODD = answer(
    ("ok", [1764000000.5, "0.25"]),
    ("nan", [1764000000.5, "NaN"]),
    ("inf", [1764000000.5, "+Inf"]),
    ("negative", [1764000000.5, "-1"]),
    ("over", [1764000000.5, "1.5"]),
    ("unreadable", [1764000000.5, "abc"]),
    ("short", [1764000000.5]),
    ("none", None),
    ("text", "12"),
    ("later", [1764000030.0, "0.5"]),
    ("no-time", ["x", "0.5"]),
    ("nan-time", ["NaN", "0.5"]),
    ("twice", [1764000000.5, "0.1"]),
    ("twice", [1764000000.5, "0.2"]),
)


@pytest.mark.parametrize("upper", [1.0, None])
def test_every_key_reads_from_the_kept_answer_what_the_answer_gave(upper: float | None) -> None:
    members = split(ODD, (NAMESPACE, "deployment"))
    shares = _Shares.of(members)
    for key, series in members.items():
        assert key in shares
        kept = _single_value("utilization", "q", shares.series(key), upper)
        assert kept == _single_value("utilization", "q", series, upper), key
    assert ("a", "absent") not in shares and shares.series(("a", "absent")) == []


def test_an_answer_whose_first_sample_has_no_time_is_kept_as_read() -> None:
    members = split(answer(("nan-time", ["NaN", "0.5"]), ("ok", [5.0, "0.25"])), ("deployment",))
    shares = _Shares.of(members)
    assert shares.moment == 5.0
    for key, series in members.items():
        reading = _single_value("u", "q", shares.series(key), None)
        assert reading == _single_value("u", "q", series, None)
    assert math.isnan(float(shares.series(("nan-time",))[0]["value"][0]))


def test_the_shared_answers_of_2_000_placements_keep_under_300_bytes_a_placement() -> None:
    # The answers as Prometheus's JSON, decoded and split, were 830 bytes a series (the
    # series' dict, its labels' dict and strings, the sample's list, number and text): at
    # 10,000 placements of 2.5 series, 21 MB (docs/scaling.md, stop 23). Here 172 bytes.
    spaces = [f"tenant-{i:03d}" for i in range(40)]
    deployments = tuple(f"model-{i:04d}" for i in range(50))
    prometheus = FakePrometheus(fleet(spaces, deployments), max_batch_series=20_000)
    batched = BatchedMetricsReader(prometheus, max_age=60)
    placements = [(ns, d) for ns in spaces for d in deployments]
    for ns, deployment in placements:
        expression(ns, deployment)  # the placements' own expressions exist before
    one_pass(batched, placements)  # every namespace asks once: the batches are packed
    tracemalloc.start()
    try:
        readings = one_pass(batched, placements)  # each fetches the answers anew
        assert all(outcome.name == "OK" for outcome, _, _ in readings.values())
        del readings
        kept, _ = tracemalloc.get_traced_memory()  # what the pass left: the shared answers
    finally:
        tracemalloc.stop()
    # Two series a placement, and the set of who read each answer.
    assert kept / len(placements) < 600
