"""The container image, checked without a Docker engine: hadolint on the Dockerfile, its
structure, and its install steps (hack/install-wheel.sh, which the build stage runs) run into
a clean virtualenv."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _stages() -> list[list[str]]:
    """Instructions per stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_base_image_is_a_slim_python_pinned_by_version() -> None:
    [arg] = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("ARG PYTHON")]
    assert re.fullmatch(r"ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm", arg)
    assert [stage[0] for stage in _stages()] == [
        "FROM ${PYTHON_IMAGE} AS build",
        "FROM ${PYTHON_IMAGE}",
    ]


def test_the_final_stage_only_copies_the_virtualenv_and_runs_as_a_numeric_user() -> None:
    final = _stages()[-1]
    assert not [line for line in final if line.startswith(("RUN", "ADD"))], final
    assert [line for line in final if line.startswith("COPY")] == [
        "COPY --from=build /opt/venv /opt/venv"
    ]
    [user] = [line for line in final if line.startswith("USER")]
    assert re.fullmatch(r"USER [1-9]\d*:[1-9]\d*", user)
    assert final[-1] == 'ENTRYPOINT ["placement", "run"]'


def test_the_build_stage_installs_through_the_tested_script() -> None:
    build = _stages()[0]
    assert "RUN sh hack/install-wheel.sh /opt/venv" in build
    assert any("PIP_NO_CACHE_DIR=1" in line for line in build)


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in lines  # everything else (.venv, .git, tests) stays out of the context
    copied = {"pyproject.toml", "constraints.txt", "README.md", "operator/"}
    assert copied <= {line.removeprefix("!") for line in lines if line.startswith("!")}


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("image") / "venv"
    subprocess.run(
        ["sh", str(ROOT / "hack" / "install-wheel.sh"), str(venv)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return venv


def test_the_install_steps_give_a_working_operator_from_a_wheel(image_venv: Path) -> None:
    placement = image_venv / "bin" / "placement"
    version = subprocess.run(
        [str(placement), "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.strip() == "placement 0.1.0"
    crd = subprocess.run([str(placement), "crd"], capture_output=True, text=True, check=True)
    committed = ROOT / "crds" / "workloadplacements.placement.runplacement.io.yaml"
    assert crd.stdout == committed.read_text()
    # Installed from a wheel, not as an editable link to the source tree.
    [dist_info] = (image_venv / "lib").glob(
        "python3.*/site-packages/placement_operator-*.dist-info"
    )
    assert (dist_info / "WHEEL").exists()
    assert (
        not (dist_info / "direct_url.json").exists()
        or "editable" not in (dist_info / "direct_url.json").read_text()
    )
    imports = "import kopf, kubernetes, pydantic, prometheus_api_client, prometheus_client\n"
    imports += "import placement.runtime.handlers, placement.adapters.telemetry"
    subprocess.run([str(image_venv / "bin" / "python"), "-c", imports], check=True)


def test_run_without_a_prometheus_url_says_which_setting_is_missing(image_venv: Path) -> None:
    result = subprocess.run(
        [str(image_venv / "bin" / "placement"), "run"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 2
    assert "PLACEMENT_PROMETHEUS_URL" in result.stderr


def test_the_installed_tree_has_no_cache_or_build_leftovers(image_venv: Path) -> None:
    # What the final stage copies: no pip cache, no wheels, no source tree.
    assert not list(image_venv.rglob("*.whl"))
    assert not (image_venv / ".cache").exists()
    assert not list(image_venv.rglob("pyproject.toml"))
