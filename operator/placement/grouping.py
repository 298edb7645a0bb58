"""Group placement queries that share a shape into one PromQL query, and split its result. Pure.

A thousand placements usually ask the same question about different workloads:

    sum(rate(tokens_total{namespace="a",deployment="x"}[5m])) / 21431
    sum(rate(tokens_total{namespace="b",deployment="y"}[5m])) / 21431

Their equality matchers are the only difference. `group_query` turns each into the shared
query, with those matchers dropped and every aggregation grouped by their labels,

    sum by (deployment, namespace) (rate(tokens_total[5m])) / 21431

plus the label values that pick this placement's series out of the shared result. One query
then answers every placement of that shape. Only expressions whose grouped form means the same
per key are grouped (a small allow-list below); anything else returns None and is queried on
its own, as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

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
    values: tuple[str, ...]  # this member's value of each key


Series = Mapping[str, object]  # one element of a Prometheus instant-vector result


def group_query(expression: str) -> Grouping | None:
    """The shared query and this expression's key, or None when it cannot be grouped."""
    tokens = _tokenize(expression)
    if tokens is None:
        return None
    selectors: list[tuple[int, dict[str, str], bool]] = []  # token index, keys, aggregated
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
            keys = _selector_keys(following[1]) if following[0] == "braces" else {}
            if keys is None:
                return None
            selectors.append((index, keys, "agg" in stack))
        elif kind == "braces":
            previous = tokens[index - 1][0] if index else ""
            if previous != "name":  # a selector without a metric name
                keys = _selector_keys(text)
                if keys is None or len(keys) == len(_matchers(text) or []):
                    return None  # grouped, nothing would be left to select with
                selectors.append((index, keys, "agg" in stack))
        elif text == "(" and kind == "op":
            stack.append("group")
        elif text == ")":
            if not stack:
                return None
            stack.pop()
    if stack or not selectors:
        return None
    key_values = selectors[0][1]
    if not key_values or any(keys != key_values for _, keys, _ in selectors):
        return None  # every selector must pick the same workload
    if len({aggregated for _, _, aggregated in selectors}) != 1:
        return None  # a per-series selector matched against an aggregate: not the same per key
    labels = tuple(sorted(key_values))
    return Grouping(
        query=_render(tokens, labels), keys=labels, values=tuple(key_values[k] for k in labels)
    )


def split(result: Iterable[Series], keys: Sequence[str]) -> dict[tuple[str, ...], list[Series]]:
    """The series of a shared result, by their values of `keys`."""
    members: dict[tuple[str, ...], list[Series]] = {}
    for series in result:
        labels = series.get("metric")
        if not isinstance(labels, Mapping):
            continue
        key = tuple(str(labels.get(k, "")) for k in keys)
        members.setdefault(key, []).append(series)
    return members


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


def _selector_keys(braces: str) -> dict[str, str] | None:
    """Equality matchers of one selector (label -> value); None if unreadable."""
    keys: dict[str, str] = {}
    for label, op, value in _matchers(braces) or [("", "", "")]:
        if not label:
            return None
        if op == "=" and label != "__name__":
            if label in keys:
                return None
            keys[label] = value
    return keys


def _matchers(braces: str) -> list[tuple[str, str, str]] | None:
    inner = braces[1:-1].strip()
    found: list[tuple[str, str, str]] = []
    position = 0
    while position < len(inner):
        match = _MATCHER.match(inner, position)
        if match is None:
            return None
        found.append((match["label"], match["op"], _unquote(match["value"])))
        position = match.end()
    return found


def _unquote(literal: str) -> str:
    if literal.startswith("`"):
        return literal[1:-1]
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


def _render(tokens: list[tuple[str, str]], keys: tuple[str, ...]) -> str:
    by = f" by ({', '.join(keys)}) "
    out: list[str] = []
    for index, (kind, text) in enumerate(tokens):
        if kind == "name" and text in AGGREGATIONS and tokens[index + 1][0] == "open":
            out.append(text + by)
        elif kind == "braces":
            kept = [
                f"{label}{op}{_quote(value)}"
                for label, op, value in _matchers(text) or []
                if not (op == "=" and label in keys)
            ]
            if kept:
                out.append("{" + ",".join(kept) + "}")
        elif kind in ("op", "open") and text in _ARITHMETIC:
            out.append(f" {text} ")
        elif text == ",":
            out.append(", ")
        else:
            out.append(text)
    return "".join(out).replace("  ", " ").strip()


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
