"""Reads answered from memory on the event loop: a shared answer is served without a trip to
a worker thread; anything that would ask Prometheus (or wait for a thread's lock) gives up
and leaves nothing behind, so the read run again on a thread behaves as if never tried."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from placement.adapters import memoryonly
from placement.adapters.prometheus import BatchedMetricsReader, Outcome
from placement.adapters.sharing import RefreshedResults, SharedResults
from tests.unit.test_query_scoping import FakePrometheus

LOOKBACK = timedelta(minutes=1)
UTILIZATION = 'sum(vllm_util{namespace="team",deployment="%s"})'


def _team(*deployments: str) -> FakePrometheus:
    return FakePrometheus(
        [
            ({"__name__": "vllm_util", "namespace": "team", "deployment": name}, 0.1 * (i + 1))
            for i, name in enumerate(deployments)
        ]
    )


def test_a_neighbours_shared_answer_is_read_from_memory_without_a_query() -> None:
    prometheus = _team("web", "api")
    batched = BatchedMetricsReader(prometheus, max_age=60)
    first = batched.utilization(UTILIZATION % "web", LOOKBACK, reader="team/web")
    asked = len(prometheus.queries)

    second = memoryonly.attempt(
        lambda: batched.utilization(UTILIZATION % "api", LOOKBACK, reader="team/api")
    )

    assert first.outcome is Outcome.OK
    assert second is not memoryonly.GIVEN_UP
    assert second.outcome is Outcome.OK and second.value == pytest.approx(0.2)
    assert len(prometheus.queries) == asked  # nothing asked


def test_a_read_that_needs_a_fetch_gives_up_and_asks_nothing() -> None:
    prometheus = _team("web")
    batched = BatchedMetricsReader(prometheus, max_age=60)

    tried = memoryonly.attempt(
        lambda: batched.utilization(UTILIZATION % "web", LOOKBACK, reader="team/web")
    )

    assert tried is memoryonly.GIVEN_UP
    assert prometheus.queries == []
    # The same read on a thread fetches as usual.
    assert batched.utilization(UTILIZATION % "web", LOOKBACK, reader="team/web").ok


def test_a_placement_back_for_its_next_read_gets_a_new_answer_not_its_old_one() -> None:
    prometheus = _team("web")
    batched = BatchedMetricsReader(prometheus, max_age=60)
    batched.utilization(UTILIZATION % "web", LOOKBACK, reader="team/web")
    asked = len(prometheus.queries)

    assert (
        memoryonly.attempt(
            lambda: batched.utilization(UTILIZATION % "web", LOOKBACK, reader="team/web")
        )
        is memoryonly.GIVEN_UP
    )
    batched.utilization(UTILIZATION % "web", LOOKBACK, reader="team/web")
    assert len(prometheus.queries) > asked  # a fresh answer, as without the attempt


def test_a_given_up_attempt_leaves_the_reads_it_was_served_unread() -> None:
    shared: SharedResults[str] = SharedResults(max_age=60)
    shared.get("current", "a", lambda: "now")
    fetches: list[str] = []

    def fetch(key: str, value: str) -> str:
        fetches.append(key)
        return value

    def read() -> tuple[str, str]:
        current, _ = shared.get("current", "b", lambda: fetch("current", "new"))
        later, _ = shared.get("averaged", "b", lambda: fetch("averaged", "avg"))
        return current, later

    assert memoryonly.attempt(read) is memoryonly.GIVEN_UP
    # On the thread: "current" is still b's to share (no refetch), "averaged" is fetched.
    assert read() == ("now", "avg")
    assert fetches == ["averaged"]


def test_a_key_a_worker_thread_is_fetching_is_not_waited_for() -> None:
    shared: SharedResults[str] = SharedResults(max_age=60)
    shared.get("q", "a", lambda: "value")
    fetching, release = threading.Event(), threading.Event()

    def slow_fetch() -> str:
        fetching.set()
        release.wait(10)
        return "next"

    worker = threading.Thread(target=lambda: shared.get("q", "a", slow_fetch))
    worker.start()
    try:
        assert fetching.wait(10)
        assert memoryonly.attempt(lambda: shared.get("q", "b", lambda: "x")) is (
            memoryonly.GIVEN_UP
        )
    finally:
        release.set()
        worker.join(10)


def test_a_history_due_for_refresh_gives_up_and_a_fresh_one_is_served() -> None:
    histories: RefreshedResults[str] = RefreshedResults(refresh=3600, retry=60, keep=7200)
    assert memoryonly.attempt(lambda: histories.get("h", lambda: "fetched", lambda _: False)) is (
        memoryonly.GIVEN_UP
    )
    histories.get("h", lambda: "fetched", lambda _: False)
    assert memoryonly.attempt(lambda: histories.get("h", lambda: "again", lambda _: False)) == (
        "fetched"
    )


def test_fetching_is_allowed_again_after_an_attempt() -> None:
    memoryonly.attempt(lambda: memoryonly.forbid_fetch())
    assert not memoryonly.active()
    memoryonly.forbid_fetch()  # no exception outside an attempt
