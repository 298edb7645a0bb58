"""Every selector of a placement's PromQL is confined to the placement's namespace."""

from __future__ import annotations

import promql_parser
import pytest

from placement.tenancy import ScopeError, scope_to_namespace

FIELD = "spec.metrics.utilization"


def scoped(expression: str, namespace: str = "team-a") -> str:
    return scope_to_namespace(expression, namespace, field=FIELD)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("up", 'up{namespace="team-a"}'),
        ('up{job="x"}', 'up{namespace="team-a",job="x"}'),
        ("up{}", 'up{namespace="team-a"}'),
        ('up{job="x",}', 'up{namespace="team-a",job="x",}'),
        ('{__name__=~"vllm:.*"}', '{namespace="team-a",__name__=~"vllm:.*"}'),
        ("rate(tokens_total[5m])", 'rate(tokens_total{namespace="team-a"}[5m])'),
        ("x offset 1h", 'x{namespace="team-a"} offset 1h'),
        ("x offset -5m", 'x{namespace="team-a"} offset -5m'),
        ("x @ start()", 'x{namespace="team-a"} @ start()'),
        ("rate(x[5m] offset 1m)", 'rate(x{namespace="team-a"}[5m] offset 1m)'),
        ("max_over_time(x[5m:])", 'max_over_time(x{namespace="team-a"}[5m:])'),
        (
            "avg_over_time(rate(x[5m])[1h:5m] offset 1h)",
            'avg_over_time(rate(x{namespace="team-a"}[5m])[1h:5m] offset 1h)',
        ),
        ("rate(job:tokens:rate5m[5m])", 'rate(job:tokens:rate5m{namespace="team-a"}[5m])'),
        (
            "sum by (pod) (rate(x[5m])) / on(pod) group_left(node) y",
            'sum by (pod) (rate(x{namespace="team-a"}[5m])) / on(pod) group_left(node) '
            'y{namespace="team-a"}',
        ),
        ("sum(x) by (le)", 'sum(x{namespace="team-a"}) by (le)'),
        ("sum without (namespace) (x)", 'sum without (namespace) (x{namespace="team-a"})'),
        ("a AND on() b", 'a{namespace="team-a"} AND on() b{namespace="team-a"}'),
        (
            "a unless ignoring(x) b",
            'a{namespace="team-a"} unless ignoring(x) b{namespace="team-a"}',
        ),
        ("topk(3, x) > bool 0.5", 'topk(3, x{namespace="team-a"}) > bool 0.5'),
        ('count_values("namespace", x)', 'count_values("namespace", x{namespace="team-a"})'),
        (
            'label_replace(up, "dst", "{$1}", "src", "(.*)")',
            'label_replace(up{namespace="team-a"}, "dst", "{$1}", "src", "(.*)")',
        ),
        ('x{a="}{"} + y', 'x{namespace="team-a",a="}{"} + y{namespace="team-a"}'),
        ('x{pod=~"enricher-\\\\d+"}', 'x{namespace="team-a",pod=~"enricher-\\\\d+"}'),
        ("# the fleet\nx", '# the fleet\nx{namespace="team-a"}'),
        (
            "histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))",
            'histogram_quantile(0.9, sum by (le) (rate(h_bucket{namespace="team-a"}[5m])))',
        ),
        ("vector(0.5)", "vector(0.5)"),
        ("-x", '-x{namespace="team-a"}'),
        ('x{namespace="team-a"}', 'x{namespace="team-a"}'),
        (
            'x{namespace="team-a"} / y',
            'x{namespace="team-a"} / y{namespace="team-a"}',
        ),
    ],
)
def test_every_selector_gets_the_namespace(expression: str, expected: str) -> None:
    result = scoped(expression)
    assert result == expected
    promql_parser.parse(result)  # still valid PromQL


@pytest.mark.parametrize(
    "expression",
    [
        'x{namespace="team-b"}',
        'x{namespace=~"team-.*"}',
        'x{namespace=~"team-a"}',  # a regex, even one that matches only this namespace
        'x{namespace!="team-b"}',
        'x{namespace!~"team-b"}',
        'x{namespace=""}',
        'x / y{namespace="team-b"}',
        'sum(rate(x{namespace="team-a"}[5m])) / sum(rate(x{namespace="team-b"}[5m]))',
        'x{namespace="team-a",namespace="team-b"}',
    ],
)
def test_another_namespace_is_refused_naming_the_field(expression: str) -> None:
    with pytest.raises(ScopeError, match=r"spec\.metrics\.utilization: .*only its own namespace"):
        scoped(expression)


@pytest.mark.parametrize("expression", ["x{", "sum(", "x[5m] + ", ""])
def test_invalid_promql_is_refused_naming_the_field(expression: str) -> None:
    with pytest.raises(ScopeError, match=r"spec\.metrics\.utilization: not valid PromQL"):
        scoped(expression)


def test_the_field_named_is_the_one_given() -> None:
    with pytest.raises(ScopeError, match=r"^spec\.metrics\.queueDepth: "):
        scope_to_namespace('q{namespace="b"}', "a", field="spec.metrics.queueDepth")


def test_a_namespace_needing_no_escape_is_written_as_a_plain_string() -> None:
    assert scoped("x", "a-b.c") == 'x{namespace="a-b.c"}'


def test_the_result_is_idempotent() -> None:
    once = scoped("sum(rate(x[5m])) / count(y)")
    assert scoped(once) == once
