"""Render and lint the chart with the built helm binary (no cluster needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from placement.localenv import tools

ROOT = Path(__file__).parents[2]
CHART = ROOT / "charts" / "placement-operator"
KUBE_VERSION = tools.KUBERNETES_VERSION
PROMETHEUS_URL = "http://prometheus-operated.monitoring:9090"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(tools.binary("helm")), *args], capture_output=True, text=True, timeout=60
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def render(*values: str, release: str = "po", namespace: str = "placement-system") -> str:
    """`helm template` with `--set`/`-f` arguments as given."""
    return helm(
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        *values,
    ).stdout


def objects(manifest: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


def find(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]
