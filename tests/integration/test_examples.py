"""The shipped examples and the CRD at the real API server: what pydantic accepts the server
accepts, what it refuses the server refuses naming the field, and what only the operator can
check blocks the placement instead of crashing anything."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from placement.core.api import WorkloadPlacement
from placement.localenv.cluster import LocalCluster
from tests.integration.harness import Placements, placement

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_examples_pass_pydantic_and_the_api_server(
    example: Path, cluster: LocalCluster, crd: str, namespace: str
) -> None:
    WorkloadPlacement.model_validate(yaml.safe_load(example.read_text()))
    applied = cluster.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", str(example), check=False
    )
    assert applied.returncode == 0, applied.stderr


def test_the_api_server_names_the_bad_field(
    cluster: LocalCluster, crd: str, namespace: str, tmp_path: Path
) -> None:
    manifest = EXAMPLES[0].read_text().replace("retryRate: ", "retryRate: 1.5 #")
    bad = tmp_path / "bad.yaml"
    bad.write_text(manifest)
    applied = cluster.kubectl("apply", "-n", namespace, "-f", str(bad), check=False)
    assert applied.returncode != 0
    assert "spec.costs.retryRate" in applied.stderr


def test_names_that_could_not_label_the_jobs_are_refused(
    cluster: LocalCluster, crd: str, namespace: str, tmp_path: Path
) -> None:
    manifest = yaml.safe_load(EXAMPLES[0].read_text())
    for length, accepted in ((63, True), (64, False)):
        manifest["metadata"]["name"] = "n" * length
        path = tmp_path / f"name-{length}.yaml"
        path.write_text(yaml.safe_dump(manifest))
        applied = cluster.kubectl(
            "apply", "--dry-run=server", "-n", namespace, "-f", str(path), check=False
        )
        assert (applied.returncode == 0) is accepted, applied.stderr
        if not accepted:
            assert "metadata.name" in applied.stderr and "63" in applied.stderr


@pytest.mark.usefixtures("operator")
def test_an_unknown_time_zone_is_refused_at_apply_with_the_field_named(
    placements: Placements,
) -> None:
    placements.deployment("tz", 2)
    manifest = placement("tz", placements.namespace, deployment="tz")
    # Well-formed, but no IANA zone: the CRD's list of zones refuses it before the operator runs.
    manifest["spec"]["batch"]["window"]["timeZone"] = "Europe/Atlantis"
    with pytest.raises(ApiException) as refused:
        placements.apply(manifest)
    assert refused.value.status == 422
    assert "timeZone" in str(refused.value.body)
    assert not placements.exists("tz")
    assert placements.replicas("tz") == 2
