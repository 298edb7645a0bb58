"""What `placement replay` shows: the table, the JSON summary and the timeline plot.

matplotlib is imported only here, and only when a plot is drawn (the `replay` extra): the
operator never needs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from placement.core.learning import Measured
from placement.replay.replay import ReplayResult


def table(result: ReplayResult) -> str:
    """The figures as a person reads them."""
    summary = result.summary()
    series: dict[str, Any] = summary["series"]  # type: ignore[assignment]
    currency = result.currency
    lines = [
        f"replay of {result.name}: {series['days']} days, {series['samples']} samples, "
        f"{series['start']} .. {series['end']}",
        "",
        f"  {'':<18}{'cost':>12}{'saving':>12}   {currency}",
        f"  {'always realtime':<18}{result.always.total:>12.2f}{'':>12}",
        f"  {'operator':<18}{result.operator.total:>12.2f}{result.operator_saving:>12.2f}",
        f"  {'oracle':<18}{result.oracle.costs.total:>12.2f}{result.oracle_saving:>12.2f}",
        "",
        f"captured share of the oracle's saving: {result.captured_share:.1%}",
        f"missed windows {result.missed_windows}{_failed_jobs_text(result)}, "
        f"fallbacks {result.fallbacks}, "
        f"mode changes {result.mode_changes} (oracle {result.oracle_mode_changes})",
    ]
    operator = result.operator
    lines.append(
        f"operator costs: realtime {operator.realtime:.2f} + batch {operator.batch:.2f} + "
        f"staging {operator.staging:.2f} + operations {operator.operations:.2f}"
        + (f" + queue {operator.queue:.2f}" if operator.queue else "")
    )
    operator_summary: dict[str, Any] = summary["operator"]  # type: ignore[assignment]
    oracle_summary: dict[str, Any] = summary["oracle"]  # type: ignore[assignment]
    if operator_summary["asyncHours"] or oracle_summary["asyncHours"]:
        lines.append(
            f"async hours: operator {operator_summary['asyncHours']:g}, oracle "
            f"{oracle_summary['asyncHours']:g} ({oracle_summary['cyclesAsync']} cycles)"
        )
    per = result.cost_per_request()
    if per is not None:
        lines.append(
            f"cost per {per['unit']}: always realtime {per['alwaysRealtime']:.4g}, operator "
            f"{per['operator']:.4g}, oracle {per['oracle']:.4g} {currency}"
        )
    succeeded = sum(job.outcome == "Succeeded" for job in result.jobs)
    lines.append(
        f"jobs {len(result.jobs)} ({succeeded} succeeded, {len(result.jobs) - succeeded} "
        f"failed or running); work still queued at the end {result.pending_work:.2f} "
        "replica-hours (charged as batch)"
    )
    if result.learned is not None:
        for name, item, true in (
            ("batchEfficiency", result.learned.batch_efficiency, result.true_batch_efficiency),
            ("retryRate", result.learned.retry_rate, result.true_retry_rate),
        ):
            lines.append(f"{name}: {_measured_text(item)}; true in this replay {true:g}")
    return "\n".join(lines)


def _failed_jobs_text(result: ReplayResult) -> str:
    failed = result.missed_windows_failed_jobs
    return f" ({failed} in which the series failed the Jobs)" if failed else ""


def _measured_text(item: Measured) -> str:
    if item.measured is None:
        return f"declared {item.declared:g}, nothing measured"
    use = "used" if item.in_use else "not used yet"
    return f"declared {item.declared:g}, measured {item.measured:.4g} over {item.runs} runs ({use})"


def summary_json(result: ReplayResult) -> dict[str, Any]:
    """The summary plus the decisions an operator would have posted as Events."""
    summary = dict(result.summary())
    summary["decisions"] = [
        {"at": d.at.isoformat().replace("+00:00", "Z"), "reason": d.reason, "message": d.message}
        for d in result.decisions
    ]
    return summary


def write_outputs(result: ReplayResult, directory: Path) -> tuple[Path, Path]:
    """summary.json and timeline.png in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    summary_path = directory / "summary.json"
    summary_path.write_text(json.dumps(summary_json(result), indent=2) + "\n")
    plot_path = directory / "timeline.png"
    plot(result, plot_path)
    return summary_path, plot_path


def plot(result: ReplayResult, path: Path) -> None:
    """Utilization, replicas (operator and oracle holds, windows, Jobs) and cumulative cost."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = result.steps
    times = [s.at for s in steps]
    figure, (load, fleet, cost) = plt.subplots(
        3, 1, figsize=(11, 8), sharex=True, gridspec_kw={"height_ratios": [1, 1.2, 1.2]}
    )
    figure.suptitle(
        f"placement replay: {result.name}  (captured {result.captured_share:.1%} of the "
        f"oracle's saving; missed windows {result.missed_windows}, fallbacks "
        f"{result.fallbacks}, mode changes {result.mode_changes})",
        fontsize=10,
    )
    load.plot(times, [s.utilization for s in steps], lw=0.6, color="0.6", label="utilization")
    load.plot(
        times,
        [s.observed_utilization for s in steps],
        lw=1.2,
        color="tab:blue",
        label="as the operator reads it (lookback average)",
    )
    load.set_ylabel("useful utilization")
    load.set_ylim(0, 1.05)
    load.legend(loc="upper right", fontsize=8)

    _shade(fleet, times, [s.in_window for s in steps], "0.85", "batch window")
    fleet.step(
        times, [s.replicas for s in steps], where="post", color="0.5", lw=1, label="always realtime"
    )
    fleet.step(
        times,
        [s.deployment_replicas for s in steps],
        where="post",
        color="tab:blue",
        lw=1.5,
        label="operator: Deployment replicas",
    )
    top = max(s.replicas for s in steps) or 1
    fleet.fill_between(
        times,
        [top * 1.08 if s.oracle_held else 0 for s in steps],
        top * 1.02,
        where=[s.oracle_held for s in steps],
        step="post",
        color="tab:green",
        alpha=0.5,
        label="oracle holds",
    )
    fleet.fill_between(
        times,
        [top * 1.16 if s.held else 0 for s in steps],
        top * 1.10,
        where=[s.held for s in steps],
        step="post",
        color="tab:blue",
        alpha=0.5,
        label="operator holds",
    )
    _async_bands(fleet, times, steps, top)
    for job in result.jobs:
        end = job.finished_at or times[-1]
        color = {"Succeeded": "tab:green", "Failed": "tab:red"}.get(str(job.outcome), "tab:orange")
        fleet.plot(
            [job.created, end], [top * 0.5, top * 0.5], color=color, lw=4, solid_capstyle="butt"
        )
    fleet.plot([], [], color="tab:green", lw=4, label="batch Job (red: failed)")
    fleet.set_ylabel("replicas")
    fleet.set_ylim(0, top * 1.2)
    fleet.legend(loc="lower right", fontsize=7, ncol=3)

    cost.plot(times, [s.cost_always for s in steps], color="0.5", label="always realtime")
    cost.plot(times, [s.cost_operator for s in steps], color="tab:blue", label="operator")
    cost.plot(times, [s.cost_oracle for s in steps], color="tab:green", ls="--", label="oracle")
    cost.set_ylabel(f"cumulative cost ({result.currency})")
    cost.legend(loc="upper left", fontsize=8)
    cost.set_xlabel("time (UTC)")
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _async_bands(axes: Any, times: list[Any], steps: Any, top: float) -> None:
    """The hours in async, the oracle's and the operator's, beside their holds."""
    rows = ((True, 1.02, "tab:olive", "oracle"), (False, 1.10, "tab:purple", "operator"))
    for oracle, row, color, who in rows:
        flags = [(s.oracle_mode if oracle else s.mode) == "Async" for s in steps]
        if any(flags):
            axes.fill_between(
                times,
                [top * (row + 0.06) if flag else 0 for flag in flags],
                top * row,
                where=flags,
                step="post",
                color=color,
                alpha=0.5,
                label=f"{who} async",
            )


def _shade(axes: Any, times: list[Any], flags: list[bool], color: str, label: str) -> None:
    labelled = False
    start = None
    for at, flag in zip([*times, None], [*flags, False], strict=True):
        if flag and start is None:
            start = at
        elif not flag and start is not None:
            axes.axvspan(
                start, at or times[-1], color=color, lw=0, label=None if labelled else label
            )
            labelled, start = True, None
