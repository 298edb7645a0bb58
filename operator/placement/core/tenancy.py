"""Confine a placement's PromQL to its own namespace: one tenant must not read another's
metrics through status or Events.

`scope_to_namespace` puts `namespace="<ns>"` on every vector and range selector and refuses a
selector that already matches another namespace (other value, regex, negation). A namespace
matcher the author wrote is judged by its decoded value and sent written plainly, so escapes
(`"tenant-\\141"`) cannot make Prometheus read another namespace than the one checked.
`refuse_unbounded` refuses a selector that would read every series of the namespace
(`{__name__=~".+"}`). Pure: no I/O.

How: promql-parser (the Rust parser) says which selectors the expression has; its printer
loses escapes and the default subquery step, so the text is not re-printed from the AST.
Instead a small lexer finds the same selectors in the text and the matcher is inserted there,
keeping everything else as written. The result is parsed again and must have exactly the
original structure with the namespace on every selector, else it is refused: a
misunderstanding can only refuse a query, never widen it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import promql_parser as promql

from placement.core.api import WorkloadPlacementSpec

NAMESPACE_LABEL = "namespace"

# Keywords that can stand where a bare metric name could; Prometheus compares them lowercased.
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "atan2",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "start",
        "end",
        "inf",
        "nan",
    }
)
# Followed by a parenthesised list of label names, not of expressions.
_LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<range>\[[^\]]*\])
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)
  | (?P<number>[0-9.][0-9a-zA-Z_.]*)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<punct>.)
    """,
    re.VERBOSE | re.DOTALL,
)
# `range`: `[5m]`, `[1h:5m]` hold durations only, and `:` there is not part of a name.


class ScopeError(ValueError):
    """The expression cannot be confined to the namespace; the message names the field."""


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    start: int


@dataclass(frozen=True)
class _Site:
    """A selector in the text: its metric name (None for `{...}` alone) and where
    `namespace="<ns>"` goes."""

    name: str | None
    insert_at: int
    braces: bool  # True: insert inside an existing `{`; False: append `{...}` after a name
    empty: bool  # the braces hold no matcher yet


def scope_to_namespace(expression: str, namespace: str, *, field: str) -> str:
    """`expression` with `namespace="<namespace>"` on every selector.

    Raises ScopeError naming `field` when a selector already names another namespace, or when
    the expression cannot be parsed or rewritten with certainty."""
    original = _parse(expression, field)
    selectors = _selectors(original)
    wanted = promql.Matcher(promql.MatchOp.Equal, NAMESPACE_LABEL, namespace)
    needs: list[bool] = []
    for selector in selectors:
        if selector.matchers.or_matchers:
            raise ScopeError(f"{field}: `or` inside label matchers is not supported: {selector}")
        own = [m for m in selector.matchers.matchers if m.name == NAMESPACE_LABEL]
        for matcher in own:
            if not _same(matcher, wanted):
                raise ScopeError(
                    f"{field}: selector {selector} matches {matcher}; a placement may read "
                    f'only its own namespace, {NAMESPACE_LABEL}="{namespace}"'
                )
        needs.append(not own)
    # Written plainly from here on: Prometheus then reads exactly the namespace checked above,
    # whatever escapes (`"tenant-\\141"`) the author used.
    expression = _plain_namespaces(expression, namespace)
    sites = _sites(expression)
    if len(sites) != len(selectors) or any(
        site.name is not None and site.name != selector.name
        for site, selector in zip(sites, selectors, strict=False)
    ):
        raise _unsure(field, expression)
    scoped = expression
    matcher_text = f"{NAMESPACE_LABEL}={json.dumps(namespace)}"
    # From the end, so earlier offsets stay valid.
    for site, need in reversed(list(zip(sites, needs, strict=True))):
        if not need:
            continue
        if site.braces:
            insert = matcher_text if site.empty else matcher_text + ","
        else:
            insert = "{" + matcher_text + "}"
        scoped = scoped[: site.insert_at] + insert + scoped[site.insert_at :]
    _verify(original, scoped, wanted, field)
    return scoped


def _plain_namespaces(expression: str, namespace: str) -> str:
    """Every `namespace="..."` matcher written as `namespace="<namespace>"` (already checked
    to mean that); `_verify` parses the result again."""
    tokens = _tokens(expression)
    plain = json.dumps(namespace)
    for index in reversed(range(len(tokens) - 2)):
        label, operator, value = tokens[index : index + 3]
        if (
            label.kind == "ident"
            and label.text == NAMESPACE_LABEL
            and operator.text == "="
            and value.kind == "string"
            and value.text != plain
        ):
            end = value.start + len(value.text)
            expression = expression[: value.start] + plain + expression[end:]
    return expression


def refuse_unbounded(expression: str, *, field: str) -> None:
    """Refuse a selector that could match every series: no metric name and no matcher that
    narrows it (`{__name__=~".+"}`, `{job=~".*"}`). Raises ScopeError naming `field`."""
    for selector in _selectors(_parse(expression, field)):
        if selector.name or any(_narrows(m) for m in selector.matchers.matchers):
            continue
        raise ScopeError(
            f"{field}: selector {selector} names no metric and has no matcher that narrows it, "
            "so it reads every series; name the metric (e.g. my_metric{...}) or match a label "
            'value, e.g. job="my-job" or __name__=~"vllm:.*"'
        )


def _narrows(matcher: promql.Matcher) -> bool:
    # The namespace matcher is the operator's own restriction, not the query's.
    if matcher.name == NAMESPACE_LABEL:
        return False
    if str(matcher.op) == "MatchOp.Equal":
        return matcher.value != ""  # `job=""` matches every series without a job
    if str(matcher.op) == "MatchOp.Re":
        alternatives = _alternatives(matcher.value)
        return alternatives is not None and all(_literal_start(a) for a in alternatives)
    return False  # != and !~ exclude, they do not select


_REGEX_SYNTAX = frozenset("\\.+*?()|[]{}^$")


def _alternatives(pattern: str) -> list[str] | None:
    """The top-level alternatives of a regex; None when it cannot be read with certainty."""
    alternatives, current, depth, index = [], "", 0, 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            current += pattern[index : index + 2]
            index += 2
            continue
        if char == "[":
            close = _class_end(pattern, index)
            if close is None:
                return None
            current += pattern[index : close + 1]
            index = close + 1
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return None
        if char == "|" and depth == 0:
            alternatives.append(current)
            current = ""
        else:
            current += char
        index += 1
    if depth:
        return None
    return [*alternatives, current]


def _class_end(pattern: str, start: int) -> int | None:
    """Index of the `]` closing the character class opened at `start`."""
    index = start + 1
    if pattern[index : index + 1] == "^":
        index += 1
    if pattern[index : index + 1] == "]":
        index += 1  # `[]a]`, `[^]a]`: a first `]` is a member
    while index < len(pattern):
        if pattern[index] == "\\":
            index += 2
        elif pattern.startswith("[:", index):
            end = pattern.find(":]", index + 2)
            if end < 0:
                return None
            index = end + 2
        elif pattern[index] == "]":
            return index
        else:
            index += 1
    return None


def _literal_start(alternative: str) -> bool:
    """The alternative must begin with a literal character that is not optional, as in
    `vllm:.*` (Prometheus anchors the regex at both ends)."""
    if alternative.startswith("\\"):
        if len(alternative) < 2 or alternative[1].isalnum():
            return False  # \d, \w, \pL, \x41...: a class or a code, not read here
        rest = alternative[2:]
    elif alternative and alternative[0] not in _REGEX_SYNTAX:
        rest = alternative[1:]
    else:
        return False
    return not rest.startswith(("?", "*", "{0", "{,"))


def _parse(expression: str, field: str) -> promql.Expr:
    try:
        return promql.parse(expression)
    except (ValueError, TypeError) as error:
        raise ScopeError(f"{field}: not valid PromQL: {error}") from error


def _selectors(expression: promql.Expr) -> list[promql.VectorSelector]:
    found: list[promql.VectorSelector] = []

    def visit(node: promql.Expr) -> None:
        if isinstance(node, promql.VectorSelector):
            found.append(node)

    promql.walk(expression, pre_visit=visit)
    return found


def _shape(expression: promql.Expr) -> list[str]:
    kinds: list[str] = []

    def visit(node: promql.Expr) -> None:
        kinds.append(type(node).__name__)

    promql.walk(expression, pre_visit=visit)
    return kinds


def _same(left: promql.Matcher, right: promql.Matcher) -> bool:
    return str(left.op) == str(right.op) and left.name == right.name and left.value == right.value


def _key(matcher: promql.Matcher) -> tuple[str, str, str]:
    return (str(matcher.op), matcher.name, matcher.value)


def _verify(original: promql.Expr, scoped: str, wanted: promql.Matcher, field: str) -> None:
    """The rewritten text must parse to the original plus the namespace on every selector."""
    try:
        again = promql.parse(scoped)
    except (ValueError, TypeError) as error:
        raise _unsure(field, scoped) from error
    before, after = _selectors(original), _selectors(again)
    if _shape(original) != _shape(again) or len(before) != len(after):
        raise _unsure(field, scoped)
    for old, new in zip(before, after, strict=True):
        expected = {_key(m) for m in old.matchers.matchers} | {_key(wanted)}
        actual = {_key(m) for m in new.matchers.matchers}
        if (
            old.name != new.name
            or old.offset != new.offset
            or expected != actual
            or [
                m
                for m in new.matchers.matchers
                if m.name == NAMESPACE_LABEL and not _same(m, wanted)
            ]
        ):
            raise _unsure(field, scoped)


def _unsure(field: str, expression: str) -> ScopeError:
    return ScopeError(
        f"{field}: could not add {NAMESPACE_LABEL}=... to every selector of `{expression}` "
        "with certainty; write the namespace matcher on each selector yourself"
    )


def _tokens(expression: str) -> list[_Token]:
    tokens = []
    for match in _TOKEN.finditer(expression):
        kind = match.lastgroup
        assert kind is not None
        if kind not in ("space", "comment"):
            tokens.append(_Token(kind, match.group(), match.start()))
    return tokens


def _sites(expression: str) -> list[_Site]:
    """Selectors in textual order, found by tokens alone (checked against the AST after)."""
    tokens = _tokens(expression)
    sites: list[_Site] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if token.text == "{":
            sites.append(_braces(None, tokens, index))
            index = _after_braces(tokens, index)
            continue
        if token.kind == "ident":
            word = token.text.lower()
            if word in _LABEL_LIST_KEYWORDS and following is not None and following.text == "(":
                index = _after_parenthesis(tokens, index + 1)
                continue
            if word in _KEYWORDS:
                index += 1  # `unless {...}`: the braces are a selector of their own
                continue
            if following is not None and following.text == "{":
                sites.append(_braces(token.text, tokens, index + 1))
                index = _after_braces(tokens, index + 1)
                continue
            is_call = following is not None and (
                following.text == "(" or following.text.lower() in ("by", "without")
            )
            if not is_call:
                sites.append(_Site(token.text, token.start + len(token.text), False, False))
        index += 1
    return sites


def _braces(name: str | None, tokens: list[_Token], brace: int) -> _Site:
    after = tokens[brace + 1] if brace + 1 < len(tokens) else None
    empty = after is None or after.text == "}"
    return _Site(name, tokens[brace].start + 1, True, empty)


def _after_braces(tokens: list[_Token], brace: int) -> int:
    index = brace + 1
    while index < len(tokens) and tokens[index].text != "}":
        index += 1
    return index + 1


def _after_parenthesis(tokens: list[_Token], opening: int) -> int:
    index = opening + 1
    while index < len(tokens) and tokens[index].text != ")":
        index += 1
    return index + 1


def scoped_spec(spec: WorkloadPlacementSpec, namespace: str | None) -> WorkloadPlacementSpec:
    """The spec with every query (metrics.utilization, queueDepth, demand, requests and
    async.queue) confined to `namespace` (None: left as written, when the operator is
    configured not to scope) and refused when a selector is unbounded; ScopeError names the
    field. The history range query reads metrics.demand (else utilization) as scoped here."""
    metrics = spec.metrics
    fields = {
        "utilization": (metrics.utilization, "spec.metrics.utilization"),
        "queue_depth": (metrics.queue_depth, "spec.metrics.queueDepth"),
        "demand": (metrics.demand, "spec.metrics.demand"),
        "requests": (metrics.requests, "spec.metrics.requests"),
    }
    scoped = {key: _scoped(text, name, namespace) for key, (text, name) in fields.items()}
    update: dict[str, object] = {
        "metrics": metrics.model_copy(update={k: v for k, v in scoped.items() if v is not None})
    }
    if spec.async_ is not None:
        queue = _scoped(spec.async_.queue, "spec.async.queue", namespace)
        update["async_"] = spec.async_.model_copy(update={"queue": queue})
    return spec.model_copy(update=update)


def _scoped(expression: str | None, field: str, namespace: str | None) -> str | None:
    """The expression confined to `namespace` (None: as written), refused when unbounded."""
    if not expression:
        return expression
    refuse_unbounded(expression, field=field)
    if namespace is None:
        return expression
    return scope_to_namespace(expression, namespace, field=field)
