"""docs/reference.md's generated tables are the code's: a new CRD field, Event reason, metric,
Helm value or CLI flag without `make docs` fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from placement.core.reasons import Reason

ROOT = Path(__file__).parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "reference_docs", ROOT / "hack" / "reference_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_reference_is_what_the_code_renders() -> None:
    generator = _generator()
    committed = (ROOT / "docs" / "reference.md").read_text()
    assert generator.render(committed) == committed, "docs/reference.md drifted: run `make docs`"


def test_every_event_reason_has_a_type_and_a_meaning() -> None:
    events = _generator().EVENTS
    assert set(events) == set(Reason)
    for reason, (kind, meaning) in events.items():
        assert kind in ("Normal", "Warning"), reason
        assert meaning, reason


def test_every_crd_field_and_helm_value_is_in_the_reference() -> None:
    text = (ROOT / "docs" / "reference.md").read_text()
    for field in ("`spec.costs.batchEfficiency`", "`status.decision.breakdown.retries`"):
        assert field in text
    for value in ("`prometheus.bearerToken.secretName`", "`crds.keep`", "`logLevel`"):
        assert value in text


def test_no_document_points_at_a_design_file_outside_the_repository() -> None:
    for path in [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("examples/*.yaml")]:
        assert "DESIGN.md" not in path.read_text(), path
    assert (ROOT / "docs" / "design.md").is_file()
