"""Durations as people write them in a spec: "90m", "8h", "2d", "30s", "1h30m".

`Duration` is a `str` subclass: the spec keeps exactly what the user wrote (so a status or a
re-rendered manifest never turns "90m" into "1h30m"), and `.timedelta` gives the value.
The same regular expression is used by pydantic and by the CRD's OpenAPI schema, so the API
server rejects a bad duration at `kubectl apply` with the same rule the operator applies.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

# Units in descending order, each at most once. Written for both RE2 (the API server) and
# Python `re`: no lookahead, so "" is excluded by DURATION_MIN_LENGTH instead.
DURATION_PATTERN = r"^([0-9]{1,6}d)?([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?$"
DURATION_MIN_LENGTH = 2  # the shortest valid duration is one digit and one unit: "0s"
DURATION_MAX_LENGTH = 32

_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_COMPILED = re.compile(DURATION_PATTERN)
_PART = re.compile(r"([0-9]+)([dhms])")


def parse_duration(text: str) -> timedelta:
    """Parse "1h30m"-style text; raise ValueError naming the accepted form otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"duration must be a string like '90m', got {type(text).__name__}")
    if len(text) < DURATION_MIN_LENGTH or not _COMPILED.fullmatch(text):
        raise ValueError(
            f"invalid duration {text!r}: use whole numbers with units d, h, m, s in that "
            "order, e.g. '30s', '90m', '8h', '2d', '1h30m'"
        )
    seconds = sum(int(amount) * _UNIT_SECONDS[unit] for amount, unit in _PART.findall(text))
    return timedelta(seconds=seconds)


# A spec's durations are read several times an evaluation, and specs share a few values
# ("5m", "8h"): parsed once each (a timedelta is immutable, so one serves every reader).
@lru_cache(maxsize=1024)
def _timedelta_of(text: str) -> timedelta:
    return parse_duration(text)


def duration_seconds_cel(expression: str = "self") -> str:
    """A CEL expression for the seconds of a duration the pattern admitted.

    The API server's CEL has `duration()`, but Go's syntax has no days; so each unit's digits
    are found with RE2 and summed (at most 6 digits a unit: no int64 overflow).
    """
    terms = []
    for unit, seconds in _UNIT_SECONDS.items():
        digits = f"{expression}.find('[0-9]+{unit}')"
        amount = f"({digits} == '' ? 0 : int({digits}.replace('{unit}', '')))"
        terms.append(amount if seconds == 1 else f"{amount} * {seconds}")
    return " + ".join(terms)


def duration_bounds_cel(minimum: timedelta, maximum: timedelta) -> dict[str, Any]:
    """`x-kubernetes-validations` refusing a duration outside [minimum, maximum], with the
    same messages as `check_duration_bounds`."""
    seconds = duration_seconds_cel()
    low, high = int(minimum.total_seconds()), int(maximum.total_seconds())
    rules = [{"rule": f"{seconds} <= {high}", "message": _too_long(maximum)}]
    if low == 1:  # "longer than 0s": some digit is not zero
        rules.insert(0, {"rule": "self.matches('[1-9]')", "message": _too_short(minimum)})
    elif low > 1:
        rules.insert(0, {"rule": f"{seconds} >= {low}", "message": _too_short(minimum)})
    return {"x-kubernetes-validations": rules}


def check_duration_bounds(value: Duration, minimum: timedelta, maximum: timedelta) -> Duration:
    """The pydantic side of `duration_bounds_cel`."""
    if value.timedelta < minimum:
        raise ValueError(_too_short(minimum))
    if value.timedelta > maximum:
        raise ValueError(_too_long(maximum))
    return value


def _too_short(minimum: timedelta) -> str:
    if minimum <= timedelta(seconds=1):
        return "must be longer than 0s"
    return f"must be at least {format_duration(minimum)}"


def _too_long(maximum: timedelta) -> str:
    return f"must be at most {format_duration(maximum)}"


def format_duration(delta: timedelta) -> str:
    """Render a timedelta compactly for messages: 1d2h, 6h30m, 45m, 30s, 0s.

    Seconds are shown only below one hour: messages are read by people, not parsed back.
    """
    total = int(delta.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days}d")
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if seconds and not (days or hours):
        parts.append(f"{seconds}s")
    return sign + ("".join(parts) or "0s")


class Duration(str):
    """A validated duration string; `.timedelta` is its value."""

    __slots__ = ()

    def __new__(cls, text: str) -> Duration:
        parse_duration(text)
        return super().__new__(cls, text)

    @property
    def timedelta(self) -> timedelta:
        return _timedelta_of(str(self))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source_type: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # Validation goes through parse_duration for a readable error; the models hold a
        # Duration and serialize it as the plain string the user wrote.
        return core_schema.no_info_after_validator_function(
            cls,
            core_schema.str_schema(max_length=DURATION_MAX_LENGTH),
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="always"),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # The API server has no parse_duration: give it the equivalent pattern.
        json_schema = handler(schema)
        json_schema.update(pattern=DURATION_PATTERN, minLength=DURATION_MIN_LENGTH)
        return json_schema
