"""The pure modules stay pure: `make lint` fails on a forbidden import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests import layers

ROOT = Path(__file__).resolve().parents[2]


def test_the_pure_modules_import_no_client_and_no_adapter() -> None:
    assert layers.check() == []


def test_a_forbidden_import_is_named_with_its_line() -> None:
    source = (
        "from __future__ import annotations\n"
        "import kopf\n"
        "from placement.core.policy import decide\n"
        "def later() -> None:\n"
        "    from placement.adapters.kube import KubeAdapter\n"
    )
    assert layers.violations(source, "policy.py") == [
        "policy.py:2: imports kopf, a client library",
        "policy.py:5: imports placement.adapters.kube, an adapter or runtime module",
    ]


def test_lint_fails_on_a_forbidden_import(tmp_path: Path) -> None:
    package = tmp_path / "placement"
    for path in layers.pure_modules():
        copy = package / path.relative_to(layers.PACKAGE)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(path.read_text())
    window = package / "core" / "window.py"
    window.write_text(window.read_text() + "import requests  # a pure module must not\n")
    line = window.read_text().count("\n")

    def lint(*args: str) -> subprocess.CompletedProcess[str]:
        # As `make lint` runs it.
        command = [sys.executable, "-m", "tests.layers", *args]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)

    broken = lint(str(package))
    assert broken.returncode == 1
    assert f"operator/placement/core/window.py:{line}: imports requests" in broken.stderr
    clean = lint()
    assert clean.returncode == 0, clean.stderr
