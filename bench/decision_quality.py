"""Decision quality: each public trace replayed against each example placement.

    .venv/bin/python bench/decision_quality.py [--days 7] [--plots DIR] [--traces DIR]

For every trace in bench/traces/ (Azure LLM inference, CC-BY 4.0; see its README) and every
placement in examples/, the trace becomes the load of the example's fleet (the replicas and
mean useful utilization its comments and the demo use; the capacity per replica is stated so
the trace's mean load is that utilization), its hour scaled to a day and repeated `--days`
times, and is replayed through the operator's own decide() against the oracle. One JSON line
per case: captured_share, missed_windows, fallbacks, mode_changes, and the figures behind them.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from placement.core.api import WorkloadPlacement
from placement.localenv.demo import FLEET
from placement.replay.replay import replay
from placement.replay.report import write_outputs
from placement.replay.traces import TokenKind, mean_tokens_per_second, parse_trace, trace_to_series

REPO = Path(__file__).resolve().parents[1]
TRACES = REPO / "bench" / "traces"
START = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday, after the autumn DST change
STEP = timedelta(minutes=5)


def cases(traces: Path, days: int, plots: Path | None) -> list[dict[str, object]]:
    found = sorted(traces.glob("*.csv"))
    if not found:
        raise SystemExit(f"no traces in {traces}")
    results = []
    for trace_path in found:
        requests = parse_trace(trace_path.read_text())
        mean_load = mean_tokens_per_second(requests, TokenKind.TOTAL)
        for example in sorted((REPO / "examples").glob("*.yaml")):
            placement = WorkloadPlacement.model_validate(yaml.safe_load(example.read_text()))
            replicas, utilization, _ = FLEET[placement.spec.target.deployment]
            capacity = mean_load / (replicas * utilization)
            samples = trace_to_series(
                requests,
                replicas=replicas,
                capacity_per_replica=capacity,
                start=START,
                step=STEP,
                days=days,
            )
            result = replay(placement.spec, samples, name=placement.name)
            trace = trace_path.stem.removeprefix("AzureLLMInferenceTrace_")
            if plots is not None:
                write_outputs(result, plots / f"{trace}-{placement.name}")
            results.append(
                {
                    "trace": trace,
                    "placement": placement.name,
                    "captured_share": round(result.captured_share, 4),
                    "missed_windows": result.missed_windows,
                    "fallbacks": result.fallbacks,
                    "mode_changes": result.mode_changes,
                    "oracle_mode_changes": result.oracle_mode_changes,
                    "saving_operator": round(result.operator_saving, 2),
                    "saving_oracle": round(result.oracle_saving, 2),
                    "cost_always_realtime": round(result.always.total, 2),
                    "days": days,
                    "replicas": replicas,
                    "mean_utilization": utilization,
                    "capacity_tokens_per_s": round(capacity, 1),
                }
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7, help="days each trace day is repeated")
    parser.add_argument("--traces", type=Path, default=TRACES)
    parser.add_argument("--plots", type=Path, help="write each case's summary.json and plot here")
    args = parser.parse_args(argv)
    for line in cases(args.traces, args.days, args.plots):
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
