"""How long one forecast takes to build from a long history (the operator builds one per
placement and evaluation; the planner reads it many times).

    .venv/bin/python bench/forecast.py [--days 35] [--repeat 50]

Prints one JSON line: the samples read, the median and slowest build in milliseconds (and
the median CPU time) from a history not seen before (learning its shape), and the median
build from the same history again (remembered until the next refresh), for a daily and
weekly shape at 5-minute steps with noise, forecast two days ahead.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from placement.core.forecast import forecast_load
from placement.core.observation import LoadHistory

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
STEP = timedelta(minutes=5)
ZONE = ZoneInfo("Europe/Berlin")


def history(days: int) -> LoadHistory:
    rng = random.Random(1)
    count = int(timedelta(days=days) / STEP)
    samples = []
    for index in range(count):
        moment = NOW - (count - index) * STEP
        local = moment.astimezone(ZONE)
        daily = 1 + 0.5 * math.sin((local.hour - 6) / 24 * 2 * math.pi)
        weekly = 0.3 if local.weekday() >= 5 else 1.0
        samples.append((moment, 0.4 * daily * weekly * rng.uniform(0.8, 1.2)))
    return LoadHistory("demand", STEP, tuple(samples), NOW)


def build_ms(past: LoadHistory) -> tuple[float, float]:
    """Wall-clock and CPU milliseconds of one forecast (CPU: what the process spent, the
    figure that holds on a busy host)."""
    started, cpu = time.perf_counter(), time.process_time()
    forecast_load(
        past, now=NOW, until=NOW + timedelta(days=2), zone=ZONE, fallback=0.4, source="demand"
    )
    return (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    past = history(args.days)
    # A fresh history object each time: learned from its samples (after a refresh).
    cold = [build_ms(replace(past)) for _ in range(args.repeat)]
    # The same object again: what each evaluation until the next refresh pays.
    warm = [build_ms(past) for _ in range(args.repeat)]
    made = forecast_load(
        past, now=NOW, until=NOW + timedelta(days=2), zone=ZONE, fallback=0.4, source="demand"
    )
    print(
        json.dumps(
            {
                "days": args.days,
                "samples": len(past.samples),
                "hours_forecast": len(made.hours),
                "learn_median_ms": round(statistics.median(wall for wall, _ in cold), 2),
                "learn_max_ms": round(max(wall for wall, _ in cold), 2),
                "learn_median_cpu_ms": round(statistics.median(cpu for _, cpu in cold), 2),
                "remembered_median_ms": round(statistics.median(wall for wall, _ in warm), 3),
                "basis": made.basis,
            }
        )
    )


if __name__ == "__main__":
    main()
