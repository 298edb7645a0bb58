"""The operator's log lines: kopf's per-tick timer lines below INFO, one structured line per
decision change."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
import yaml

from placement.adapters.kube import DeploymentState
from placement.core.api import WorkloadPlacement
from placement.core.policy import Observed, State, decide
from placement.runtime.handlers import log_decision, quiet_timer_successes

EXAMPLE = Path(__file__).parents[2] / "examples" / "nightly-enrichment.yaml"
NOW = dt.datetime(2026, 11, 24, 14, 0, tzinfo=dt.UTC)


def test_timer_successes_are_debug_lines(caplog: pytest.LogCaptureFixture) -> None:
    quiet_timer_successes()
    quiet_timer_successes()  # a second startup adds no second filter
    objects = logging.getLogger("kopf.objects")
    assert len(objects.filters) == 1
    with caplog.at_level(logging.INFO):
        objects.info("Timer 'reconcile' succeeded.")
        objects.info("Handler 'record-spec' succeeded.")  # once per new placement
        objects.info("Handler 'spec-changed' succeeded.")  # not per tick: stays INFO
    assert [r.getMessage() for r in caplog.records] == ["Handler 'spec-changed' succeeded."]
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        objects.info("Timer 'reconcile' succeeded.")
    [record] = caplog.records
    assert (record.levelname, record.getMessage()) == ("DEBUG", "Timer 'reconcile' succeeded.")


def test_a_decision_change_is_one_structured_line(caplog: pytest.LogCaptureFixture) -> None:
    spec = WorkloadPlacement.model_validate(yaml.safe_load(EXAMPLE.read_text())).spec
    decision = decide(spec, Observed(replicas=6, utilization=0.15), State(name="n"), now=NOW)
    deployment = DeploymentState(
        name=spec.target.deployment,
        replicas=6,
        original_replicas=None,
        managed_by=None,
    )
    with caplog.at_level(logging.INFO):
        log_decision(logging.getLogger("test"), decision, deployment)
    [record] = caplog.records
    assert record.getMessage() == (
        f"decision reason={decision.reason} phase={decision.phase} action={decision.action} "
        f"savingsPerDay={decision.savings_per_day} replicas=6 "
        f"desiredReplicas={decision.desired_replicas} actuate={decision.actuate}"
    )
    # JSON logs carry the same fields as an object; never posted as an Event.
    assert record.decision["reason"] == str(decision.reason)  # type: ignore[attr-defined]
    assert record.decision["savingsPerDay"] == decision.savings_per_day  # type: ignore[attr-defined]
    assert record.k8s_skip is True  # type: ignore[attr-defined]
