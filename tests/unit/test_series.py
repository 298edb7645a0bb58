"""Series CSV, the trace converter, exported series and the decision-quality benchmark."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from placement.replay.series import Sample, SeriesError, format_series, join_series, parse_series
from placement.replay.traces import TokenKind, mean_tokens_per_second, parse_trace, trace_to_series

REPO = Path(__file__).parents[2]
START = datetime(2026, 11, 23, tzinfo=UTC)

# Six requests over 40 seconds of trace.
TRACE = """TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:00:00.0000000,100,20
2023-11-16 18:00:05.0000000,50,30
2023-11-16 18:00:15.5000000,400,0
2023-11-16 18:00:25.0000000,60,40
2023-11-16 18:00:39.0000000,0,10
2023-11-16 18:00:40.0000000,10,0
"""


def test_a_series_round_trips_through_csv() -> None:
    samples = [
        Sample(START, 4, 0.25),
        Sample(START + timedelta(minutes=5), 4, 0.5, queue_depth=12.0, job_outcome="failed"),
    ]
    assert parse_series(format_series(samples)) == samples


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("time,replicas\n", "lacks timestamp, utilization"),
        ("timestamp,replicas,utilization\n1,2,0.5\n", "at least two rows"),
        ("timestamp,replicas,utilization\n2,2,0.5\n1,2,0.5\n", "row 3: timestamp"),
        (
            "timestamp,replicas,utilization,job_outcome\n1,2,0.5,\n2,2,0.5,late\n",
            "row 3: job_outcome",
        ),
        ("timestamp,replicas,utilization\n1,-2,0.5\n2,2,0.5\n", "row 2: replicas -2"),
    ],
)
def test_a_bad_series_names_the_row(text: str, error: str) -> None:
    with pytest.raises(SeriesError, match=error):
        parse_series(text)


def test_unix_seconds_and_offsets_are_utc() -> None:
    samples = parse_series(
        "timestamp,replicas,utilization\n1795392000,2,0.5\n2026-11-23T02:00:00+01:00,2,0.5\n"
    )
    assert [s.at for s in samples] == [START, START + timedelta(hours=1)]


def test_a_trace_becomes_a_queue_served_at_the_stated_capacity() -> None:
    requests = parse_trace(TRACE)
    assert mean_tokens_per_second(requests, TokenKind.TOTAL) == pytest.approx(720 / 40)
    # 40 s of trace -> a day of 4 steps of 6 h: 10 s of trace each. Capacity: 2 replicas * 15
    # tokens/s * 10 s = 300 tokens a step. Arrivals per step: 200, 400, 100, 20 (the request
    # at 40 s falls in the last step: 10 + 10).
    samples = trace_to_series(
        requests, replicas=2, capacity_per_replica=15, start=START, step=timedelta(hours=6), days=2
    )
    assert [s.at for s in samples[:4]] == [START + timedelta(hours=6 * i) for i in range(4)]
    assert [s.utilization for s in samples[:4]] == pytest.approx(
        [200 / 300, 1, 200 / 300, 20 / 300], abs=1e-6
    )
    assert [s.queue_depth for s in samples[:4]] == [0, 100, 0, 0]
    # the second day repeats the first
    assert [s.utilization for s in samples[4:]] == [s.utilization for s in samples[:4]]
    assert samples[4].at == START + timedelta(days=1)


def test_generated_tokens_only() -> None:
    requests = parse_trace(TRACE)
    assert mean_tokens_per_second(requests, TokenKind.GENERATED) == pytest.approx(100 / 40)


def test_exported_series_are_joined_on_the_utilization_points() -> None:
    t = [START + timedelta(minutes=5 * i) for i in range(4)]
    samples = join_series(
        [(t[0], 0.2), (t[1], 1.3), (t[2], 0.4), (t[3], 0.5)],
        [(t[1], 3.0), (t[3], 5.0)],
        [(t[2], 7.0)],
    )
    # no replica count before t1: t0 is left out; 1.3 is clipped to 1
    assert samples == [
        Sample(t[1], 3, 1.0),
        Sample(t[2], 3, 0.4, queue_depth=7.0),
        Sample(t[3], 5, 0.5),
    ]
    assert [s.replicas for s in join_series([(t[0], 0.2)], 4)] == [4]


def test_the_cli_converts_a_trace(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text(TRACE)
    out = tmp_path / "series.csv"
    done = subprocess.run(
        [
            sys.executable, "-m", "placement.runtime.cli", "series", "from-trace", str(trace),
            "--replicas", "2", "--mean-utilization", "0.5", "--step", "6h", "--output", str(out),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "capacity 18.0 total tokens/s per replica" in done.stdout
    samples = parse_series(out.read_text())
    assert len(samples) == 4
    # capacity 2 * 18 * 10 s = 360 a step; mean arrivals 720 / 4 = 180: mean utilization 0.5
    assert sum(s.utilization for s in samples) / 4 == pytest.approx(0.5, abs=1e-6)


def test_the_benchmark_prints_one_json_line_per_trace_and_example(tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    traces.mkdir()
    (traces / "AzureLLMInferenceTrace_tiny.csv").write_text(TRACE)
    done = subprocess.run(
        [
            sys.executable, str(REPO / "bench" / "decision_quality.py"),
            "--days", "2", "--traces", str(traces), "--scenarios", "none",
        ],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    examples = sorted(p.stem for p in (REPO / "examples").glob("*.yaml"))
    assert len(lines) == len(examples)
    for line in lines:
        assert line["trace"] == "tiny"
        assert {"captured_share", "missed_windows", "fallbacks", "mode_changes"} <= set(line)
    enrichment = next(line for line in lines if line["placement"] == "nightly-enrichment")
    assert enrichment["saving_operator"] > 0
    assert enrichment["missed_windows"] == 0
