"""The README's quick start, run as written: its fenced blocks marked `<!-- quick-start -->`,
in order, through a shell, on a fresh local control plane (so the chart installs the CRD
itself) and the real Prometheus.

Only the Prometheus URL is replaced by the local one. The chart's operator pod runs on a kwok
node, which runs no containers, so `placement run` runs beside it as its own process with the
same settings: the commands a reader types are the ones tested, the image is not (tests/packaging).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from placement.localenv import tools
from placement.localenv.cluster import LocalCluster
from placement.localenv.operator_process import OperatorProcess, start_operator
from placement.localenv.process import log_tail
from placement.localenv.prometheus import LocalPrometheus

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
DOCUMENTED_URL = "http://prometheus-operated.monitoring:9090"
BERLIN = ZoneInfo("Europe/Berlin")  # the example's window's time zone
MARKED_BLOCK = re.compile(r"<!-- quick-start -->\n```sh\n(.*?)\n```", re.DOTALL)


def quick_start_blocks() -> list[str]:
    return MARKED_BLOCK.findall(README.read_text())


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path / "cluster", nodes=1) as cluster:
        yield cluster


def test_the_quick_start_is_five_marked_blocks_that_start_with_helm_install() -> None:
    blocks = quick_start_blocks()
    assert len(blocks) == 5
    assert blocks[0].startswith("helm install placement-operator charts/placement-operator")
    assert DOCUMENTED_URL in blocks[0]
    assert "examples/nightly-enrichment.yaml" in blocks[1]


def test_the_readmes_quick_start_runs_as_written(
    fresh_cluster: LocalCluster,
    prometheus: LocalPrometheus,
    tmp_path: Path,
) -> None:
    bin_path = os.pathsep.join(str(tools.binary(name).parent) for name in ("kubectl", "helm"))
    env = {
        "KUBECONFIG": str(fresh_cluster.kubeconfig),
        "PATH": f"{bin_path}{os.pathsep}/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),  # helm's and kubectl's caches
    }
    outputs: list[str] = []
    operator: OperatorProcess | None = None
    window_at_enforce: list[dt.datetime] = []
    try:
        for block in quick_start_blocks():
            if "Enforce" in block:
                window_at_enforce.append(dt.datetime.now(BERLIN))
            outputs.append(_run(block.replace(DOCUMENTED_URL, prometheus.url), env, operator))
            if "Enforce" in block:
                window_at_enforce.append(dt.datetime.now(BERLIN))
            if operator is None:
                # The chart's pod starts once the install created the CRD; so does its stand-in.
                operator = start_operator(
                    fresh_cluster.kubeconfig, prometheus.url, tmp_path / "operator.log"
                )
    finally:
        if operator is not None:
            operator.stop()
    install, place, decide, enforce, delete = outputs

    assert "STATUS: deployed" in install
    assert "workloadplacement.placement.runplacement.io/nightly-enrichment created" in place
    # The decision as the README shows it: every term, and nothing changed.
    assert "BatchRecommended" in decide
    assert "saves 469.95 USD/day" in decide
    assert "capacity avoided 492.00" in decide
    assert "mode Recommend: nothing changed" in decide
    # Enforce acts: down to the warm replica; deleting the placement gives the six back.
    # READY is ready/desired; the desired count is what the operator set. In the window's last
    # 1h48m (Berlin) the README says WindowTooShort instead, the six replicas kept.
    last_of_window = _last_of_window(window_at_enforce)
    if last_of_window:
        assert "WindowTooShort" in enforce, enforce
        assert re.search(r"enricher\s+\d+/6\s", enforce), enforce
    elif last_of_window is False:
        assert re.search(r"Batch\s.*MovedToBatch", enforce), enforce
        assert re.search(r"enricher\s+\d+/1\s", enforce), enforce
    assert re.search(r"enricher\s+\d+/6\s", delete), delete
    print(decide)  # `pytest -s` shows the describe output the README quotes


def _last_of_window(span: list[dt.datetime]) -> bool | None:
    """Whether the Enforce block ran in the last 1h48m of the example's window (01:00-05:00
    Europe/Berlin, 3.6 pod-hours on 2 pods: WindowTooShort); None within a few minutes of its
    edges, where either answer is right."""
    first, last = span
    slack = dt.timedelta(minutes=3)
    start = first.replace(hour=3, minute=12, second=0, microsecond=0)
    end = first.replace(hour=5, minute=0, second=0, microsecond=0)
    if start + slack <= first and last <= end - slack:
        return True
    if last < start - slack or first > end + slack:
        return False
    return None


def _run(script: str, env: dict[str, str], operator: OperatorProcess | None) -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        described = subprocess.run(
            ["kubectl", "describe", "wp", "-A"], env=env, capture_output=True, text=True
        ).stdout
        log = log_tail(operator.log_path) if operator is not None else ""
        pytest.fail(f"{script}\n{result.stdout}\n{result.stderr}\n{described}\n{log}")
    return result.stdout
