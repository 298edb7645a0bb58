"""A shared result: each reader gets it once, then the next read fetches a new one."""

from __future__ import annotations

import threading
import time

from placement.adapters.sharing import NamespaceBatches, RefreshedResults, SharedResults


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_one_fetch_serves_each_reader_once() -> None:
    shared: SharedResults[int] = SharedResults(max_age=60, clock=Clock())
    fetched = iter(range(100))
    values = [shared.get("q", reader, lambda: next(fetched)) for reader in "abc"]
    assert values == [(0, True), (0, False), (0, False)]
    # The first reader back is the start of the next pass: a new fetch, shared again.
    assert shared.get("q", "a", lambda: next(fetched)) == (1, True)
    assert shared.get("q", "b", lambda: next(fetched)) == (1, False)
    assert shared.fetches == 2


def test_keys_are_fetched_separately() -> None:
    shared: SharedResults[str] = SharedResults(max_age=60, clock=Clock())
    assert shared.get("q1", "a", lambda: "one") == ("one", True)
    assert shared.get("q2", "a", lambda: "two") == ("two", True)
    assert shared.get("q1", "b", lambda: "other") == ("one", False)


def test_a_result_older_than_max_age_is_fetched_again() -> None:
    clock = Clock()
    shared: SharedResults[int] = SharedResults(max_age=10, clock=clock)
    shared.get("q", "a", lambda: 1)
    clock.now = 10.5
    assert shared.get("q", "b", lambda: 2) == (2, True)


def test_refresh_fetches_even_for_a_new_reader() -> None:
    shared: SharedResults[int] = SharedResults(max_age=60, clock=Clock())
    shared.get("q", "a", lambda: 1)
    assert shared.get("q", "b", lambda: 2, refresh=True) == (2, True)


def test_concurrent_readers_wait_for_one_fetch() -> None:
    shared: SharedResults[int] = SharedResults(max_age=60)
    calls = []

    def slow() -> int:
        calls.append(1)
        time.sleep(0.05)
        return 7

    results: list[tuple[int, bool]] = []
    threads = [
        threading.Thread(target=lambda r=r: results.append(shared.get("q", r, slow)))
        for r in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert sorted(results) == [(7, False)] * 7 + [(7, True)]


def test_results_nobody_asks_for_any_more_are_dropped() -> None:
    clock = Clock()
    shared: SharedResults[int] = SharedResults(max_age=10, clock=clock)
    for namespace in range(100):  # e.g. one shared query per namespace, then deleted
        shared.get(f"q{{namespace={namespace}}}", "a", lambda: 1)
    assert len(shared) == 100
    clock.now = 11
    shared.get("q{namespace=kept}", "a", lambda: 2)
    assert len(shared) == 1
    assert shared.get("q{namespace=kept}", "b", lambda: 3) == (2, False)


# -- RefreshedResults: a history read once per refresh, whoever asks ----------------------


def _refreshed(clock: Clock) -> RefreshedResults[str]:
    return RefreshedResults(refresh=3600, retry=300, keep=86400, clock=clock)


def _failed(value: str) -> bool:
    return value.startswith("failed")


def test_a_refreshed_value_serves_every_reader_until_the_refresh() -> None:
    clock = Clock()
    results = _refreshed(clock)
    fetched = iter(["one", "two"])
    assert results.get("q", lambda: next(fetched), _failed) == "one"
    clock.now = 3599
    assert [results.get("q", lambda: next(fetched), _failed) for _ in range(5)] == ["one"] * 5
    clock.now = 3600
    assert results.get("q", lambda: next(fetched), _failed) == "two"
    assert results.fetches == 2


def test_a_new_key_is_fetched_at_once() -> None:
    results = _refreshed(Clock())
    assert results.get(("ns", "q1", 14), lambda: "one", _failed) == "one"
    assert results.get(("ns", "q2", 14), lambda: "two", _failed) == "two"
    assert results.get(("ns", "q1", 7), lambda: "three", _failed) == "three"


def test_a_failed_refresh_keeps_the_last_good_value_and_retries_sooner() -> None:
    clock = Clock()
    results = _refreshed(clock)
    assert results.get("q", lambda: "good", _failed) == "good"
    clock.now = 3600
    assert results.get("q", lambda: "failed: timeout", _failed) == "good"
    clock.now = 3600 + 299
    assert results.get("q", lambda: "never asked", _failed) == "good"
    clock.now = 3600 + 300  # retried after `retry`, not after a whole refresh
    assert results.get("q", lambda: "better", _failed) == "better"
    assert results.fetches == 3


def test_a_failure_with_nothing_good_before_is_returned_and_kept_until_the_retry() -> None:
    clock = Clock()
    results = _refreshed(clock)
    assert results.get("q", lambda: "failed: timeout", _failed) == "failed: timeout"
    clock.now = 299
    assert results.get("q", lambda: "never asked", _failed) == "failed: timeout"


def test_a_good_value_older_than_keep_is_no_longer_served_for_a_failure() -> None:
    clock = Clock()
    results = _refreshed(clock)
    results.get("q", lambda: "good", _failed)
    clock.now = 86400
    assert results.get("q", lambda: "failed: down", _failed) == "failed: down"


def test_keys_nobody_reads_are_dropped() -> None:
    clock = Clock()
    results = _refreshed(clock)
    results.get("deleted namespace", lambda: "old", _failed)
    clock.now = 3 * 3600
    results.get("q", lambda: "new", _failed)
    assert len(results) == 1


# -- which namespaces share one query of a shape --------------------------------------------


def _batches(clock: Clock, **bounds: int) -> NamespaceBatches:
    return NamespaceBatches(capacity=bounds.pop("capacity", 10), clock=clock, **bounds)


def test_namespaces_are_packed_in_the_order_they_first_ask() -> None:
    batches = _batches(Clock(), capacity=4)
    for ns in "abcdefghij":
        batches.batch("shape", ns, "web")
    assert batches.batches("shape") == [tuple("abcd"), tuple("efgh"), tuple("ij")]
    assert batches.batch("shape", "f", "web") == tuple("efgh")


def test_a_new_namespace_leaves_the_batches_of_the_others_as_they_were() -> None:
    batches = _batches(Clock(), capacity=2)
    for ns in "abc":
        batches.batch("shape", ns, "web")
    before = batches.batches("shape")
    batches.batch("shape", "d", "web")
    assert batches.batches("shape") == [*before[:-1], ("c", "d")]


def test_every_placement_and_every_series_counts_toward_the_bound() -> None:
    batches = _batches(Clock(), capacity=4)
    for member in ("web", "api", "db"):
        batches.batch("shape", "a", member)
    batches.batch("shape", "b", "web")
    assert batches.batches("shape") == [("a", "b")]
    batches.counted("shape", {"a": 3, "b": 2})  # b has a series no placement asks for
    assert batches.batches("shape") == [("a",), ("b",)]


def test_a_namespace_over_the_bound_on_its_own_asks_alone_until_it_is_back_under() -> None:
    batches = _batches(Clock(), capacity=4)
    for ns in "abc":
        batches.batch("shape", ns, "web")
    batches.counted("shape", {"b": 5})
    assert batches.batch("shape", "b", "web") == ("b",)
    assert batches.batch("shape", "a", "web") == ("a", "c")
    batches.counted("shape", {"b": 1})
    assert batches.batches("shape") == [("a", "b", "c")]


def test_the_regex_length_and_the_namespace_count_bound_a_batch() -> None:
    batches = _batches(Clock(), capacity=100, max_chars=12, max_namespaces=100)
    for ns in ("aaaa", "bbbb", "cccc", "dddd"):
        batches.batch("shape", ns, "web")
    assert batches.batches("shape") == [("aaaa", "bbbb"), ("cccc", "dddd")]
    batches = _batches(Clock(), capacity=100, max_namespaces=3)
    for ns in "abcdefg":
        batches.batch("shape", ns, "web")
    assert [len(b) for b in batches.batches("shape")] == [3, 3, 1]


def test_a_degraded_batch_asks_alone_for_the_hold_then_together_again() -> None:
    clock = Clock()
    batches = _batches(clock, hold=600)
    for ns in "abc":
        batches.batch("shape", ns, "web")
        batches.batch("other", ns, "web")
    batches.degraded("shape", ("a", "b", "c"))
    assert batches.batch("shape", "b", "web") == ("b",)
    assert batches.batch("other", "b", "web") == ("a", "b", "c")
    clock.now = 601
    assert batches.batch("shape", "b", "web") == ("a", "b", "c")


def test_a_slow_answer_halves_its_shapes_batches_until_they_answer_in_time() -> None:
    """A Prometheus too slow for one query of all the series is asked queries half the size,
    then a quarter, never one per namespace; the other shapes keep their batches."""
    clock = Clock()
    batches = _batches(clock, capacity=100, hold=600)
    namespaces = [f"ns{i:02d}" for i in range(20)]
    for ns in namespaces:
        for member in range(5):
            batches.batch("shape", ns, member)
            batches.batch("other", ns, member)
    assert len(batches.batches("shape")) == 1
    batches.slow("shape", tuple(namespaces))
    assert [len(b) for b in batches.batches("shape")] == [10, 10]
    batches.slow("shape", tuple(namespaces[:10]))
    assert [len(b) for b in batches.batches("shape")] == [5, 5, 5, 5]
    assert batches.batch("shape", "ns07", 0) == tuple(namespaces[5:10])
    assert len(batches.batches("other")) == 1
    clock.now = 601  # a hold without a slow answer: doubled back, one step at a time
    batches.batch("shape", "ns00", 0)
    assert [len(b) for b in batches.batches("shape")] == [10, 10]
    clock.now = 1202
    batches.batch("shape", "ns00", 0)
    assert len(batches.batches("shape")) == 1


def _halved_twice(
    clock: Clock, resized: list[str] | None = None
) -> tuple[NamespaceBatches, list[str]]:
    batches = NamespaceBatches(
        capacity=100, hold=600, clock=clock, resized=(resized if resized is not None else []).append
    )
    namespaces = [f"ns{i:02d}" for i in range(20)]
    for ns in namespaces:
        for member in range(5):
            batches.batch("shape", ns, member)
    batches.slow("shape", tuple(namespaces))
    batches.slow("shape", tuple(namespaces[:10]))
    assert [len(b) for b in batches.batches("shape")] == [5, 5, 5, 5]
    return batches, namespaces


def test_batches_answering_quickly_double_back_within_minutes_not_a_hold() -> None:
    """Slow only while the machine was busy (a bulk apply): once every batch answers in an
    eighth of the timeout, the shape doubles back a step a minute, not a step per 10 minutes
    (at 10,000 placements, 20 queries a pass for 40 minutes after the bulk, not 4)."""
    clock = Clock()
    resized: list[str] = []
    batches, _ = _halved_twice(clock, resized)
    for _ in range(4):
        batches.answered("shape", 0.05)
    clock.now = 30  # too soon: a step needs answers of the packing before it
    batches.batch("shape", "ns00", 0)
    assert len(batches.batches("shape")) == 4
    clock.now = 61
    batches.batch("shape", "ns00", 0)
    assert [len(b) for b in batches.batches("shape")] == [10, 10]
    batches.answered("shape", 0.1)  # one of the two new batches only: not yet
    clock.now = 130
    batches.batch("shape", "ns00", 0)
    assert len(batches.batches("shape")) == 2
    batches.answered("shape", 0.1)
    batches.batch("shape", "ns00", 0)
    assert len(batches.batches("shape")) == 1
    # What the operator's metrics count (placement_prometheus_batch_resizes_total).
    assert resized == ["halved", "halved", "doubled", "doubled"]


def test_batches_answering_in_fair_time_keep_their_size_until_the_hold() -> None:
    """Between an eighth and half of the timeout a shape neither halves nor grows (doubling
    would take it near the half that halves it again): it doubles back after the hold."""
    clock = Clock()
    batches, _ = _halved_twice(clock)
    for _ in range(4):
        batches.answered("shape", 0.05)
    batches.answered("shape", 0.3)
    clock.now = 300
    batches.batch("shape", "ns00", 0)
    assert len(batches.batches("shape")) == 4
    clock.now = 601
    batches.batch("shape", "ns00", 0)
    assert len(batches.batches("shape")) == 2


def test_a_shape_halved_to_one_namespace_asks_as_each_namespace_would() -> None:
    batches = _batches(Clock(), capacity=100)
    for ns in "abcd":
        for member in range(3):
            batches.batch("shape", ns, member)
    for _ in range(5):
        batches.slow("shape", batches.batches("shape")[0])
    assert batches.batches("shape") == [("a",), ("b",), ("c",), ("d",)]
    assert batches.batch("shape", "c", 0) == ("c",)


def test_namespaces_nobody_asks_for_leave_their_batch() -> None:
    clock = Clock()
    batches = _batches(clock, forget=100, hold=100)
    for ns in "abc":
        batches.batch("shape", ns, "web")
    clock.now = 60
    batches.batch("shape", "a", "web")
    batches.batch("shape", "c", "web")
    clock.now = 120
    assert batches.batch("shape", "a", "web") == ("a", "c")
