"""Which queries share one grouped query, what it is, and how its result splits back."""

from __future__ import annotations

import pytest

from placement.grouping import Grouping, group_query, split


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (
            'inference_useful_utilization{namespace="a",deployment="x"}',
            Grouping("inference_useful_utilization", ("deployment", "namespace"), ("x", "a")),
        ),
        (
            'sum(rate(tokens_total{namespace="a", deployment="x"}[5m])) / 21431',
            Grouping(
                "sum by (deployment, namespace) (rate(tokens_total[5m])) / 21431",
                ("deployment", "namespace"),
                ("x", "a"),
            ),
        ),
        (
            'sum(rate(tok{namespace="inference",pod=~"enricher-.*"}[5m])) / (21431 * '
            'count(running{namespace="inference",pod=~"enricher-.*"}))',
            Grouping(
                'sum by (namespace) (rate(tok{pod=~"enricher-.*"}[5m])) / (21431 * '
                'count by (namespace) (running{pod=~"enricher-.*"}))',
                ("namespace",),
                ("inference",),
            ),
        ),
        (
            "clamp(avg_over_time(util{namespace='a',job!=\"x\"}[5m]), 0, 1)",
            Grouping('clamp(avg_over_time(util{job!="x"}[5m]), 0, 1)', ("namespace",), ("a",)),
        ),
        (
            '{__name__="util",namespace="a"}',
            Grouping('{__name__="util"}', ("namespace",), ("a",)),
        ),
    ],
)
def test_groupable_shapes(expression: str, expected: Grouping) -> None:
    assert group_query(expression) == expected


def test_placements_that_differ_only_in_their_workload_share_one_query() -> None:
    first = group_query('sum(util{namespace="a",deployment="x"})')
    second = group_query('sum( util{deployment="y", namespace="b"} )')
    assert first is not None and second is not None
    assert first.query == second.query
    assert first.values != second.values


@pytest.mark.parametrize(
    "expression",
    [
        "up",  # nothing tells placements apart
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


def test_values_with_quotes_and_backslashes_survive_the_rewrite() -> None:
    grouping = group_query(r'x{a="q\"1",path=~"a\\.b"}')
    assert grouping == Grouping(r'x{path=~"a\\.b"}', ("a",), ('q"1',))


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
