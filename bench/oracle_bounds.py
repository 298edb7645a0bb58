"""What the operator's own hold constraints cost against the oracle, per scenario.

    .venv/bin/python bench/oracle_bounds.py [--scenarios rises,falls,...] [--scenario-days 28]
        [--seed N]

The oracle (placement/replay/replay.py) may hold any interval within acceptableDelay before a
window ends whose work fits the whole window. The operator's planned holds end with their
window, start whole hours before its end (`HoldShape.step`; quarter hours and five minutes
measure what the hour's grain costs), and their work fits a margin of the window
(planning.HOLD_MARGIN, STEADY_MARGIN where the days barely vary). This computes the oracle's
saving (and mode changes) under each of those constraints, the same scenarios and placement
as bench/decision_quality.py, so a gap between the operator and the oracle can be split into
what the hold's shape costs and what the forecast costs: the operator cannot do better than
the oracle of its own shape. Only the oracle runs (seconds per scenario, no replay of the
operator). One JSON line per scenario: per shape, the saving against always-realtime and the
mode changes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from decision_quality import scenario_placement
from placement.core.planning import STEADY_MARGIN
from placement.localenv.demo import FLEET
from placement.replay.replay import ANY_HOLD, WHOLE_HOURS, HoldShape, oracle_placement
from placement.replay.scenarios import DAYS, SHAPES, scenario
from placement.replay.series import Sample, step_hours

QUARTER_HOURS = timedelta(minutes=15)

SHAPES_MEASURED: dict[str, HoldShape] = {
    "oracle": ANY_HOLD,
    "endsWithWindow": HoldShape(ends_with_window=True),
    "endsWithWindowWholeHours": HoldShape(ends_with_window=True, step=WHOLE_HOURS),
    "endsWithWindowWholeHoursMargin": HoldShape(
        ends_with_window=True, step=WHOLE_HOURS, margin=STEADY_MARGIN
    ),
    "anyEndWholeHoursMargin": HoldShape(step=WHOLE_HOURS, margin=STEADY_MARGIN),
    # Which of the hour's grain and the margin costs the mode changes and the saving.
    "anyEndWholeHours": HoldShape(step=WHOLE_HOURS),
    "anyEndQuarterHours": HoldShape(step=QUARTER_HOURS),
    "anyEndQuarterHoursMargin": HoldShape(step=QUARTER_HOURS, margin=STEADY_MARGIN),
    "anyEndQuarterHoursMargin90": HoldShape(step=QUARTER_HOURS, margin=0.9),
    "anyEndMargin": HoldShape(margin=STEADY_MARGIN),
    "anyEndMargin90": HoldShape(margin=0.9),
    # Bursty's planned holds start at the previous window's end: what choosing the start,
    # knowing where the bursts fall, is worth.
    "earliestStartMargin": HoldShape(starts_earliest=True, margin=STEADY_MARGIN),
    "earliestStart": HoldShape(starts_earliest=True),
}


def bounds(name: str, days: int, seed: int | None = None) -> dict[str, Any]:
    placement = scenario_placement()
    spec = placement.spec
    replicas, _, _ = FLEET[spec.target.deployment]
    case = (
        scenario(name, spec.batch.window, replicas=replicas, days=days)
        if seed is None
        else scenario(name, spec.batch.window, replicas=replicas, days=days, seed=seed)
    )
    samples = case.samples
    always = sum(
        s.replicas * spec.costs.realtime_replica_hourly * h
        for s, h in zip(samples, step_hours(samples), strict=True)
    )
    line: dict[str, Any] = {"scenario": name, "margin": STEADY_MARGIN}
    if seed is not None:
        line["seed"] = seed
    for label, shape in SHAPES_MEASURED.items():
        result = oracle_placement(spec, samples, shape=shape)
        line[label] = {
            "saving": round(always - result.costs.total, 2),
            "mode_changes": sum(a != b for a, b in itertools.pairwise(result.modes)),
            "held_hours": round(_held_hours(samples, result.held), 1),
        }
    return line


def _held_hours(samples: Sequence[Sample], held: Sequence[bool]) -> float:
    return sum(h for h, flag in zip(step_hours(samples), held, strict=True) if flag)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SHAPES), help="comma-separated names")
    parser.add_argument("--scenario-days", type=int, default=DAYS)
    parser.add_argument("--seed", type=int, help="another draw of the scenarios' random load")
    args = parser.parse_args(argv)
    for name in [n.strip() for n in args.scenarios.split(",") if n.strip()]:
        print(json.dumps(bounds(name, args.scenario_days, args.seed)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
