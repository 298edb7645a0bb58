"""The examples are what the quick start promises: named like their objects, in Recommend
mode, and usable in any namespace (the operator adds the namespace matcher itself)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from placement.core.api import Mode, WorkloadPlacement
from tests.unit.fake_operator import FakeOperator, ScriptedMetrics

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


def test_the_moved_to_batch_message_in_docs_design_is_what_the_operator_prints() -> None:
    """docs/design.md quotes a MovedToBatch Event; it went stale once the planned hold was
    added to the message. It is the example placement's, in Enforce, as the operator posts
    it (the fake cluster, the same reconcile and executor)."""
    manifest = yaml.safe_load((EXAMPLES[0].parent / "nightly-enrichment.yaml").read_text())
    manifest["spec"]["mode"] = "Enforce"
    op = FakeOperator(manifest=manifest, metrics=ScriptedMetrics(value=0.15))
    op.cluster.add("enricher", 6)
    op.evaluate(datetime(2026, 11, 24, 0, 30, tzinfo=UTC))  # 01:30 Europe/Berlin
    (moved,) = op.effects.events
    design = (Path(__file__).parents[2] / "docs" / "design.md").read_text()
    assert f"`{moved.reason}: {moved.message}`" in design
