"""A live placement's history exported from a real Prometheus (range queries) and replayed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from placement.localenv.prometheus import LocalPrometheus, write_openmetrics
from placement.replay.series import parse_series
from placement.runtime.cli import main
from tests.unit.factories import example_manifest

HOURS = 6


def _history(tmp_path: Path, start: float) -> list[Path]:
    """Six hours, one sample a minute: utilization 0.2 in the first half, 0.4 in the second;
    4 replicas (kube-state-metrics' gauge) and a queue depth."""
    labels = {"namespace": "ml", "deployment": "summarizer"}
    minutes = range(HOURS * 60 + 1)
    utilization = [(labels, start + 60 * m, 0.2 if m < HOURS * 30 else 0.4) for m in minutes]
    replicas = [(labels, start + 60 * m, 4.0) for m in minutes]
    queue = [(labels, start + 60 * m, float(m % 7)) for m in minutes]
    return [
        write_openmetrics(tmp_path / "util.om", "summarizer_useful_utilization", utilization),
        write_openmetrics(tmp_path / "replicas.om", "kube_deployment_spec_replicas", replicas),
        write_openmetrics(tmp_path / "queue.om", "summarizer_queue_depth", queue),
    ]


def _clock(moment: float) -> str:
    return time.strftime("%H:%M", time.gmtime(moment))


def _exported_start() -> float:
    """HOURS of whole minutes, ending ten minutes ago, inside Prometheus' retention."""
    return (time.time() // 60) * 60 - (HOURS * 60 + 10) * 60


def _export(
    tmp_path: Path, manifest: dict[str, Any], start: float, *options: str
) -> tuple[int, Path]:
    """`placement series from-prometheus` of `manifest` over the HOURS from `start`, against a
    Prometheus holding _history; its exit code and the series file it was to write."""
    placement = tmp_path / "placement.yaml"
    placement.write_text(yaml.safe_dump(manifest))
    series = tmp_path / "series.csv"
    with LocalPrometheus(tmp_path / "prom", backfill=_history(tmp_path, start)) as prometheus:
        code = main(
            [
                "series", "from-prometheus",
                "--placement", str(placement),
                "--prometheus-url", prometheus.url,
                "--start", str(start), "--end", str(start + HOURS * 3600),
                *options,
                "--output", str(series),
            ]
        )  # fmt: skip
    return code, series


def test_history_exported_from_prometheus_replays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start = _exported_start()
    end = start + HOURS * 3600
    manifest = example_manifest()
    spec = manifest["spec"]
    spec["metrics"] = {
        "utilization": 'max(summarizer_useful_utilization{namespace="ml"})',
        "queueDepth": 'sum(summarizer_queue_depth{namespace="ml"})',
        "lookback": "30m",
    }
    spec["evaluationInterval"] = "5m"
    # The window after the exported hours, wherever the clock stands: the replay then decides
    # the same at any time of day (a fixed 01:00-05:00 fell inside the series at night, and
    # its Job's staging and operations outweighed six hours' saving).
    spec["batch"]["window"] = {"start": _clock(end + 3600), "end": _clock(end + 5 * 3600)}
    spec["batch"]["window"]["timeZone"] = "UTC"
    placement = tmp_path / "placement.yaml"
    code, series = _export(tmp_path, manifest, start, "--step", "5m")
    assert code == 0, capsys.readouterr().err
    samples = parse_series(series.read_text())
    assert len(samples) == HOURS * 12 + 1
    assert {s.replicas for s in samples} == {4}
    assert samples[0].utilization == pytest.approx(0.2)
    assert samples[-1].utilization == pytest.approx(0.4)
    assert samples[0].at.timestamp() == start
    assert all(s.queue_depth is not None for s in samples)

    code = main(
        [
            "replay",
            "--placement", str(placement),
            "--series", str(series),
            "--output", str(tmp_path / "out"),
        ]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    # The first 30 minutes (6 samples) only fill the lookback; the other 67 are priced, 5
    # minutes each: 4 replicas * 1.025/h.
    assert summary["cost"]["alwaysRealtime"] == pytest.approx(4 * 1.025 * 67 / 12, abs=0.01)
    assert summary["decisions"][0]["reason"] == "MovedToBatch"
    assert summary["missed_windows"] == 0
    assert 0 < summary["captured_share"] <= 1.0 + 1e-9
    assert (tmp_path / "out" / "timeline.png").stat().st_size > 10_000


def test_export_larger_than_the_history_bound_is_refused_unparsed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The operator's own bound on a history answer applies to the export too: a long range (or
    # a query matching a busy Prometheus's every series) is refused before it is parsed.
    monkeypatch.setenv("PLACEMENT_PROMETHEUS_MAX_HISTORY_BYTES", "4096")
    start = _exported_start()
    manifest = example_manifest()
    manifest["spec"]["metrics"] = {
        "utilization": 'max(summarizer_useful_utilization{namespace="ml"})'
    }
    code, series = _export(tmp_path, manifest, start, "--step", "1m", "--replicas", "4")
    error = capsys.readouterr().err
    assert code != 0
    assert "larger than 4096 bytes" in error
    assert "PLACEMENT_PROMETHEUS_MAX_HISTORY_BYTES" in error
    assert not series.exists()
