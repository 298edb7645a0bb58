"""Where the CPU of one evaluation goes, and what a placement costs in memory: the operator's
evaluation (handlers.evaluate, what each placement's kopf daemon runs) against in-memory
fakes, no control plane, no Prometheus, no kopf event loop.

    .venv/bin/python bench/evaluate.py --placements 1000 [--passes 5] [--profile 25]
    .venv/bin/python bench/evaluate.py --placements 1000 --memory   # tracemalloc per placement

N placements of bench/scale.py's four kinds, each on a Deployment of its own in a FakeCluster,
utilization from a fake Prometheus reading (a constant, sampled now). Pass 1 is the bulk
apply (every placement new: first decision, first status, first Event); the next passes are
steady ones (the clock one second on, nothing changed), as in scale.py's steady window. After
each evaluation its status patch is merged into the placement's body, as the status write's
watch event would. Prints milliseconds per evaluation for the first and the steady passes and,
with --profile, cProfile's top functions of the steady passes; with --memory, tracemalloc's
bytes per placement that stay allocated after the passes (the bodies kopf would hold, our
caches), by file.

It measures our part of an evaluation only: kopf's part (the daemon's wake-ups, the
Prometheus reads' trip to a thread and back, the watch stream's parsing, the per-object
state) needs the real operator:
bench/scale.py --profile.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import io
import logging
import math
import pstats
import statistics
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import kopf
from kopf._core.engines import posting

sys.path.insert(0, str(Path(__file__).parent))  # bench/scale.py's placements

from placement.adapters.fakecluster import FakeCluster
from placement.adapters.prometheus import _Kept, _on_grid, _RangeAnswer
from placement.adapters.telemetry import Telemetry
from placement.core.observation import DeploymentState, LoadHistory, Outcome, Reading
from placement.runtime import handlers
from scale import placement as scale_placement
from scale import workloads

START = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
UTILIZATION = 0.3  # the kinds then decide as in scale.py: recommended, wait, negative, endpoint
log = logging.getLogger("bench.evaluate")


class IndexedCluster(FakeCluster):
    """FakeCluster whose claimed_by looks at the placement's own Deployment only (every
    bench placement holds at most its own target), not at every Deployment: the real
    operator's watch cache answers it from an index, the fake's scan would make the bench
    quadratic in N."""

    def claimed_by(self, namespace: str, placement: str) -> list[DeploymentState]:
        own = self.deployments.get(placement)
        return [own] if own is not None and own.managed_by == placement else []


@dataclass
class FakePrometheus:
    """Every query answers `value`, sampled at the clock's now; histories (when asked for)
    are a range answer of each placement's own, kept as the reader keeps one until its
    refresh: every evaluation gets its history from it as the operator's would (the
    adapter's own `_RangeAnswer.history`), a daily shape on a 5-minute grid."""

    clock: Callable[[], dt.datetime]
    value: float = UTILIZATION
    history_days: float = 0.0
    histories: dict[str, _RangeAnswer] = field(default_factory=dict)

    def _reading(self, name: str, expression: str) -> Reading:
        # A value of its own per query (per placement), as each Deployment's own series: no
        # two placements share a forecast, so no memo is shared between them.
        value = self.value + (zlib.crc32(expression.encode()) % 1000) / 100_000
        return Reading(name, expression, Outcome.OK, value, sampled_at=self.clock())

    def utilization(self, expression: str, lookback: dt.timedelta, *, reader: str = "") -> Reading:
        return self._reading("utilization", expression)

    def queue_depth(self, expression: str, lookback: dt.timedelta, *, reader: str = "") -> Reading:
        return self._reading("queueDepth", expression)

    def demand(self, expression: str, lookback: dt.timedelta, *, reader: str = "") -> Reading:
        return self._reading("demand", expression)

    def requests(self, expression: str, lookback: dt.timedelta, *, reader: str = "") -> Reading:
        return self._reading("requests", expression)

    def async_queue(self, expression: str, lookback: dt.timedelta, *, reader: str = "") -> Reading:
        return self._reading("async.queue", expression)

    def history(
        self, expression: str, span: dt.timedelta, *, source: str, reader: str = ""
    ) -> LoadHistory | None:
        if self.history_days <= 0:
            return None  # as on a fresh Prometheus: the forecast falls back to the lookback
        if expression not in self.histories:
            step = 300.0
            count = int(self.history_days * 86400 / step)
            start = START.timestamp() - step * count
            day = [self.value * (0.5 + math.sin(math.pi * i / 288) ** 2) for i in range(288)]
            series = {"values": [[start + i * step, str(day[i % 288])] for i in range(count)]}
            kept = _Kept.of(_on_grid(series, start, step, count), START.timestamp() - 5 * 3600)
            self.histories[expression] = _RangeAnswer(start, step, count, START, {(): [kept]})
        return self.histories[expression].history((), source)


class _Loop:
    """kopf.event's queue hand-off, done at once (the Event is built as in the operator)."""

    def __init__(self) -> None:
        self.events = 0

    def call_soon_threadsafe(self, callback: Callable[..., None], *args: Any) -> None:
        self.events += 1


class _Queue:
    def put_nowait(self, item: object) -> None:
        pass


@dataclass
class Bench:
    n: int
    history_days: float = 0.0
    now: dt.datetime = START
    loop: _Loop = field(default_factory=_Loop)

    def __post_init__(self) -> None:
        self.cluster = IndexedCluster()
        self.metrics = FakePrometheus(lambda: self.now, history_days=self.history_days)
        self.telemetry = Telemetry()  # one, as the operator's: its metrics are per placement
        self.bodies: list[dict[str, Any]] = []
        for index, (namespace, name) in enumerate(workloads(self.n)):
            self.cluster.add(name, 2)
            self.cluster.placements.add(name)
            manifest = scale_placement(index, namespace, name, START)
            manifest["metadata"].update(uid=f"uid-{index}", generation=1, resourceVersion="1")
            self.bodies.append(manifest)
        settings = kopf.OperatorSettings()
        posting.settings_var.set(settings)
        posting.event_queue_loop_var.set(self.loop)  # type: ignore[arg-type]
        posting.event_queue_var.set(_Queue())  # type: ignore[arg-type]

    def one(self, raw: dict[str, Any]) -> None:
        body, patch = kopf.Body(cast(kopf.RawBody, raw)), kopf.Patch()
        handlers.evaluate(
            body,
            patch,
            self.cluster,
            self.metrics,
            self.now,
            log,
            telemetry=self.telemetry,
            scope_metrics=True,
        )
        status = patch.get("status")
        if status:
            # The status write's watch event: a new body with the merged status.
            merged = dict(raw.get("status") or {})
            merged.update(status)
            raw["status"] = {k: v for k, v in merged.items() if v is not None}
            version = str(int(raw["metadata"]["resourceVersion"]) + 1)
            raw["metadata"]["resourceVersion"] = version

    def run_pass(self) -> float:
        """CPU seconds of one pass (this process's: other processes on the cores do not
        count, their contention for caches does)."""
        started = time.process_time()
        for raw in self.bodies:
            self.one(raw)
        elapsed = time.process_time() - started
        self.now += dt.timedelta(seconds=1)
        return elapsed


def _ms(seconds: float, n: int) -> str:
    return f"{seconds / n * 1000:.3f} ms"


def run(args: argparse.Namespace) -> int:
    bench = Bench(args.placements, history_days=args.history_days)
    n = args.placements
    first = bench.run_pass()
    print(f"N={n}: first pass (bulk apply) {first:.2f} CPU s = {_ms(first, n)} per evaluation")
    steady: list[float] = []
    profiler = cProfile.Profile() if args.profile else None
    for _ in range(args.passes):
        if profiler is not None:
            profiler.enable()
        steady.append(bench.run_pass())
        if profiler is not None:
            profiler.disable()
    if steady:
        median = statistics.median(steady)
        print(
            f"N={n}: steady passes {', '.join(f'{s:.2f}' for s in steady)} CPU s; median "
            f"{_ms(median, n)} per evaluation (events posted in all: {bench.loop.events})"
        )
    if profiler is not None:
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.strip_dirs().sort_stats(order).print_stats(args.profile)
            print(f"-- top {args.profile} by {order} (steady passes, profiled: slower) --")
            print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))
    return 0


def memory(args: argparse.Namespace) -> int:
    """Bytes per placement still allocated after a bulk apply and steady passes."""
    n = args.placements
    gc.collect()
    tracemalloc.start(25)
    before = tracemalloc.take_snapshot()
    bench = Bench(n, history_days=args.history_days)
    created = tracemalloc.take_snapshot()
    bench.run_pass()
    for _ in range(args.passes):
        bench.run_pass()
    gc.collect()
    after = tracemalloc.take_snapshot()
    bodies = sum(s.size for s in created.compare_to(before, "filename"))
    total = sum(s.size for s in after.compare_to(before, "filename"))
    print(f"N={n}: the placements' bodies and fakes as created: {bodies / n / 1024:.1f} KB each")
    print(
        f"N={n}: after the passes: {total / n / 1024:.1f} KB per placement "
        f"({(total - bodies) / n / 1024:.1f} KB more: statuses, our caches)"
    )
    print("-- what grew during the passes, by line (KB per placement) --")
    for stat in after.compare_to(created, "lineno")[: args.profile or 15]:
        if stat.size_diff <= 0:
            continue
        frame = stat.traceback[0]
        print(f"{stat.size_diff / n / 1024:8.2f}  {frame.filename}:{frame.lineno}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--placements", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=5, help="steady passes after the first")
    parser.add_argument(
        "--profile", type=int, default=0, help="print cProfile's top K functions (0: none)"
    )
    parser.add_argument(
        "--history-days",
        type=float,
        default=0.0,
        help="days of load history each placement's forecast reads (0: none, as on a fresh "
        "Prometheus, like scale.py's)",
    )
    parser.add_argument("--memory", action="store_true", help="tracemalloc instead of timing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return memory(args) if args.memory else run(args)


if __name__ == "__main__":
    sys.exit(main())
