"""Durations: '90m', '8h', '2d', '30s', '1h30m'."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from placement.core.durations import (
    DURATION_MIN_LENGTH,
    DURATION_PATTERN,
    Duration,
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("90m", timedelta(minutes=90)),
        ("8h", timedelta(hours=8)),
        ("2d", timedelta(days=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("0s", timedelta(0)),
        ("000090m", timedelta(minutes=90)),
    ],
)
def test_parses(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert Duration(text).timedelta == expected


@pytest.mark.parametrize(
    "text",
    ["", "5", "h", "1.5h", "-1h", "1H", "1h 30m", "30m1h", "1h1h", "1w", " 1h", "1h\n", "1234567h"],
)
def test_rejects_with_a_message_showing_the_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid duration .*e\.g\. '30s', '90m'"):
        parse_duration(text)


def test_schema_pattern_agrees_with_the_parser() -> None:
    # The API server only has the pattern (plus minLength): it must accept exactly what
    # parse_duration accepts, or a manifest passes one check and fails the other.
    pattern = re.compile(DURATION_PATTERN)
    for text in ["", "5", "1h", "1h30m", "30m1h", "0s", "1.5h", "2d"]:
        by_schema = len(text) >= DURATION_MIN_LENGTH and pattern.fullmatch(text) is not None
        try:
            parse_duration(text)
            by_parser = True
        except ValueError:
            by_parser = False
        assert by_schema == by_parser, text


@given(
    st.tuples(*(st.one_of(st.none(), st.integers(0, 999_999)) for _ in range(4))).filter(
        lambda parts: any(p is not None for p in parts)
    )
)
def test_any_composed_duration_parses_to_its_sum(parts: tuple[int | None, ...]) -> None:
    units = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)]
    text = "".join(f"{n}{u}" for n, (u, _) in zip(parts, units, strict=True) if n is not None)
    seconds = sum(n * s for n, (_, s) in zip(parts, units, strict=True) if n is not None)
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert re.fullmatch(DURATION_PATTERN, text)


class _Model(BaseModel):
    delay: Duration


def test_pydantic_keeps_the_string_the_user_wrote() -> None:
    model = _Model.model_validate({"delay": "90m"})
    assert isinstance(model.delay, Duration)
    assert model.delay == "90m"
    assert model.delay.timedelta == timedelta(minutes=90)
    assert model.model_dump() == {"delay": "90m"}
    assert model.model_dump_json() == '{"delay":"90m"}'


def test_pydantic_error_names_the_field() -> None:
    with pytest.raises(ValidationError) as error:
        _Model.model_validate({"delay": "8 hours"})
    (detail,) = error.value.errors()
    assert detail["loc"] == ("delay",)
    assert "invalid duration '8 hours'" in detail["msg"]


def test_json_schema_has_the_pattern() -> None:
    schema = _Model.model_json_schema()["properties"]["delay"]
    assert schema["type"] == "string"
    assert schema["pattern"] == DURATION_PATTERN
    assert schema["minLength"] == DURATION_MIN_LENGTH


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(hours=6, minutes=30, seconds=10), "6h30m"),
        (timedelta(days=1, hours=2), "1d2h"),
        (timedelta(hours=-2), "-2h"),
    ],
)
def test_format_for_messages(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text
