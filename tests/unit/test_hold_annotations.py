"""Hold annotations edited by hand: what the operator could not have written reads as absent."""

from __future__ import annotations

import datetime as dt

import pytest

from placement.adapters.kubewatch import float_or_none as _float_or_none
from placement.adapters.kubewatch import int_or_none as _int_or_none
from placement.adapters.kubewatch import time_or_none as _time_or_none


@pytest.mark.parametrize("text", ["-3", "4.5", "four", "", "99999999999"])
def test_a_replica_count_the_operator_could_not_have_written_is_absent(text: str) -> None:
    assert _int_or_none(text) is None


@pytest.mark.parametrize("text", ["nan", "inf", "-0.1", "1.5", "high"])
def test_a_utilization_outside_zero_to_one_is_absent(text: str) -> None:
    assert _float_or_none(text, upper=1.0) is None


def test_valid_values_read_as_written() -> None:
    assert _int_or_none("0") == 0 and _int_or_none("12") == 12
    assert _float_or_none("0.2", upper=1.0) == 0.2
    assert _float_or_none("21.55") == 21.55  # work in replica-hours has no upper bound
    naive = _time_or_none("2026-11-24T10:00:00")
    assert naive == dt.datetime(2026, 11, 24, 10, tzinfo=dt.UTC)  # comparable with `now`
    assert _time_or_none("yesterday") is None
