"""One release version from one place: pyproject.toml's, repeated by the chart and the
package, and the release workflow publishes the image and the chart under it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yaml"


def _version(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ROOT / "hack" / "version.sh"), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_chart_and_the_package_repeat_pyprojects_version() -> None:
    version = _version().stdout.strip()
    chart = yaml.safe_load((ROOT / "charts" / "placement-operator" / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == version
    checked = _version("check", f"v{version}")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == version


def test_a_tag_that_differs_from_the_version_stops_the_release() -> None:
    checked = _version("check", "v99.0.0")
    assert checked.returncode == 1
    assert "the tag v99.0.0" in checked.stderr


def test_the_workflow_publishes_the_image_and_the_chart_under_that_version() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow[True]["push"]["tags"] == ["v*.*.*"]  # YAML 1.1 reads `on` as true
    steps = workflow["jobs"]["release"]["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert 'hack/version.sh check "$GITHUB_REF_NAME"' in runs
    [image] = [s for s in steps if s.get("uses", "").startswith("docker/build-push-action")]
    assert image["with"]["file"] == "Dockerfile" and image["with"]["push"] is True
    assert image["with"]["tags"] == "${{ env.IMAGE }}:${{ steps.version.outputs.version }}"
    assert 'helm push "dist/placement-operator-$VERSION.tgz" "$CHART_REPOSITORY"' in runs
    values = yaml.safe_load((ROOT / "charts" / "placement-operator" / "values.yaml").read_text())
    # The image the chart pulls by default is the one the workflow pushes.
    assert workflow["env"]["IMAGE"] == values["image"]["repository"]
    assert workflow["env"]["CHART_REPOSITORY"].startswith("oci://")
