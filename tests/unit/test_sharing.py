"""A shared result: each reader gets it once, then the next read fetches a new one."""

from __future__ import annotations

import threading
import time

from placement.adapters.sharing import SharedResults


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
