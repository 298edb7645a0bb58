"""Where a decision-quality scenario's saving and mode changes go: the operator against the oracle.

    .venv/bin/python bench/timeline.py weekdays [--decisions]

Prints, in UTC, every step at which the operator's or the oracle's mode changes (with both
cumulative savings), then per daily cycle (ending with each batch window's end) what each
saved and the gap between them; with `--decisions`, the operator's noteworthy decisions.
The replay is bench/decision_quality.py's (same placement, series and options).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from decision_quality import CAPACITY_PER_REPLICA, scenario_placement
from placement.localenv.demo import FLEET
from placement.replay.replay import ReplayOptions, ReplayResult, Step, replay
from placement.replay.scenarios import DAYS, SHAPES, scenario

_AT = "%a %m-%d %H:%M"


def run(name: str, days: int = DAYS) -> ReplayResult:
    placement = scenario_placement()
    spec = placement.spec
    replicas, _, _ = FLEET[spec.target.deployment]
    case = scenario(name, spec.batch.window, replicas=replicas, days=days)
    options = ReplayOptions(capacity_per_replica=CAPACITY_PER_REPLICA)
    return replay(spec, case.samples, name=placement.name, options=options)


def _saved(step: Step) -> tuple[float, float]:
    return step.cost_always - step.cost_operator, step.cost_always - step.cost_oracle


def changes(result: ReplayResult) -> list[str]:
    """One line per step where either mode changes (the first step included)."""
    lines = []
    before = None
    for step in result.steps:
        modes = (step.mode, step.oracle_mode)
        if modes != before:
            operator, oracle = _saved(step)
            lines.append(
                f"{step.at:{_AT}}  operator {step.mode.value:<8} oracle "
                f"{step.oracle_mode.value:<8} load {step.utilization:.2f} "
                f"{'window' if step.in_window else '      '}  saved {operator:9.2f} / {oracle:9.2f}"
            )
            before = modes
    return lines


def cycles(result: ReplayResult) -> list[str]:
    """Per cycle (from one window's end to the next), saved by each and the gap."""
    lines = []
    last: tuple[float, float] | None = None
    for before, step in zip(result.steps, result.steps[1:], strict=False):
        if not (before.in_window and not step.in_window):
            continue
        saved = _saved(step)
        if last is not None:
            operator, oracle = saved[0] - last[0], saved[1] - last[1]
            lines.append(
                f"cycle to {step.at:{_AT}}  operator {operator:8.2f}  oracle {oracle:8.2f}  "
                f"gap {oracle - operator:7.2f}"
            )
        last = saved
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("scenario", choices=list(SHAPES))
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--decisions", action="store_true", help="the noteworthy decisions too")
    args = parser.parse_args(argv)
    result = run(args.scenario, args.days)
    print(
        f"{args.scenario}: captured share {result.captured_share:.4f}, mode changes "
        f"{result.mode_changes} ({result.oracle_mode_changes}), saving "
        f"{result.operator_saving:.2f} / {result.oracle_saving:.2f}, fallbacks {result.fallbacks}"
    )
    print("\n".join(changes(result)))
    print()
    print("\n".join(cycles(result)))
    if args.decisions:
        print()
        for decision in result.decisions:
            print(f"{decision.at:{_AT}}  {decision.action} {decision.reason}: {decision.message}")
    return 0


def _quietly(run: Callable[[], int]) -> int:
    """`bench/timeline.py bursty | head`: the reader had enough, which is no error (as the
    placement CLI). stdout goes to /dev/null so the interpreter's final flush does not fail."""
    try:
        return run()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(_quietly(main))
