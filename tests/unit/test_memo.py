"""What the operator remembers between evaluations changes no answer: the window, the
planned hold and the admitted spec are what computing them again gives, and a change of
any input (the spec's generation, a cost, a forecast hour, the hour) is seen."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace
from functools import partial
from typing import Any

import kopf
import pytest

from placement.adapters.fakecluster import FakeCluster
from placement.adapters.telemetry import Telemetry
from placement.core import memo, window
from placement.core.api import BatchWindow
from placement.core.forecast import Forecast, HourForecast
from placement.core.memo import BoundedMemo, remembered_plan
from placement.core.planning import Planner, WorkForecast
from placement.runtime import handlers
from placement.runtime.memo import SharedParts
from tests.unit.factories import example_manifest, make_spec
from tests.unit.fake_operator import ScriptedMetrics

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 24, 18, 20, tzinfo=UTC)


def _fresh(batch: BatchWindow, now: dt.datetime) -> window.WindowSpan:
    return window.current_window(batch, now) or window.next_window_after(batch, now)


@pytest.mark.parametrize(
    ("start", "end", "zone", "first"),
    [
        ("01:00", "05:00", "UTC", dt.datetime(2026, 11, 23, 22, 0, tzinfo=UTC)),
        ("22:00", "03:00", "Europe/Berlin", dt.datetime(2026, 3, 27, 12, 0, tzinfo=UTC)),
        ("01:30", "02:30", "America/New_York", dt.datetime(2026, 10, 31, 12, 0, tzinfo=UTC)),
    ],
)
def test_the_remembered_window_is_the_computed_one_at_every_moment(
    start: str, end: str, zone: str, first: dt.datetime
) -> None:
    batch = BatchWindow.model_validate({"start": start, "end": end, "timeZone": zone})
    moments = [first + dt.timedelta(minutes=17 * step) for step in range(400)]
    # Forward through windows and DST changes, then backwards (a replay started over).
    for moment in [*moments, *reversed(moments)]:
        assert window.current_or_next_window(batch, moment) == _fresh(batch, moment)


def _planner(typical: float = 0.1, hourly: float = 4.1) -> Planner:
    spec = make_spec(**{"costs.realtimeReplicaHourly": hourly})
    span = window.current_or_next_window(spec.batch.window, NOW)
    start = NOW.replace(minute=0)
    hours = tuple(
        HourForecast(start + dt.timedelta(hours=i), typical, typical * 1.5) for i in range(36)
    )
    forecast = WorkForecast(Forecast("utilization", "test", hours, from_history=True), 4.0)
    return Planner(spec.costs, 4, 0, 4, span, forecast)


def test_a_remembered_plan_is_the_computed_one_and_any_input_changes_it() -> None:
    planner = _planner()
    assert remembered_plan(planner, None, 24.0, NOW) == planner.plan(None, 24.0)
    assert remembered_plan(planner, None, 24.0, NOW) == planner.plan(None, 24.0)  # a hit
    busier = _planner(typical=0.3)
    assert remembered_plan(busier, None, 24.0, NOW) == busier.plan(None, 24.0)
    assert busier.plan(None, 24.0) != planner.plan(None, 24.0)
    dearer = _planner(hourly=9.0)
    assert remembered_plan(dearer, None, 24.0, NOW) == dearer.plan(None, 24.0)
    shorter = remembered_plan(planner, None, 6.0, NOW)
    assert shorter == planner.plan(None, 6.0) and shorter.longest_hours == 6.0
    one_hour_changed = replace(
        planner.forecast,
        forecast=replace(
            planner.forecast.forecast,
            hours=(
                *planner.forecast.forecast.hours[:-8],
                replace(planner.forecast.forecast.hours[-8], high=5.0),
                *planner.forecast.forecast.hours[-7:],
            ),
        ),
    )
    changed = replace(planner, forecast=one_hour_changed)
    assert remembered_plan(changed, None, 24.0, NOW) == changed.plan(None, 24.0)


def test_the_plan_memo_holds_one_hour_and_a_bounded_number() -> None:
    bounded: BoundedMemo[int, int] = BoundedMemo(3)
    for key in range(5):
        assert bounded.get(key, partial(int, key * 10), epoch=1) == key * 10
    assert len(bounded) == 3
    assert bounded.get(4, lambda: -1, epoch=1) == 40  # remembered
    assert bounded.get(4, lambda: -1, epoch=2) == -1  # a new hour: computed again
    assert len(bounded) == 1
    assert memo._KNOWN_SHAPE  # the fast key reads every field the planner has today


def _evaluate(manifest: dict[str, Any], cluster: FakeCluster, at: dt.datetime) -> dict[str, Any]:
    patch = kopf.Patch()
    handlers.evaluate(
        kopf.Body(manifest),
        patch,
        cluster,
        ScriptedMetrics(value=0.15, now=at),
        at,
        logging.getLogger("test"),
        telemetry=Telemetry(),
    )
    return dict(patch.get("status") or {})


def test_a_new_generation_of_the_spec_is_validated_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kopf, "event", lambda *args, **kwargs: None)
    cluster = FakeCluster()
    cluster.add("summarizer", 4)
    manifest = example_manifest()
    manifest["metadata"].update(uid="uid-memo", generation=1)
    first = _evaluate(manifest, cluster, NOW)
    assert first["phase"] != "Blocked"
    manifest["spec"]["costs"]["realtimeReplicaHourly"] = -1  # what the CRD would refuse
    manifest["metadata"]["generation"] = 2
    manifest["status"] = first
    blocked = _evaluate(manifest, cluster, NOW + dt.timedelta(minutes=5))
    assert blocked["phase"] == "Blocked"
    assert "spec.costs.realtimeReplicaHourly" in blocked["conditions"][0]["message"]
    handlers.ADMITTED.forget("uid-memo")  # as the deletion handler does
    assert handlers.ADMITTED.get(("uid-memo", 1, True)) is None


def _placement(name: str, uid: str) -> dict[str, Any]:
    manifest = example_manifest()
    manifest["metadata"].update(name=name, uid=uid, generation=1)
    manifest["spec"]["target"]["deployment"] = name
    return manifest


def test_equal_parts_of_placements_specs_are_one_object_and_an_edit_is_seen_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Placements from one template remember their equal parts once; an edit of one
    placement's spec is its own at its next evaluation, the other's spec stays as written."""
    monkeypatch.setattr(kopf, "event", lambda *args, **kwargs: None)
    cluster = FakeCluster()
    for name in ("summarizer", "translator"):
        cluster.add(name, 4)
    first, second = _placement("summarizer", "uid-a"), _placement("translator", "uid-b")
    _evaluate(first, cluster, NOW)
    _evaluate(second, cluster, NOW)
    a, b = handlers.ADMITTED.get(("uid-a", 1, True)), handlers.ADMITTED.get(("uid-b", 1, True))
    assert a is not None and b is not None
    assert a.costs is b.costs and a.batch is b.batch and a.latency is b.latency
    assert (a.target.deployment, b.target.deployment) == ("summarizer", "translator")

    first["spec"]["costs"]["realtimeReplicaHourly"] = 9.5
    first["metadata"]["generation"] = 2
    status = _evaluate(first, cluster, NOW + dt.timedelta(minutes=5))
    assert status["phase"] != "Blocked"
    edited = handlers.ADMITTED.get(("uid-a", 2, True))
    assert edited is not None and edited.costs.realtime_replica_hourly == 9.5
    kept = handlers.ADMITTED.get(("uid-b", 1, True))
    assert kept is b and b.costs.realtime_replica_hourly != 9.5
    assert edited.batch is b.batch  # what the edit left alike is still shared


def test_shared_parts_are_equal_values_of_equal_types_and_the_table_is_bounded() -> None:
    parts = SharedParts(size=16)
    spec = make_spec()
    for i in range(200):  # specs unlike each other in a few parts: the table starts again
        copy = spec.model_copy(deep=True, update={"owner": f"team-{i}"})
        shared = parts.share(copy)
        assert shared == copy and shared.owner == f"team-{i}"
        assert len(parts) <= 16
    assert parts.share([1, 1.0, True, "1"]) == [1, 1.0, True, "1"]
    ones = parts.share([1, 1.0, True])
    assert [type(x) for x in ones] == [int, float, bool]
    assert str(parts.share(-0.0)) == "-0.0" and str(parts.share(0.0)) == "0.0"
    text = "".join(["shared ", "text"])  # a string object of its own
    assert parts.share(text) is parts.share("shared text")
    assert parts.share({"a": [text]})["a"][0] is text
