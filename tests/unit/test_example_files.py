"""The examples are what the quick start promises: named like their objects, in Recommend
mode, and usable in any namespace (the operator adds the namespace matcher itself)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from placement.core.api import Mode, WorkloadPlacement

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_each_example_is_named_like_its_file_recommends_and_names_no_namespace(
    example: Path,
) -> None:
    manifest = yaml.safe_load(example.read_text())
    placement = WorkloadPlacement.model_validate(manifest)
    assert manifest["metadata"]["name"] == example.stem
    assert "namespace" not in manifest["metadata"]
    assert placement.spec.mode is Mode.RECOMMEND
    queries = [placement.spec.metrics.utilization, placement.spec.metrics.queue_depth or ""]
    assert not [query for query in queries if "namespace" in query]
