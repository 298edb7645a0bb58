"""`placement explain` on the shipped examples: the numbers in their comments are the numbers
the operator computes, and bad input names the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from placement.cli import main

EXAMPLES = Path(__file__).parents[2] / "examples"
NOW = "2026-11-24T14:00:00Z"


@pytest.mark.parametrize(
    ("example", "replicas", "utilization", "reason", "savings"),
    [
        ("nightly-enrichment.yaml", 6, 0.15, "BatchRecommended", 469.95),
        ("chat-endpoint.yaml", 8, 0.55, "StayRealtime", -19.22),
        ("reindex-embeddings.yaml", 2, 0.35, "SavingsNegative", -9.78),
        ("translation-backfill.yaml", 6, 0.15, "OwnerMissing", 469.95),
    ],
)
def test_examples_decide_as_their_comments_say(
    example: str,
    replicas: int,
    utilization: float,
    reason: str,
    savings: float,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "explain",
            str(EXAMPLES / example),
            "--replicas",
            str(replicas),
            "--utilization",
            str(utilization),
            "--now",
            NOW,
            "--output",
            "json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["reason"] == reason
    assert result["savingsPerDay"] == savings
    assert set(result["breakdown"]) >= {
        "capacityAvoided",
        "batchProcessing",
        "dataStaging",
        "retries",
        "operations",
    }
    assert result["actuate"] is False  # the examples ship in mode Recommend


def test_every_example_is_covered() -> None:
    assert {p.name for p in EXAMPLES.glob("*.yaml")} == {
        "nightly-enrichment.yaml",
        "chat-endpoint.yaml",
        "reindex-embeddings.yaml",
        "translation-backfill.yaml",
    }


def test_text_worksheet_shows_every_term(capsys: pytest.CaptureFixture[str]) -> None:
    main(
        [
            "explain",
            str(EXAMPLES / "nightly-enrichment.yaml"),
            "--replicas",
            "6",
            "--utilization",
            "0.15",
            "--now",
            NOW,
        ]
    )
    out = capsys.readouterr().out
    assert out.startswith("BatchRecommended: saves 469.95 USD/day")
    for line in (
        "realtime capacity avoided      492.00",
        "batch processing               5.76",
        "data staging                   4.00",
        "retries                        0.29",
        "operations                    12.00",
        "= savings                       469.95",
    ):
        assert line in out


def test_explain_names_the_bad_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = (EXAMPLES / "nightly-enrichment.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(manifest.replace("retryRate: 0.05", "retryRate: 1.5"))
    assert main(["explain", str(bad), "--replicas", "6", "--utilization", "0.15"]) == 2
    assert "spec.costs.retryRate" in capsys.readouterr().err


def test_explain_rejects_a_time_without_a_date(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(
            [
                "explain",
                str(EXAMPLES / "translation-backfill.yaml"),
                "--replicas",
                "1",
                "--utilization",
                "0.1",
                "--now",
                "half past two",
            ]
        )
    assert "--now" in capsys.readouterr().err


def test_crd_command_prints_the_committed_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd"]) == 0
    committed = EXAMPLES.parent / "crds" / "workloadplacements.placement.runplacement.io.yaml"
    assert capsys.readouterr().out == committed.read_text()
