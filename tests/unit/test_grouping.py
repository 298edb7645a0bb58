"""Which queries share one grouped query, what it is, and how its result splits back."""

from __future__ import annotations

import json
import re

import promql_parser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from placement.adapters.grouping import Grouping, Recent, group_query, split
from tests.unit.conftest import FUZZ_FACTOR


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (
            'inference_useful_utilization{namespace="a",deployment="x"}',
            Grouping('inference_useful_utilization{namespace="a"}', ("deployment",), ("x",), "a"),
        ),
        (
            'sum(rate(tokens_total{namespace="a", deployment="x"}[5m])) / 21431',
            Grouping(
                'sum by (deployment) (rate(tokens_total{namespace="a"}[5m])) / 21431',
                ("deployment",),
                ("x",),
                "a",
            ),
        ),
        (
            'sum(rate(tok{namespace="inference",pod=~"enricher-.*",app="e"}[5m])) / (21431 * '
            'count(running{namespace="inference",pod=~"enricher-.*",app="e"}))',
            Grouping(
                'sum by (app) (rate(tok{namespace="inference",pod=~"enricher-.*"}[5m])) / '
                '(21431 * count by (app) (running{namespace="inference",pod=~"enricher-.*"}))',
                ("app",),
                ("e",),
                "inference",
            ),
        ),
        (
            "clamp(avg_over_time(util{namespace='a',app='x',job!=\"x\"}[5m]), 0, 1)",
            Grouping(
                'clamp(avg_over_time(util{namespace="a",job!="x"}[5m]), 0, 1)',
                ("app",),
                ("x",),
                "a",
            ),
        ),
        (
            '{__name__="util",namespace="a",app="x"}',
            Grouping('{__name__="util",namespace="a"}', ("app",), ("x",), "a"),
        ),
    ],
)
def test_groupable_shapes(expression: str, expected: Grouping) -> None:
    assert group_query(expression) == expected


def test_placements_that_differ_only_in_their_workload_share_one_query() -> None:
    first = group_query('sum(util{namespace="a",deployment="x"})')
    second = group_query('sum( util{deployment="y", namespace="a"} )')
    assert first is not None and second is not None
    assert first.query == second.query
    assert first.values != second.values


def test_each_namespace_has_its_own_shared_query() -> None:
    first = group_query('sum(util{namespace="a",deployment="x"})')
    second = group_query('sum(util{namespace="b",deployment="x"})')
    assert first is not None and second is not None
    assert first.query == 'sum by (deployment) (util{namespace="a"})'
    assert second.query == 'sum by (deployment) (util{namespace="b"})'


@pytest.mark.parametrize(
    ("written", "decoded"),
    [
        (r"tenant-\141", "tenant-a"),
        (r"tenant-\x61", "tenant-a"),
        (r"tenant-\u0061", "tenant-a"),
        (r"tenant-\U00000061", "tenant-a"),
        (r"team-\060", "team-0"),
        (r"q\"1", 'q"1'),
    ],
)
def test_escaped_values_are_read_as_prometheus_reads_them(written: str, decoded: str) -> None:
    # The namespace is written plainly in the shared query; a key is compared decoded.
    grouping = group_query(f'sum(util{{namespace="{written}",deployment="{written}"}})')
    assert grouping is not None
    assert grouping.namespace == decoded and grouping.values == (decoded,)
    assert grouping.query == f"sum by (deployment) (util{{namespace={json.dumps(decoded)}}})"
    (selector,) = _selectors(grouping.query)
    assert [(m.name, m.value) for m in selector.matchers.matchers] == [("namespace", decoded)]


@pytest.mark.parametrize(
    "expression",
    [
        "up",  # nothing tells placements apart
        'util{namespace="a"}',
        'util{deployment="x"}',  # no namespace restriction: asked as written
        'util{namespace="a",deployment="x"} / util{namespace="b",deployment="x"}',
        'util{namespace="a",namespace="a",deployment="x"}',
        'sum(x{a="1"}) by (a)',  # an existing grouping
        'sum by (a) (x{a="1"})',
        'x{a="1"} offset 5m',
        'x{a="1"} > 0.5',  # comparisons filter
        'x{a="1"} / y{a="2"}',  # two workloads in one expression
        'x{a="1"} / y{b="1"}',
        'x{a="1"} / sum(y{a="1"})',  # a series matched against an aggregate
        'x{a="1"} / count(y)',  # an aggregate over every workload
        'label_replace(x{a="1"}, "b", "$1", "a", "(.*)")',
        'topk(1, x{a="1"})',
        'x{a="1"} and y{a="1"}',
        '{a="1"}',  # grouped, nothing would be left to select with
        'x{a="1",a="2"}',
        'x{a="1"',  # not PromQL
        'x{a="1"} @ 100',
        "",
    ],
)
def test_shapes_that_are_queried_on_their_own(expression: str) -> None:
    assert group_query(expression) is None


def test_values_with_quotes_backslashes_and_spaces_survive_the_rewrite() -> None:
    grouping = group_query(r'x{namespace="n",a="q\"1",path=~"a\\.b  c"}')
    assert grouping == Grouping(r'x{namespace="n",path=~"a\\.b  c"}', ("a",), ('q"1',), "n")


def test_split_by_key_labels_keeps_every_series_of_a_key() -> None:
    result = [
        {"metric": {"namespace": "a", "pod": "p1"}, "value": [0, "0.1"]},
        {"metric": {"namespace": "a", "pod": "p2"}, "value": [0, "0.2"]},
        {"metric": {"namespace": "b"}, "value": [0, "0.3"]},
        {"metric": {}, "value": [0, "0.4"]},
    ]
    members = split(result, ("namespace",))
    assert [s["value"] for s in members[("a",)]] == [[0, "0.1"], [0, "0.2"]]
    assert len(members[("b",)]) == 1
    assert len(members[("",)]) == 1


def _selectors(expression: str) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expression), pre_visit=visit)
    return found


# -- fuzzing: escapes in the namespace and the key labels -----------------------------------

# Characters and escapes that decode to them: octal, \x, \u, \U and plain.
_ESCAPES = {
    "a": ["a", r"\141", r"\x61", r"\u0061", r"\U00000061"],
    "0": ["0", r"\060", r"\x30", r"\u0030"],
    "-": ["-", r"\055", r"\x2d", r"\u002d"],
    '"': [r"\"", r"\042", r"\x22"],
    "\\": [r"\\", r"\134", r"\x5c"],
    "1": ["1", r"\061"],
}
_written = st.lists(
    st.sampled_from(sorted(_ESCAPES)).flatmap(
        lambda c: st.sampled_from(_ESCAPES[c]).map(lambda w: (c, w))
    ),
    min_size=1,
    max_size=6,
)
_shapes = st.sampled_from(
    [
        "sum({s})",
        "{s}",
        "avg(rate({s}[5m])) / 3",
        "sum({s}) / count({s})",
        "max_over_time({s}[10m])",
    ]
)


@settings(max_examples=settings.default.max_examples * FUZZ_FACTOR)
@given(_written, _written, _shapes)
def test_generated_escapes_group_by_their_decoded_values_or_not_at_all(
    namespace: list[tuple[str, str]], key: list[tuple[str, str]], shape: str
) -> None:
    written_ns = "".join(w for _, w in namespace)
    written_key = "".join(w for _, w in key)
    selector = f'util{{namespace="{written_ns}",deployment="{written_key}",job!="x"}}'
    expression = shape.replace("{s}", selector)
    grouping = group_query(expression)
    assert grouping is not None, expression
    decoded_ns, decoded_key = "".join(c for c, _ in namespace), "".join(c for c, _ in key)
    assert (grouping.namespace, grouping.values) == (decoded_ns, (decoded_key,))
    for shared in _selectors(grouping.query):
        namespaces = [m for m in shared.matchers.matchers if m.name == "namespace"]
        assert [(str(m.op), m.value) for m in namespaces] == [("MatchOp.Equal", decoded_ns)]
    # Across namespaces only when the namespace is a namespace name; then every selector
    # reads exactly the listed namespaces and keeps its other matchers as decoded.
    if grouping.segments:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", decoded_ns)
        for shared in _selectors(grouping.across([decoded_ns, "other-1"])):
            found = sorted((m.name, str(m.op), m.value) for m in shared.matchers.matchers)
            assert found == [
                ("job", "MatchOp.NotEqual", "x"),
                ("namespace", "MatchOp.Re", f"{decoded_ns}|other-1"),
            ]


@pytest.mark.parametrize(
    ("expression", "across"),
    [
        (
            'inference_useful_utilization{namespace="a",deployment="x"}',
            'inference_useful_utilization{namespace=~"a|b"}',
        ),
        (
            'sum(rate(tokens_total{namespace="a", deployment="x"}[5m])) / 21431',
            'sum by (deployment, namespace) (rate(tokens_total{namespace=~"a|b"}[5m])) / 21431',
        ),
        (
            'sum(rate(tok{namespace="a",pod=~"enricher-.*",app="e"}[5m])) / (21431 * '
            'count(running{namespace="a",pod=~"enricher-.*",app="e"}))',
            'sum by (app, namespace) (rate(tok{namespace=~"a|b",pod=~"enricher-.*"}[5m])) / '
            '(21431 * count by (app, namespace) (running{namespace=~"a|b",pod=~"enricher-.*"}))',
        ),
        (
            "clamp(avg_over_time(util{namespace='a',app='x',job!=\"x\"}[5m]), 0, 1)",
            'clamp(avg_over_time(util{namespace=~"a|b",job!="x"}[5m]), 0, 1)',
        ),
        (
            r'avg(util{namespace="\141",app="x",namespace!="b"})',  # unscoped: kept as written
            'avg by (app, namespace) (util{namespace=~"a|b",namespace!="b"})',
        ),
    ],
)
def test_the_query_across_namespaces_lists_them_and_groups_by_namespace(
    expression: str, across: str
) -> None:
    grouping = group_query(expression)
    assert grouping is not None
    assert grouping.across(["a", "b"]) == across
    elsewhere = group_query(expression.replace('"a"', '"b"').replace("'a'", "'b'"))
    assert elsewhere is not None and elsewhere.shape == grouping.shape


def test_only_the_namespace_differs_between_the_shapes_of_two_namespaces() -> None:
    first = group_query('sum(util{namespace="a",deployment="x"})')
    second = group_query('sum(util{namespace="b",deployment="y"})')
    third = group_query('sum(util{namespace="b",deployment="y",job="j"})')
    assert first is not None and second is not None and third is not None
    assert first.shape == second.shape != third.shape


def test_every_expression_in_use_is_parsed_once_however_many_there_are() -> None:
    # Placements ask their expressions in turn, cycle after cycle: an LRU bound below their
    # number (8,192 before) missed every time at 10,000 placements.
    parsed: list[str] = []

    def parse(key: str) -> str:
        parsed.append(key)
        return key.upper()

    remembered: Recent[str, str] = Recent(parse)
    keys = [f"e{i}" for i in range(20_000)]
    for _ in range(3):
        assert [remembered(key) for key in keys] == [key.upper() for key in keys]
    assert parsed == keys


def test_expressions_nobody_asks_for_a_period_are_forgotten() -> None:
    now = [0.0]
    parsed: list[str] = []

    def parse(key: str) -> str:
        parsed.append(key)
        return key

    remembered: Recent[str, str] = Recent(parse, period=60, clock=lambda: now[0])
    remembered("deleted placement's")
    for second in range(0, 200, 10):
        now[0] = float(second)
        remembered("live placement's")
    assert len(remembered) == 1  # gone within two periods of its last read
    remembered("deleted placement's")
    assert parsed == ["deleted placement's", "live placement's", "deleted placement's"]


def test_the_placements_of_a_namespace_keep_one_copy_of_their_shared_query() -> None:
    first = group_query('sum(rate(kept{namespace="a",deployment="x"}[5m]))')
    second = group_query('sum(rate(kept{namespace="a",deployment="y"}[5m]))')
    other = group_query('sum(rate(kept{namespace="b",deployment="y"}[5m]))')
    assert first is not None and second is not None and other is not None
    assert first.query is second.query
    assert first.segments is second.segments is other.segments
    assert first.keys is second.keys is other.keys


def test_the_query_across_a_batch_is_the_same_text_each_time_and_checks_its_names() -> None:
    grouping = group_query('sum(util{namespace="a",deployment="x"})')
    assert grouping is not None
    batch = tuple(f"ns-{i}" for i in range(200))
    assert grouping.across(batch) is grouping.across(batch)
    assert grouping.across(list(batch)) == grouping.across(batch)
    with pytest.raises(ValueError, match="not namespace names"):
        grouping.across(("a", "b|c"))
