"""The placements' daemons when nothing is due: their wakeups and CPU, without a cluster.

    .venv/bin/python bench/daemon_idle.py --placements 10000 --tick 15 --window 60

N daemons (kopf's `reconcile` handler, as kopf would start it), each evaluated already and
due again in an hour (evaluationInterval is 5 minutes by default, an hour here so that none is
due in the window), in one event loop for `--window` seconds. It prints one JSON line: the
daemons' wakeups (placement_daemon_wakeups_total) and the process's CPU seconds in the window,
which is what an operator with N settled placements spends between evaluations.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from typing import Any, cast

import kopf
from kopf._cogs.aiokits.aioenums import AsyncFlagWaiter, FlagSetter

from placement.adapters.telemetry import Telemetry
from placement.runtime.config import OperatorConfig
from placement.runtime.handlers import register


def wakeups(telemetry: Telemetry) -> float:
    return sum(
        telemetry.registry.get_sample_value("placement_daemon_wakeups_total", {"found": found})
        or 0.0
        for found in ("due", "not-due")
    )


async def run(n: int, tick: float, window: float) -> dict[str, Any]:
    registry = kopf.OperatorRegistry()
    telemetry = register(
        registry,
        # The daemons are the --peering path (standalone, the scheduler: no daemon).
        OperatorConfig(prometheus_url="http://127.0.0.1:9090", tick_seconds=tick, peering="bench"),
        telemetry=Telemetry(),
    )
    (handler,) = [h for h in registry._spawning.get_all_handlers() if h.id == "reconcile"]
    daemon: Any = handler.fn
    setter: FlagSetter[Any] = FlagSetter()
    logger = logging.getLogger("bench")
    tasks: list[asyncio.Task[None]] = []
    for i in range(n):
        memo = kopf.Memo()
        memo.evaluated_generation = 1
        memo.next_evaluation = time.monotonic() + 3600
        raw = {"metadata": {"name": f"p{i}", "namespace": "bench", "generation": 1}}
        body = kopf.Body(cast(kopf.RawBody, raw))
        started = daemon(body=body, memo=memo, logger=logger, stopped=AsyncFlagWaiter(setter))
        tasks.append(asyncio.create_task(started))
    await asyncio.sleep(1.0)  # all started and asleep
    woke, cpu, at = wakeups(telemetry), time.process_time(), time.monotonic()
    await asyncio.sleep(window)
    elapsed = time.monotonic() - at
    result = {
        "placements": n,
        "tick_s": tick,
        "window_s": round(elapsed, 1),
        "wakeups_per_s": round((wakeups(telemetry) - woke) / elapsed, 1),
        "cpu_s_per_s": round((time.process_time() - cpu) / elapsed, 4),
        "load": os.getloadavg()[0],
    }
    setter.set()
    await asyncio.gather(*tasks)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--placements", type=int, default=10_000)
    parser.add_argument("--tick", type=float, default=15.0)
    parser.add_argument("--window", type=float, default=60.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.placements, args.tick, args.window))))


if __name__ == "__main__":
    main()
