"""Bad input at the real API server: every file under tests/data/invalid/ is refused at
`kubectl apply` with the field named; the one case the API server cannot judge (a job
template over the operator's size bound through fields the CRD passes through unknown) is
blocked by the operator with InvalidSpec instead.
The models refuse the same files for the same fields (tests/unit/test_invalid_files.py)."""

from __future__ import annotations

import pytest

from placement.localenv.cluster import LocalCluster
from tests.data.invalid_files import InvalidFile, invalid_files, refused_by_api_server
from tests.integration.harness import Placements
from tests.integration.wait import until

REFUSED = refused_by_api_server()
ADMITTED = [f for f in invalid_files() if f.admitted]


@pytest.mark.parametrize("case", REFUSED, ids=[f.id for f in REFUSED])
def test_the_api_server_refuses_the_file_naming_the_field(
    cluster: LocalCluster, crd: str, namespace: str, case: InvalidFile
) -> None:
    applied = cluster.kubectl("apply", "-f", str(case.path), "-n", namespace, check=False)
    assert applied.returncode != 0, f"{case.id} was accepted: {applied.stdout}"
    assert case.expect in applied.stderr, applied.stderr
    assert case.message in applied.stderr, applied.stderr
    listed = cluster.kubectl("get", "wp", "-n", namespace, "-o", "name")
    assert listed.stdout.strip() == ""  # nothing was stored


@pytest.mark.usefixtures("operator")
@pytest.mark.parametrize("case", ADMITTED, ids=[f.id for f in ADMITTED])
def test_what_only_the_operator_can_judge_is_blocked_with_the_field_named(
    cluster: LocalCluster, placements: Placements, case: InvalidFile
) -> None:
    placements.deployment("summarizer", 2)  # the target the file names
    applied = cluster.kubectl("apply", "-f", str(case.path), "-n", placements.namespace)
    assert applied.returncode == 0
    name = case.manifest["metadata"]["name"]

    event = placements.wait_for_event(name, "InvalidSpec")
    assert event.type == "Warning"
    assert case.expect in event.message and case.message in event.message
    # The Event is posted before the status patch lands.
    until(lambda: placements.status(name).get("phase"), lambda p: p == "Blocked", what="Blocked")
    assert placements.replicas("summarizer") == 2
    assert placements.jobs(name) == []
