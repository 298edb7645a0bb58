"""Every selector of a placement's PromQL is confined to the placement's namespace."""

from __future__ import annotations

import re

import promql_parser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from placement.core.api import WorkloadPlacementSpec
from placement.core.tenancy import ScopeError, refuse_unbounded, scope_to_namespace, scoped_spec
from tests.unit.conftest import FUZZ_FACTOR
from tests.unit.factories import make_spec

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
        ('a unless {job="x"}', 'a{namespace="team-a"} unless {namespace="team-a",job="x"}'),
        ('a > bool{job="x"}', 'a{namespace="team-a"} > bool{namespace="team-a",job="x"}'),
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


# -- fuzzing: generated expressions ---------------------------------------------------------

# Values with quotes, braces, backslashes and comment signs; regexes must stay valid ones.
label_values = st.text(alphabet='ab"\\{}[],=~!.*# \n', max_size=6)
regexes = st.text(alphabet="ab.*|{}", max_size=6).filter(lambda r: "{" not in r and "}" not in r)
matchers = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(["job", "pod", "namespace"]), st.sampled_from(["=", "!="]), label_values
        ),
        st.tuples(
            st.sampled_from(["job", "pod", "namespace", "__name__"]),
            st.sampled_from(["=~", "!~"]),
            regexes,
        ),
    ),
    max_size=3,
)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


modifiers = st.sampled_from(["", " offset 5m", " @ start()"])


@st.composite
def bare_selectors(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(["up", "job:tokens:rate5m", "sum_total", ""]))
    pairs = [p for p in draw(matchers) if name == "" or p[0] != "__name__"]
    if not name and not any(op in ("=", "=~") and v for _, op, v in pairs):
        name = "up"  # a selector needs a name or a non-empty matcher
    body = ",".join(f"{label}{op}{_quoted(value)}" for label, op, value in pairs)
    return f"{name}{{{body}}}" if pairs or draw(st.booleans()) else name


selectors = st.builds(lambda s, m: s + m, bare_selectors(), modifiers)
expressions = st.recursive(
    selectors,
    lambda inner: st.one_of(
        st.builds(lambda s, m: f"rate({s}[5m]{m})", bare_selectors(), modifiers),
        st.builds(lambda e: f"max_over_time(({e})[10m:])", inner),
        st.builds(lambda e: f"sum by (pod) ({e})", inner),
        st.builds(lambda e: f"sum({e}) without (job)", inner),
        st.builds(lambda a, b: f"{a} / on(pod) {b}", inner, inner),
        st.builds(lambda a, b: f"{a} unless {b}", inner, inner),
        st.builds(lambda e: f'label_replace({e}, "x", "{{$1}}", "pod", "(.*)")', inner),
        st.builds(lambda e: f"# note {{x}}\n-{e}", inner),
    ),
    max_leaves=5,
)


def _selectors(expression: str) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expression), pre_visit=visit)
    return found


@settings(max_examples=settings.default.max_examples * FUZZ_FACTOR)
@given(expressions)
def test_generated_expressions_are_scoped_or_refused_never_widened(expression: str) -> None:
    try:
        result = scoped(expression)
    except ScopeError as error:
        assert str(error).startswith(f"{FIELD}: ")
        return
    for selector in _selectors(result):
        namespaces = [m for m in selector.matchers.matchers if m.name == "namespace"]
        assert [(str(m.op), m.value) for m in namespaces] == [("MatchOp.Equal", "team-a")]


# -- written escapes and unbounded selectors ------------------------------------------------


@pytest.mark.parametrize(
    "written", [r"team-\141", r"team-\x61", r"team-\u0061", r"team-\U00000061", "team-a"]
)
def test_the_own_namespace_is_sent_written_plainly(written: str) -> None:
    # Prometheus then reads exactly the namespace the check read, whatever the escapes.
    result = scoped(f'sum(x{{namespace="{written}",job="j"}}) / y')
    assert result == 'sum(x{namespace="team-a",job="j"}) / y{namespace="team-a"}'


@pytest.mark.parametrize(
    "written", [r"tenant-\141", r"tenant-\x61", r"tenant-\u0061", r"tenant-\U00000061"]
)
def test_an_escape_that_names_another_namespace_is_refused(written: str) -> None:
    # `tenant-\141` is tenant-a: from team-a it names another namespace.
    with pytest.raises(ScopeError, match="only its own namespace"):
        scoped(f'x{{namespace="{written}"}}')


@pytest.mark.parametrize(
    "expression",
    [
        '{__name__=~".+"}',
        '{__name__=~".*",namespace="team-a"}',  # with the namespace, Prometheus would run it
        '{job=~".*",namespace="team-a"}',
        '{job=~".+"}',
        '{job="",namespace="team-a"}',  # every series without a job
        '{job!="x",namespace="team-a"}',
        '{job!~"x.*",namespace="team-a"}',
        '{namespace="team-a"}',  # the namespace alone still reads all of it
        '{__name__=~"a*",namespace="team-a"}',  # the literal is optional
        '{__name__=~"a?b.*"}',
        '{__name__=~"vllm.*|.+"}',  # one alternative is open
        '{__name__=~"(vllm|.+)"}',
        '{__name__=~"[a-z_]+"}',
        '{__name__=~"\\\\w+"}',
        '{__name__=~"[]|.*]|.+"}',
        '{__name__=~"a[^]]|.+"}',
        'sum(rate({job=~".+"}[5m])) / sum(up)',
    ],
)
def test_a_selector_that_reads_every_series_is_refused_naming_the_field(
    expression: str,
) -> None:
    with pytest.raises(ScopeError, match=r"^spec\.metrics\.utilization: selector .* names no"):
        refuse_unbounded(expression, field=FIELD)


@pytest.mark.parametrize(
    "expression",
    [
        "up",
        'up{job=~".*"}',  # the metric name bounds it
        '{__name__="up"}',
        '{__name__=~"vllm:.*"}',
        '{__name__=~"util|up"}',
        '{__name__=~"\\\\.hidden.*"}',
        '{__name__=~"a+.*"}',
        '{job="x"}',
        '{pod=~"enricher-.*",job!="x"}',
        'a unless {job="x"}',
    ],
)
def test_a_selector_with_a_name_or_a_narrowing_matcher_is_accepted(expression: str) -> None:
    refuse_unbounded(expression, field=FIELD)


def test_scoped_spec_refuses_an_unbounded_queue_depth_even_unscoped() -> None:
    spec = make_spec()
    spec = spec.model_copy(
        update={"metrics": spec.metrics.model_copy(update={"queue_depth": '{__name__=~".+"}'})}
    )
    for namespace in ("team-a", None):
        with pytest.raises(ScopeError, match=r"^spec\.metrics\.queueDepth: "):
            scoped_spec(spec, namespace)


def test_a_selector_matching_only_empty_values_is_refused_as_prometheus_refuses_it() -> None:
    # `{job=~".*"}` alone is invalid PromQL; with the namespace added it would run.
    with pytest.raises(ScopeError, match=r"^spec\.metrics\.utilization: not valid PromQL"):
        refuse_unbounded('{job=~".*"}', field=FIELD)


# -- every query of the spec: demand, requests and async.queue as utilization -------------

NEW_FIELDS = [
    ("metrics.demand", "spec.metrics.demand"),
    ("metrics.requests", "spec.metrics.requests"),
    ("async.queue", "spec.async.queue"),
]


def _spec_with(path: str, expression: str) -> WorkloadPlacementSpec:
    return make_spec(**{path: expression})


def _query(spec: WorkloadPlacementSpec, path: str) -> str | None:
    if path == "async.queue":
        return spec.async_.queue if spec.async_ else None
    query: str | None = getattr(spec.metrics, path.split(".")[1])
    return query


@pytest.mark.parametrize(("path", "field"), NEW_FIELDS)
def test_every_new_query_is_confined_to_the_placements_namespace(path: str, field: str) -> None:
    spec = scoped_spec(_spec_with(path, "sum(rate(tokens_total[5m]))"), "team-a")
    assert _query(spec, path) == 'sum(rate(tokens_total{namespace="team-a"}[5m]))'
    # The others are scoped as before.
    assert spec.metrics.utilization == (
        'avg_over_time(summarizer:useful_utilization{namespace="team-a"}[1h])'
    )


@pytest.mark.parametrize(("path", "field"), NEW_FIELDS)
@pytest.mark.parametrize(
    "selector",
    [
        'tokens_total{namespace="team-b"}',
        'tokens_total{namespace=~"team-.*"}',
        'tokens_total{namespace=~"team-a|team-b"}',
        'tokens_total{namespace!="team-a"}',
        'tokens_total{namespace="team-\\142"}',  # team-b, written with an escape
        'tokens_total{namespace="team-\\u0062"}',
        'tokens_total{namespace="team-a"} or tokens_total{namespace="team-b"}',
    ],
)
def test_a_new_query_reading_another_namespace_is_refused_naming_its_field(
    path: str, field: str, selector: str
) -> None:
    spec = _spec_with(path, f"sum({selector})")
    with pytest.raises(ScopeError, match=rf"^{re.escape(field)}: "):
        scoped_spec(spec, "team-a")


@pytest.mark.parametrize(("path", "field"), NEW_FIELDS)
@pytest.mark.parametrize("written", ["team-\\141", "team-\\x61", "team-\\u0061"])
def test_an_escaped_own_namespace_in_a_new_query_is_sent_written_plainly(
    path: str, field: str, written: str
) -> None:
    spec = scoped_spec(_spec_with(path, f'sum(tokens_total{{namespace="{written}"}})'), "team-a")
    assert _query(spec, path) == 'sum(tokens_total{namespace="team-a"})'


@pytest.mark.parametrize(("path", "field"), NEW_FIELDS)
def test_a_new_query_reading_every_series_is_refused_even_unscoped(path: str, field: str) -> None:
    spec = _spec_with(path, 'sum({__name__=~".+"})')
    for namespace in ("team-a", None):
        with pytest.raises(ScopeError, match=rf"^{re.escape(field)}: selector .* names no"):
            scoped_spec(spec, namespace)


def test_without_scoping_the_new_queries_are_left_as_written() -> None:
    spec = make_spec(
        **{"metrics.demand": "sum(a)", "metrics.requests": "sum(b)", "async.queue": "sum(c)"}
    )
    unscoped = scoped_spec(spec, None)
    assert (unscoped.metrics.demand, unscoped.metrics.requests) == ("sum(a)", "sum(b)")
    assert unscoped.async_ is not None and unscoped.async_.queue == "sum(c)"
