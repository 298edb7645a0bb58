"""What the batched reader's shared answers hold at N placements of bench/scale.py's shapes
(a utilization query each, a queue query every fourth, 50 placements a namespace): the
placements read through `BatchedMetricsReader` on 4 threads (the operator's reader threads),
against Prometheus's JSON bodies served in process (no HTTP, no cluster). After the batches
are packed, two passes are traced (tracemalloc): what the second leaves (its shared answers,
the steady RSS's share) and its peak (the answers being decoded beside the last pass's).

    .venv/bin/python bench/shared_answers.py --placements 10000 [--output FILE]

Uses only the readers' own interfaces and the HTTP session's `request`: it runs on the tree
before the shared answers were compacted (docs/scaling.md, stop 23) as on the tree after.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from placement.adapters.prometheus import BatchedMetricsReader, MetricsReader
from placement.core.tenancy import scope_to_namespace

PER_NAMESPACE = 50  # bench/scale.py's PLACEMENTS_PER_NAMESPACE
LOOKBACK = timedelta(minutes=5)
THREADS = 4  # the operator's Prometheus reader threads (PLACEMENT_WORKERS)

Work = tuple[str, str, bool]  # (namespace, deployment, whether it reads a queue)


def workloads(n: int) -> list[Work]:
    return [(f"bench-{i // PER_NAMESPACE:03d}", f"model-{i:04d}", i % 4 == 0) for i in range(n)]


class _Response:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.status_code = 200
        self.headers: dict[str, str] = {}

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        for start in range(0, len(self.body), chunk_size):
            yield self.body[start : start + chunk_size]


def prometheus(work: list[Work]) -> Any:
    """The session's `request`: an instant vector of the queried namespaces' series, every
    sample stamped with the one evaluation time, as Prometheus answers."""

    def request(method: str, url: str, params: dict[str, str], **_: Any) -> _Response:
        query = params["query"]
        namespaces = set(re.findall(r'namespace=~?"([^"]*)"', query)[0].split("|"))
        deployments = set(re.findall(r'deployment="([^"]*)"', query))
        queue = "queue" in query
        now = time.time()
        result = [
            {
                "metric": {"deployment": deployment, "namespace": namespace},
                "value": [now, str(round(0.08 + (index * 37 % 100) / 1000, 3))],
            }
            for index, (namespace, deployment, queued) in enumerate(work)
            if namespace in namespaces
            and (queued or not queue)
            and (not deployments or deployment in deployments)
        ]
        data = {"resultType": "vector", "result": result}
        return _Response(json.dumps({"status": "success", "data": data}).encode())

    return request


def measure(n: int) -> dict[str, Any]:
    work = workloads(n)
    reader = MetricsReader("http://prometheus.invalid", timeout=3600)
    reader._client._session.request = prometheus(work)
    batched = BatchedMetricsReader(reader, max_age=3600)
    expressions = {
        (ns, deployment): (
            scope_to_namespace(
                f'avg(inference_useful_utilization{{namespace="{ns}", deployment="{deployment}"}})',
                ns,
                field="spec.metrics.utilization",
            ),
            scope_to_namespace(
                f'sum(inference_queue_depth{{namespace="{ns}", deployment="{deployment}"}})',
                ns,
                field="spec.metrics.queueDepth",
            )
            if queued
            else None,
        )
        for ns, deployment, queued in work
    }

    def read(item: Work) -> None:
        ns, deployment, _ = item
        utilization, queue = expressions[(ns, deployment)]
        reader_name = f"{ns}/{deployment}"
        readings = [batched.utilization(utilization, LOOKBACK, reader=reader_name)]
        if queue is not None:
            readings.append(batched.queue_depth(queue, LOOKBACK, reader=reader_name))
        assert all(reading.ok for reading in readings), readings

    with ThreadPoolExecutor(THREADS) as pool:

        def one_pass() -> None:
            list(pool.map(read, work, chunksize=16))

        for _ in range(2):
            one_pass()  # every namespace has asked: the batches are packed
        tracemalloc.start()
        try:
            one_pass()  # traced: its answers are alive when the next pass fetches anew
            tracemalloc.reset_peak()
            started = time.process_time()
            one_pass()
            cpu = time.process_time() - started
            kept, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return {
        "placements": n,
        "bench": "shared_answers",
        "kept_mib": round(kept / 2**20, 1),
        "kept_bytes_per_placement": round(kept / n),
        "pass_peak_mib": round(peak / 2**20, 1),
        "pass_cpu_s_traced": round(cpu, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--placements", type=int, default=2000)
    parser.add_argument("--output", help="append the result line (JSON) to this file")
    args = parser.parse_args()
    line = measure(args.placements)
    print(json.dumps(line))
    if args.output:
        with open(args.output, "a") as out:
            out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
