"""`placement explain` on the shipped examples: the numbers in their comments are the numbers
the operator computes, and bad input names the field."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from placement.runtime.cli import build_parser, main

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
        "async-summarizer.yaml",
    }


def test_the_async_example_is_explained_as_a_recommendation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Its reason is the async decision's (AsyncRecommended; AsyncNeedsKeda where KEDA is not
    known to be installed; AsyncQueueUnavailable when explain is given no queue value); an
    operator without async says batch cannot wait that long."""
    code = main(
        [
            "explain", str(EXAMPLES / "async-summarizer.yaml"), "--replicas", "4",
            "--utilization", "0.25", "--now", NOW, "--output", "json",
        ]
    )  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["reason"] in {
        "AsyncRecommended",
        "AsyncNeedsKeda",
        "AsyncQueueUnavailable",
        "DelayNotTolerated",
    }
    assert result["actuate"] is False


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
        "missed windows                 0.00",
        "= savings                       469.95",
        "planned hold: 2026-11-24T04:00:00+00:00 -> 2026-11-25T04:00:00+00:00 (24h): forecast "
        "21.60 replica-hours, 3.78 batch pod-hours at the high quantile <= 6.40 window capacity",
    ):
        assert line in out


def test_explain_names_the_bad_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = (EXAMPLES / "nightly-enrichment.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(manifest.replace("retryRate: 0.05", "retryRate: 1.5"))
    assert main(["explain", str(bad), "--replicas", "6", "--utilization", "0.15"]) == 1
    assert "spec.costs.retryRate" in capsys.readouterr().err


def test_explain_refuses_a_python_name_the_api_server_does_not_know(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """kubectl refuses `warm_replicas` (unknown field) and other clients drop it (the
    operator then holds 6 -> 0); before, explain read it as warmReplicas and answered with
    savings of 273.15 USD/day for a spec the cluster never holds."""
    manifest = (EXAMPLES / "nightly-enrichment.yaml").read_text()
    assert "warmReplicas: 1" in manifest
    bad = tmp_path / "snake.yaml"
    bad.write_text(manifest.replace("warmReplicas: 1", "warm_replicas: 3"))
    assert main(["explain", str(bad), "--replicas", "6", "--utilization", "0.15"]) == 1
    out = capsys.readouterr()
    assert "spec.target.warm_replicas: Extra inputs are not permitted" in out.err
    assert out.out == ""


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


def _explain(*flags: str, file: Path = EXAMPLES / "nightly-enrichment.yaml") -> list[str]:
    return ["explain", str(file), "--now", NOW, *flags]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--replicas", "-3", "--utilization", "0.2"], "--replicas"),
        (["--replicas", "2.5", "--utilization", "0.2"], "--replicas"),
        (["--replicas", "4", "--utilization", "1.5"], "--utilization"),
        (["--replicas", "4", "--utilization", "-0.1"], "--utilization"),
        (["--replicas", "4", "--utilization", "nan"], "--utilization"),
        (["--replicas", "4", "--utilization", "0.2", "--queue-depth", "-1"], "--queue-depth"),
        (["--replicas", "4", "--utilization", "0.2", "-o", "xml"], "--output"),
    ],
)
def test_nonsense_numbers_are_refused_naming_the_flag(
    flags: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(_explain(*flags))
    assert exit_.value.code == 2  # a usage error
    err = capsys.readouterr()
    assert f"argument {named}" in err.err or f"argument -o/{named}" in err.err
    assert err.out == ""  # nothing computed from it


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--batch-efficiency", "0"], "--batch-efficiency"),
        (["--retry-rate", "1"], "--retry-rate"),
        (["--format", "csv"], "--format"),
    ],
)
def test_replay_refuses_nonsense_naming_the_flag(
    flags: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    series = tmp_path / "series.csv"
    series.write_text("timestamp,replicas,utilization\n")
    placement = str(EXAMPLES / "nightly-enrichment.yaml")
    with pytest.raises(SystemExit) as exit_:
        main(["replay", "--placement", placement, "--series", str(series), *flags])
    assert exit_.value.code == 2
    assert f"argument {named}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("", "is empty"),
        ("# only a comment\n", "is empty"),
        ("- a\n- b\n", "holds a YAML list"),
        ("kind: Deployment\napiVersion: apps/v1\n", "holds a Deployment"),
        ("spec: [unclosed\n", "not valid YAML"),
        (b"\x89PNG\r\n\x1a\n\x00\xff", "not a text file"),
    ],
)
def test_an_empty_or_foreign_file_is_a_runtime_error_without_traceback(
    content: str | bytes, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "wp.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert main(_explain("--replicas", "4", "--utilization", "0.2", file=path)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and says in err
    assert "Traceback" not in err


def test_a_missing_file_is_a_runtime_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent.yaml"
    assert main(_explain("--replicas", "4", "--utilization", "0.2", file=missing)) == 1
    assert "No such file or directory" in capsys.readouterr().err


def test_replay_of_an_unreadable_series_is_a_runtime_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    series = tmp_path / "series.csv"
    series.write_text("what,is,this\n1,2,3\n")
    placement = str(EXAMPLES / "nightly-enrichment.yaml")
    assert main(["replay", "--placement", placement, "--series", str(series)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


@pytest.mark.parametrize(
    ("query", "flags", "says"),
    [
        (
            'sum(inference_tokens_per_second{deployment="enricher",namespace="victim"})',
            ["--namespace", "demo"],
            'a placement may read only its own namespace, namespace="demo"',
        ),
        ('sum({__name__=~".+"})', [], "reads every series"),
        ('sum(inference_tokens_per_second{deployment="enricher"}', [], "not valid PromQL"),
    ],
)
def test_explain_refuses_a_query_the_operator_would_block(
    query: str, flags: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The operator blocks these placements (InvalidSpec) before it reads anything; explain
    said BatchRecommended for each, so a spec checked with it failed once applied."""
    manifest = yaml.safe_load((EXAMPLES / "nightly-enrichment.yaml").read_text())
    manifest["spec"]["metrics"]["utilization"] = query
    path = tmp_path / "wp.yaml"
    path.write_text(yaml.safe_dump(manifest))
    assert main(_explain("--replicas", "6", "--utilization", "0.15", *flags, file=path)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ") and "InvalidSpec" in err and "Traceback" not in err
    assert "spec.metrics.utilization" in err and says in err


def test_explain_judges_the_namespace_of_the_manifest_and_the_operator_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = yaml.safe_load((EXAMPLES / "nightly-enrichment.yaml").read_text())
    manifest["metadata"].pop("namespace", None)
    manifest["spec"]["metrics"]["utilization"] = 'sum(tokens{namespace="demo"}) / 100'
    path = tmp_path / "wp.yaml"
    path.write_text(yaml.safe_dump(manifest))
    flags = ("--replicas", "6", "--utilization", "0.15")
    assert main(_explain(*flags, "--namespace", "demo", file=path)) == 0
    assert main(_explain(*flags, "--namespace", "prod", file=path)) == 1
    capsys.readouterr()
    monkeypatch.setenv("PLACEMENT_SCOPE_METRICS_TO_NAMESPACE", "false")  # queries as written
    assert main(_explain(*flags, "--namespace", "prod", file=path)) == 0


def test_explain_namespace_fills_a_missing_one_and_never_overrides_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, --namespace prod replaced metadata.namespace demo: the queries were judged
    against a namespace the placement would never be applied in."""
    manifest = yaml.safe_load((EXAMPLES / "nightly-enrichment.yaml").read_text())
    manifest["metadata"]["namespace"] = "demo"
    path = tmp_path / "wp.yaml"
    path.write_text(yaml.safe_dump(manifest))
    flags = ("--replicas", "6", "--utilization", "0.15")
    assert main(_explain(*flags, "--namespace", "demo", file=path)) == 0
    capsys.readouterr()
    assert main(_explain(*flags, "--namespace", "prod", file=path)) == 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert "metadata.namespace is 'demo' but --namespace is 'prod'" in err


def _batch_pod(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["batch"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def test_explain_refuses_a_batch_pod_the_operator_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, explain said MovedToBatch where the operator says BatchJobRejected."""
    manifest = yaml.safe_load((EXAMPLES / "nightly-enrichment.yaml").read_text())
    manifest["spec"]["mode"] = "Enforce"
    _batch_pod(manifest)["hostNetwork"] = True
    _batch_pod(manifest)["containers"][0]["ports"] = [{"containerPort": 22, "hostPort": 22}]
    path = tmp_path / "wp.yaml"
    path.write_text(yaml.safe_dump(manifest))
    flags = ("--replicas", "6", "--utilization", "0.15")
    assert main(_explain(*flags, file=path)) == 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert "would be blocked by the operator (BatchJobRejected)" in err
    assert "spec.batch.jobTemplate.spec.template.spec.hostNetwork" in err
    assert "spec.batch.jobTemplate.spec.template.spec.containers[0].ports[0].hostPort" in err
    # As the operator is configured: a policy that allows it, allows it here too.
    monkeypatch.setenv("PLACEMENT_JOB_POD_POLICY", '{"allowHostNamespaces": true}')
    assert main(_explain(*flags, file=path)) == 0
    # Recommend: the operator creates no Job, so it checks none either.
    monkeypatch.delenv("PLACEMENT_JOB_POD_POLICY")
    manifest["spec"]["mode"] = "Recommend"
    path.write_text(yaml.safe_dump(manifest))
    assert main(_explain(*flags, file=path)) == 0


def test_explain_refuses_a_protected_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = yaml.safe_load((EXAMPLES / "nightly-enrichment.yaml").read_text())
    manifest["metadata"].pop("namespace", None)
    path = tmp_path / "wp.yaml"
    path.write_text(yaml.safe_dump(manifest))
    flags = ("--replicas", "6", "--utilization", "0.15")
    assert main(_explain(*flags, "--namespace", "kube-system", file=path)) == 1
    err = capsys.readouterr().err
    assert "would be blocked by the operator (InvalidSpec)" in err
    assert "namespace kube-system is protected" in err
    monkeypatch.setenv("PLACEMENT_PROTECTED_DEPLOYMENTS", "team-a/enricher")
    assert main(_explain(*flags, "--namespace", "team-a", file=path)) == 1
    assert "deployment/enricher in namespace team-a is protected" in capsys.readouterr().err
    assert main(_explain(*flags, "--namespace", "team-b", file=path)) == 0
    monkeypatch.setenv("PLACEMENT_PROTECTED_DEPLOYMENTS", "enricher")
    assert main(_explain(*flags, "--namespace", "team-b", file=path)) == 1
    assert "PLACEMENT_PROTECTED_DEPLOYMENTS" in capsys.readouterr().err


@pytest.mark.parametrize("seconds", ["1e300", "inf", "-1e20", "nan"])
def test_a_series_time_out_of_range_is_a_runtime_error_naming_the_row(
    seconds: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    series = tmp_path / "series.csv"
    series.write_text(f"timestamp,replicas,utilization\n0,6,0.1\n{seconds},6,0.2\n")
    placement = str(EXAMPLES / "nightly-enrichment.yaml")
    assert main(["replay", "--placement", placement, "--series", str(series)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "row 3: timestamp" in err and "Traceback" not in err


def test_a_start_out_of_range_is_a_usage_error_naming_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    placement = str(EXAMPLES / "nightly-enrichment.yaml")
    command = ["series", "from-prometheus", "--placement", placement, "--prometheus-url"]
    with pytest.raises(SystemExit) as exit_:
        main([*command, "http://127.0.0.1:1", "--start", "1e300", "--end", "0", "--output", "x"])
    assert exit_.value.code == 2
    assert "argument --start" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--start", "2026-11-24T00:00:00Z", "--end", "2026-11-23T00:00:00Z"], "--start"),
        (["--start", "2026-11-23T00:00:00Z", "--end", "2026-11-23T00:00:00Z"], "--start"),
        (["--step", "0m"], "--step"),
        (["--step", "5 minutes"], "--step"),
    ],
)
def test_a_series_range_that_cannot_be_queried_is_a_usage_error_naming_the_flag(
    flags: list[str],
    named: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An empty or reversed range, or a step of 0, is refused before any query (Prometheus
    answers 400 naming no flag), as the command line's mistake."""
    from placement.adapters.prometheus import MetricsReader

    monkeypatch.setattr(MetricsReader, "range_values", lambda *_: pytest.fail("queried"))
    placement = str(EXAMPLES / "nightly-enrichment.yaml")
    range_ = ["--start", "2026-11-23T00:00:00Z", "--end", "2026-11-23T01:00:00Z"]
    code = main(
        [
            "series", "from-prometheus", "--placement", placement,
            "--prometheus-url", "http://127.0.0.1:1", "--replicas", "6",
            *range_, *flags, "--output", str(tmp_path / "series.csv"),
        ]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {named}") and "Traceback" not in err
    assert not (tmp_path / "series.csv").exists()


def test_a_trace_series_with_a_step_of_0_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,10,20\n")
    code = main(
        [
            "series", "from-trace", str(trace), "--replicas", "2", "--capacity", "10",
            "--step", "0s", "--output", str(tmp_path / "series.csv"),
        ]
    )  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.startswith("error: --step must be longer than 0s")


def _exported_queries(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *flags: str
) -> tuple[int, list[str]]:
    """`series from-prometheus` of nightly-enrichment, Prometheus answering every range query
    with two samples: the exit code and the queries sent."""
    from placement.adapters.prometheus import MetricsReader

    sent: list[str] = []

    def range_values(self: Any, query: str, start: Any, end: Any, step: Any) -> list[Any]:
        sent.append(query)
        return [(start, 0.2), (end, 0.2)]

    monkeypatch.setattr(MetricsReader, "range_values", range_values)
    placement = str(EXAMPLES / "nightly-enrichment.yaml")
    code = main(
        [
            "series", "from-prometheus", "--placement", placement,
            "--prometheus-url", "http://127.0.0.1:1", "--replicas", "6",
            "--start", "2026-11-23T00:00:00Z", "--end", "2026-11-23T01:00:00Z",
            "--output", str(tmp_path / "series.csv"), *flags,
        ]
    )  # fmt: skip
    return code, sent


def test_series_from_prometheus_reads_the_queries_the_operator_reads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """nightly-enrichment's queries name no namespace (the operator adds its own): exported as
    written they summed every namespace's `enricher`."""
    code, sent = _exported_queries(monkeypatch, tmp_path, "--namespace", "demo")
    assert code == 0
    assert sent == [
        'sum(inference_tokens_per_second{namespace="demo",deployment="enricher"}) / '
        'sum(inference_capacity_tokens_per_second{namespace="demo",deployment="enricher"})',
        'sum(inference_queue_depth{namespace="demo",deployment="enricher"})',
    ]
    monkeypatch.setenv("PLACEMENT_SCOPE_METRICS_TO_NAMESPACE", "false")  # as written
    code, sent = _exported_queries(monkeypatch, tmp_path, "--namespace", "demo")
    assert code == 0 and 'namespace="demo"' not in sent[0]


def test_series_from_prometheus_refuses_a_query_for_another_namespace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = yaml.safe_load((EXAMPLES / "nightly-enrichment.yaml").read_text())
    manifest["spec"]["metrics"]["utilization"] = 'avg(util{namespace="other"})'
    path = tmp_path / "wp.yaml"
    path.write_text(yaml.safe_dump(manifest))
    from placement.adapters.prometheus import MetricsReader

    monkeypatch.setattr(MetricsReader, "range_values", lambda *_: pytest.fail("queried"))
    code = main(
        [
            "series", "from-prometheus", "--placement", str(path),
            "--prometheus-url", "http://127.0.0.1:1", "--replicas", "6", "--namespace", "demo",
            "--start", "2026-11-23T00:00:00Z", "--end", "2026-11-23T01:00:00Z",
            "--output", str(tmp_path / "series.csv"),
        ]
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "spec.metrics.utilization" in err and 'namespace="demo"' in err


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_explain_prints_json_and_yaml_with_the_same_content(
    output: str, capsys: pytest.CaptureFixture[str]
) -> None:
    results = []
    for form in (output, "json"):
        assert main(_explain("--replicas", "6", "--utilization", "0.15", "-o", form)) == 0
        out = capsys.readouterr().out
        results.append(yaml.safe_load(out) if form == "yaml" else json.loads(out))
    assert results[0] == results[1]
    assert results[0]["reason"] == "BatchRecommended"
    assert not results[0]["message"].startswith("BatchRecommended")  # the reason is its own field


def _all_actions(parser: argparse.ArgumentParser, path: str = "placement") -> list[tuple[str, str]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _all_actions(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            found.append((path, action.dest if action.help else f"{action.dest} (no help)"))
    return found


def test_the_history_refresh_flag_takes_a_duration(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["run", "--history-refresh", "90m"])
    assert args.history_refresh == 5400
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["run", "--history-refresh", "an hour"])
    assert exit_.value.code == 2
    assert "argument --history-refresh: invalid duration" in capsys.readouterr().err


def test_every_flag_and_argument_has_help() -> None:
    actions = _all_actions(build_parser())
    missing = [f"{path}: {dest}" for path, dest in actions if "(no help)" in dest]
    assert missing == []


def test_a_closed_pipe_ends_quietly() -> None:
    # `placement crd | head -0`: the reader is gone before the first line is written (the
    # interpreter is still starting), so the write meets a closed pipe.
    command = [sys.executable, "-m", "placement.runtime.cli", "crd"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        err = process.stderr.read().decode()
        code = process.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert code == 0


def test_run_refuses_a_log_level_it_does_not_know() -> None:
    def run(*flags: str, level: str = "") -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "placement.runtime.cli", "run", "--prometheus-url"]
        return subprocess.run(
            [*command, "http://prometheus:9090", *flags],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "PLACEMENT_LOG_LEVEL": level},
            check=False,
            timeout=60,
        )

    from_flag = run("--log-level", "chatty")
    assert from_flag.returncode == 2 and "argument --log-level" in from_flag.stderr
    from_environment = run(level="chatty")
    assert from_environment.returncode == 2
    assert "PLACEMENT_LOG_LEVEL" in from_environment.stderr
    assert "Traceback" not in from_environment.stderr


def test_an_output_that_cannot_be_written_is_a_runtime_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:16:46.6805900,396,109\n"
    )
    code = main(
        [
            "series", "from-trace", str(trace), "--replicas", "2", "--capacity", "10",
            "--step", "6h", "--output", str(tmp_path / "missing-dir" / "series.csv"),
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "cannot write" in err and "Traceback" not in err
