"""Group placement queries that share a shape into one PromQL query, and split its result. Pure.

A thousand placements usually ask the same question about different workloads:

    sum(rate(tokens_total{namespace="a",deployment="x"}[5m])) / 21431
    sum(rate(tokens_total{namespace="a",deployment="y"}[5m])) / 21431

Their equality matchers are the only difference. `group_query` turns each into the shared
query, with those matchers dropped and every aggregation grouped by their labels,

    sum by (deployment) (rate(tokens_total{namespace="a"}[5m])) / 21431

plus the label values that pick this placement's series out of the shared result. One query
then answers every placement of that shape in that namespace. Only expressions whose grouped
form means the same per key are grouped (a small allow-list below); anything else returns None
and is queried on its own, as before.

Tenancy: the namespace is never a key. A shared query keeps the namespace restriction, so its
result, its errors and its size bounds concern one namespace only, and one tenant's series can
neither reach nor crowd out another's. The key values come from the PromQL parser, decoded as
Prometheus decodes them (`"tenant-\\141"` is `tenant-a`), the same values the scoping check
read; the shared query's text is checked by parsing it again, so a misreading can only leave a
query ungrouped, never widen it.

Across namespaces (`Grouping.across`): the same query with the one namespace replaced by a
list of namespaces, `namespace=~"a|b"`, and every aggregation grouped by the namespace too,

    sum by (deployment, namespace) (rate(tokens_total{namespace=~"a|b"}[5m])) / 21431

Every matcher is a test of one series, so the series of this query whose namespace label is
`a` are exactly the series of the one-namespace query for `a`, and grouping by the namespace
keeps each output series within one namespace: splitting by (namespace, keys) gives each
namespace what its own shared query gives. Only namespaces that are Kubernetes namespace
names (DNS labels: no regex metacharacter, no `|`) are listed; whether a tenant's readings
may come from such a query, and what happens when it fails, is the reader's decision
(prometheus.BatchedMetricsReader).
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import promql_parser as promql

NAMESPACE = "namespace"

# Aggregations that, grouped by the key labels, give per key what the original gives.
AGGREGATIONS = frozenset({"sum", "avg", "min", "max", "count"})
# Functions applied per series: they keep the labels the split needs.
PER_SERIES_FUNCTIONS = frozenset(
    {
        "abs",
        "avg_over_time",
        "ceil",
        "clamp",
        "clamp_max",
        "clamp_min",
        "count_over_time",
        "delta",
        "deriv",
        "exp",
        "floor",
        "idelta",
        "increase",
        "irate",
        "last_over_time",
        "ln",
        "log10",
        "log2",
        "max_over_time",
        "min_over_time",
        "rate",
        "round",
        "sqrt",
        "sum_over_time",
    }
)
_ARITHMETIC = frozenset({"+", "-", "*", "/"})
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
    | {"and", "or", "unless"}
)

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<braces>\{(?:[^{}"'`]|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)*\})
  | (?P<range>\[[^\[\]]*\])
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>[-+*/(),])
    """,
    re.VERBOSE,
)
_MATCHER = re.compile(
    r"""\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*
        (?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*(?:,|$)""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Grouping:
    """One placement's expression seen as a member of a group."""

    query: str  # the shared query: the same text for every member of the group
    keys: tuple[str, ...]  # labels that tell the members apart, sorted
    values: tuple[str, ...]  # this member's value of each key, decoded as Prometheus reads it
    namespace: str  # the one namespace every selector of `query` is restricted to
    # `query` cut where each selector's namespace restriction stands (`across` fills them in);
    # empty when the cross-namespace form did not check out: the query is not shared across.
    segments: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def shape(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """What placements of every namespace asking the same question have in common."""
        return self.segments, self.keys

    def across(self, namespaces: Sequence[str]) -> str:
        """The query over every namespace of `namespaces`, grouped by namespace too (split it
        by `(NAMESPACE, *keys)`). Only for namespace names (`is_namespace_name`)."""
        if not self.segments or not namespaces:
            raise ValueError("this query is not shared across namespaces")
        return _across(self.segments, tuple(namespaces))


# Every placement of a batch asks its batch's query, two texts a reading: built and its
# namespaces checked once per batch, not per read (a batch of 200 namespaces took 45-80 us
# a text, per evaluation, growing with the namespaces; docs/scaling.md).
@functools.lru_cache(maxsize=1024)
def _across(segments: tuple[str, ...], namespaces: tuple[str, ...]) -> str:
    if not all(is_namespace_name(name) for name in namespaces):
        raise ValueError(f"not namespace names: {sorted(namespaces)!r}")
    restriction = f"{NAMESPACE}=~{json.dumps('|'.join(namespaces))}"
    return restriction.join(segments)


# A Kubernetes namespace name (RFC 1123 label): letters, digits and `-`, none of which means
# anything in a regex outside a bracket, so "a|b" matches exactly the names a and b.
_NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def is_namespace_name(name: str) -> bool:
    return _NAMESPACE_NAME.fullmatch(name) is not None


Series = Mapping[str, object]  # one element of a Prometheus instant-vector result

# MatchOp is not hashable: keyed by its name.
_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


@dataclass(frozen=True)
class _TextSelector:
    name: str | None
    braces: int | None  # index of its `{...}` token, if any
    aggregated: bool


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_MISSING = object()


class Recent(Generic[K, V]):
    """`compute(key)`, remembered for the keys asked within the last one to two `period`s.

    Its size follows what is in use, whatever that is: every placement asks its expressions
    once a cycle, in turn, and an LRU bound below their number misses every time (a bound of
    8,192 against 12,500 expressions at 10,000 placements: each read parsed its expression
    anew, 0.1-0.3 ms). Keys nobody asked for a period (a deleted placement's) go at the next
    turn after it. Thread-safe without a lock: a value computed twice at once is equal, and
    one stored in the generation just retired is only computed again."""

    def __init__(
        self,
        compute: Callable[[K], V],
        *,
        period: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._compute = compute
        self.period = period
        self._clock = clock
        self._young: dict[K, V] = {}
        self._old: dict[K, V] = {}
        self._turned_at = clock()

    def __call__(self, key: K) -> V:
        found = self._young.get(key, _MISSING)
        if found is _MISSING:
            found = self._old.get(key, _MISSING)
            if found is _MISSING:
                found = self._compute(key)
            self._young[key] = found  # type: ignore[assignment]
        now = self._clock()
        if now - self._turned_at > self.period:
            self._old, self._young, self._turned_at = self._young, {}, now
        return found  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self._young.keys() | self._old.keys())


def _group_query(expression: str) -> Grouping | None:
    """The shared query and this expression's key, or None when it cannot be grouped."""
    tokens = _tokenize(expression)
    if tokens is None:
        return None
    try:
        tree = promql.parse(expression)
    except (ValueError, TypeError):
        return None
    found = _text_selectors(tokens)
    parsed = _selectors(tree)
    if found is None or len(found) != len(parsed):
        return None
    keyed = _keyed(tokens, found, parsed)
    if keyed is None:
        return None
    namespace, key_values = keyed[0]
    if not key_values or any(member != (namespace, key_values) for member in keyed):
        return None  # every selector must pick the same workload of the same namespace
    if len({text.aggregated for text in found}) != 1:
        return None  # a per-series selector matched against an aggregate: not the same per key
    labels = tuple(sorted(key_values))
    restriction = f"{NAMESPACE}={json.dumps(namespace)}"
    query = restriction.join(_render(tokens, labels, labels))
    if not _same_but_grouped(tree, query, labels, namespace):
        return None  # the rewrite is not exactly the original, grouped: ask it on its own
    values = tuple(key_values[k] for k in labels)
    segments = _render(tokens, labels, tuple(sorted((NAMESPACE, *labels))))
    if not is_namespace_name(namespace) or not _same_across(tree, segments, labels, namespace):
        segments = ()  # shared within its namespace only
    return Grouping(
        _SHARED.one(query), _SHARED.one(labels), values, namespace, _SHARED.one(segments)
    )


class _Equal:
    """One object per equal value: the placements of a namespace and shape have one shared
    query, and those of a shape one set of keys and segments, each kept once (about half of
    a remembered Grouping). Cleared when full; values already shared stay shared."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: dict[Hashable, Hashable] = {}

    def one(self, value: V) -> V:
        if len(self._kept) >= self.size:
            self._kept = {}
        return self._kept.setdefault(value, value)  # type: ignore[return-value]


_SHARED = _Equal(4096)

# Every placement asks the same expressions every cycle: parsed once while in use (a Grouping
# is frozen).
group_query: Recent[str, Grouping | None] = Recent(_group_query)


def _keyed(
    tokens: list[tuple[str, str]],
    found: list[_TextSelector],
    parsed: list[promql.VectorSelector],
) -> list[tuple[str, dict[str, str]]] | None:
    """Per selector: its namespace and its other equality matchers; None when the text and
    the parser disagree, or a selector is not restricted to one namespace."""
    keyed: list[tuple[str, dict[str, str]]] = []
    for text, selector in zip(found, parsed, strict=True):
        written = _matchers(tokens[text.braces][1]) if text.braces is not None else []
        if written is None or text.name != (selector.name or None):
            return None
        # The text and the parser must see the same matchers; values come from the parser.
        if [(label, op) for label, op, _ in written] != [
            (m.name, _OPS[str(m.op)]) for m in selector.matchers.matchers
        ]:
            return None
        equal = _equalities(selector)
        if equal is None or NAMESPACE not in equal:
            return None  # only a query restricted to one namespace is shared
        keyed.append((equal.pop(NAMESPACE), equal))
    return keyed


def split(result: Iterable[Series], keys: Sequence[str]) -> dict[tuple[str, ...], list[Series]]:
    """The series of a shared result, by their values of `keys`. Equal values are one string
    (JSON decoding makes a new one per series: a batch's namespace, once per series)."""
    members: dict[tuple[str, ...], list[Series]] = {}
    seen: dict[str, str] = {}
    for series in result:
        labels = series.get("metric")
        if not isinstance(labels, Mapping):
            continue
        key = tuple(seen.setdefault(value, value) for value in _values(labels, keys))
        members.setdefault(key, []).append(series)
    return members


def _values(labels: Mapping[str, object], keys: Sequence[str]) -> Iterator[str]:
    return (str(labels.get(k, "")) for k in keys)


def _tokenize(expression: str) -> list[tuple[str, str]] | None:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if match is None:
            return None  # strings outside selectors, comparisons, @, ^, %: not grouped
        position = match.end()
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append((kind, match.group()))
    return tokens


# One pass over the tokens with a branch per token kind: a table would read no easier.
def _text_selectors(tokens: list[tuple[str, str]]) -> list[_TextSelector] | None:  # noqa: C901
    """The selectors of an allowed shape, in textual order; None for any other shape.

    Marks the parenthesis after each aggregation or function as `open` for `_render`."""
    found: list[_TextSelector] = []
    stack: list[str] = []  # "agg", "call" or "group" per open parenthesis
    for index, (kind, text) in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else ("", "")
        if kind == "name":
            if text in _KEYWORDS:
                return None  # by, without, on, offset, and, ...: not the same per key
            if following == ("op", "("):
                if text in AGGREGATIONS:
                    stack.append("agg")
                elif text in PER_SERIES_FUNCTIONS:
                    stack.append("call")
                else:
                    return None  # a function that may drop or merge the key labels
                tokens[index + 1] = ("open", "(")
                continue
            braces = index + 1 if following[0] == "braces" else None
            found.append(_TextSelector(text, braces, "agg" in stack))
        elif kind == "braces":
            if not index or tokens[index - 1][0] != "name":  # a selector without a metric name
                found.append(_TextSelector(None, index, "agg" in stack))
        elif text == "(" and kind == "op":
            stack.append("group")
        elif text == ")":
            if not stack:
                return None
            stack.pop()
    if stack or not found:
        return None
    return found


def _matchers(braces: str) -> list[tuple[str, str, str]] | None:
    """(label, operator, value literal as written) of each matcher in `{...}`."""
    inner = braces[1:-1].strip()
    found: list[tuple[str, str, str]] = []
    position = 0
    while position < len(inner):
        match = _MATCHER.match(inner, position)
        if match is None:
            return None
        found.append((match["label"], match["op"], match["value"]))
        position = match.end()
    return found


def _selectors(tree: promql.Expr) -> list[promql.VectorSelector]:
    found: list[promql.VectorSelector] = []

    def visit(node: promql.Expr) -> None:
        if isinstance(node, promql.VectorSelector):
            found.append(node)

    promql.walk(tree, pre_visit=visit)
    return found


def _equalities(selector: promql.VectorSelector) -> dict[str, str] | None:
    """label -> decoded value of the equality matchers (the metric name aside); None when a
    label has two."""
    equal: dict[str, str] = {}
    for matcher in selector.matchers.matchers:
        if matcher.op == promql.MatchOp.Equal and matcher.name != "__name__":
            if matcher.name in equal:
                return None
            equal[matcher.name] = matcher.value
    return equal


def _render(
    tokens: list[tuple[str, str]], keys: tuple[str, ...], by_labels: tuple[str, ...]
) -> tuple[str, ...]:
    """The grouped text, cut where each selector's namespace restriction goes: the caller
    joins the pieces with the restriction it wants (the namespace written plainly from its
    decoded value, whatever escapes the placement used, or a list of namespaces)."""
    by = f" by ({', '.join(by_labels)}) "
    cut = object()  # where a restriction goes
    parts: list[str | object] = []
    for index, (kind, text) in enumerate(tokens):
        if kind == "name" and text in AGGREGATIONS and tokens[index + 1][0] == "open":
            parts.append(text + by)
        elif kind == "braces":
            parts.extend(_render_braces(text, keys, cut))
        elif kind in ("op", "open") and text in _ARITHMETIC:
            parts.append(f" {text} ")
        elif text == ",":
            parts.append(", ")
        else:
            parts.append(text)
    segments: list[str] = [""]
    for part in parts:
        if part is cut:
            segments.append("")
            continue
        assert isinstance(part, str)
        if segments[-1].endswith(" ") and part.startswith(" "):
            part = part[1:]
        segments[-1] += part
    segments[0] = segments[0].lstrip()
    segments[-1] = segments[-1].rstrip()
    return tuple(segments)


def _render_braces(braces: str, keys: tuple[str, ...], cut: object) -> list[str | object]:
    """The selector's matchers less the keys, `cut` where the namespace equality stood."""
    kept: list[str | object] = [
        cut if (label, op) == (NAMESPACE, "=") else f"{label}{op}{value}"
        for label, op, value in _matchers(braces) or []
        if not (op == "=" and label in keys)
    ]
    parts: list[str | object] = ["{"]
    for index, part in enumerate(kept):
        parts.extend([",", part] if index else [part])
    parts.append("}")
    return parts


def _same_but_grouped(
    original: promql.Expr, query: str, keys: tuple[str, ...], namespace: str
) -> bool:
    """`query` parses to `original` with the key matchers dropped, the namespace kept and every
    aggregation grouped by the keys: nothing else changed."""
    try:
        grouped = promql.parse(query)
    except (ValueError, TypeError):
        return False
    if _kinds(original) != _kinds(grouped):
        return False
    before, after = _selectors(original), _selectors(grouped)
    if len(before) != len(after):
        return False
    for old, new in zip(before, after, strict=True):
        expected = sorted(
            _key(m)
            for m in old.matchers.matchers
            if not (m.op == promql.MatchOp.Equal and m.name in keys)
        )
        if old.name != new.name or expected != sorted(_key(m) for m in new.matchers.matchers):
            return False
        if (NAMESPACE, "=", namespace) not in expected:
            return False
    return all(modifier == ("by", keys) for modifier in _aggregations(grouped))


def _same_across(
    original: promql.Expr, segments: tuple[str, ...], keys: tuple[str, ...], namespace: str
) -> bool:
    """The cross-namespace text, with `namespace` as its list, parses to `original` with the
    key matchers dropped, the namespace equality become `namespace=~` and every aggregation
    grouped by the keys and the namespace: nothing else changed."""
    restriction = f"{NAMESPACE}=~{json.dumps(namespace)}"
    try:
        across = promql.parse(restriction.join(segments))
    except (ValueError, TypeError):
        return False
    if _kinds(original) != _kinds(across):
        return False
    before, after = _selectors(original), _selectors(across)
    if len(before) != len(after):
        return False
    for old, new in zip(before, after, strict=True):
        expected = sorted(
            (NAMESPACE, "=~", namespace) if key == (NAMESPACE, "=", namespace) else key
            for key in map(_key, old.matchers.matchers)
            if not (key[1] == "=" and key[0] in keys)
        )
        if old.name != new.name or expected != sorted(_key(m) for m in new.matchers.matchers):
            return False
        if (NAMESPACE, "=~", namespace) not in expected:
            return False
    by = tuple(sorted((NAMESPACE, *keys)))
    return all(modifier == ("by", by) for modifier in _aggregations(across))


def _key(matcher: promql.Matcher) -> tuple[str, str, str]:
    return (matcher.name, _OPS[str(matcher.op)], matcher.value)


def _kinds(tree: promql.Expr) -> list[str]:
    kinds: list[str] = []
    promql.walk(tree, pre_visit=lambda node: kinds.append(type(node).__name__))
    return kinds


def _aggregations(tree: promql.Expr) -> list[tuple[str, tuple[str, ...]]]:
    found: list[tuple[str, tuple[str, ...]]] = []

    def visit(node: promql.Expr) -> None:
        if isinstance(node, promql.AggregateExpr):
            modifier = node.modifier
            if modifier is None:
                found.append(("-", ()))
            else:
                by = modifier.type == promql.AggModifierType.By
                found.append(("by" if by else "-", tuple(sorted(modifier.labels))))

    promql.walk(tree, pre_visit=visit)
    return found
