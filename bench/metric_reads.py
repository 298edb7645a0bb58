"""What an evaluation's Prometheus reads cost the operator's process, with and without the
trip to a worker thread: N placements of one query shape in a few namespaces read their
utilization through the batched reader (shared answers, as in a steady cycle), a few
evaluations at a time in an event loop, as the operator's daemons do. The Prometheus is an
in-process table (no HTTP), so the figures are the reads' own CPU and the trip's.

    .venv/bin/python bench/metric_reads.py --placements 1000 --passes 5

Prints the process CPU (user+system, all threads) per pass for each way, interleaved so both
see the same machine: `thread` sends every read to a worker thread (the operator before
memory-only reads), `memory` tries memory on the loop first (the operator now).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import re
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

from placement.adapters import memoryonly
from placement.adapters.grouping import Series
from placement.adapters.prometheus import BatchedMetricsReader, MetricsReader

T = TypeVar("T")

LOOKBACK = timedelta(minutes=5)
SLOTS = 4  # evaluations at a time (the operator's default workers)


class TablePrometheus(MetricsReader):
    """Answers every query with one series per deployment of its namespace."""

    def __init__(self, per_namespace: int) -> None:
        super().__init__("http://prometheus.invalid", timeout=3600)
        self.per_namespace = per_namespace
        self.queries = 0

    def instant_kept(
        self, query: str, keep: Callable[[list[Series]], T], *, across: bool = False
    ) -> T:
        self.queries += 1
        namespaces = sorted(set(re.findall(r"ns-[0-9]+", query)))
        return keep(
            [
                {
                    "metric": {"namespace": namespace, "deployment": f"d-{d}"},
                    "value": [0, "0.25"],
                }
                for namespace in namespaces
                for d in range(self.per_namespace)
            ]
        )


async def one_pass(
    placements: list[tuple[str, str]],
    reader: BatchedMetricsReader,
    read: Callable[[Callable[[], Any]], Any],
) -> None:
    slots = asyncio.Semaphore(SLOTS)

    async def evaluate(namespace: str, deployment: str) -> None:
        async with slots:
            expression = f'avg(vllm_util{{namespace="{namespace}",deployment="{deployment}"}})'
            await read(
                functools.partial(
                    reader.utilization, expression, LOOKBACK, reader=f"{namespace}/{deployment}"
                )
            )

    await asyncio.gather(*(evaluate(n, d) for n, d in placements))


def cpu() -> float:
    return time.process_time()  # every thread of the process


async def run(args: argparse.Namespace) -> None:
    per_namespace = max(1, args.placements // args.namespaces)
    placements = [
        (f"ns-{n}", f"d-{d}") for n in range(args.namespaces) for d in range(per_namespace)
    ]
    threads = ThreadPoolExecutor(max_workers=SLOTS)
    loop = asyncio.get_running_loop()

    async def on_thread(read: Callable[[], Any]) -> Any:
        return await loop.run_in_executor(threads, read)

    async def memory_first(read: Callable[[], Any]) -> Any:
        answer = memoryonly.attempt(read)
        if answer is not memoryonly.GIVEN_UP:
            return answer
        return await loop.run_in_executor(threads, read)

    ways = {"thread": on_thread, "memory": memory_first}
    readers = {
        way: BatchedMetricsReader(TablePrometheus(per_namespace), max_age=60) for way in ways
    }
    spent: dict[str, list[float]] = {way: [] for way in ways}
    for way, read in ways.items():  # the first pass fetches: not measured
        await one_pass(placements, readers[way], read)
    for _ in range(args.passes):
        for way, read in ways.items():
            started = cpu()
            await one_pass(placements, readers[way], read)
            spent[way].append(cpu() - started)
    threads.shutdown()
    print(f"{len(placements)} placements, {args.namespaces} namespaces, load {os.getloadavg()}")
    for way in ways:
        median = statistics.median(spent[way])
        queries = readers[way].reader.queries  # type: ignore[attr-defined]
        print(
            f"{way:>7}: CPU {median * 1000:.0f} ms per pass "
            f"({median / len(placements) * 1e6:.0f} us per read), {queries} queries in all"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--placements", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    started = time.monotonic()
    asyncio.run(run(args))
    print(f"took {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
