"""The decision-quality scenarios: load that changes, built by the project (shape checks), and
the benchmark running one of them end to end."""

from __future__ import annotations

import itertools
import json
import statistics
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from placement.core.api import BatchWindow
from placement.core.window import window_on
from placement.replay.scenarios import SHAPES, Scenario, scenario
from placement.replay.series import Sample

REPO = Path(__file__).resolve().parents[2]
WINDOW = BatchWindow.model_validate({"start": "01:00", "end": "05:00", "timeZone": "Europe/Berlin"})
BERLIN = WINDOW.zone


def _mean(samples: list[Sample] | tuple[Sample, ...]) -> float:
    return statistics.mean(s.utilization for s in samples)


def _between(case: Scenario, first_day: float, last_day: float) -> list[Sample]:
    start = case.samples[0].at
    return [
        s
        for s in case.samples
        if start + timedelta(days=first_day) <= s.at < start + timedelta(days=last_day)
    ]


@pytest.mark.parametrize("name", list(SHAPES))
def test_every_scenario_is_four_weeks_at_five_minutes_and_reproducible(name: str) -> None:
    case = scenario(name, WINDOW)
    samples = case.samples
    assert len(samples) == 28 * 288
    assert {b.at - a.at for a, b in itertools.pairwise(samples)} == {timedelta(minutes=5)}
    assert {s.replicas for s in samples} == {6}
    assert all(0 <= s.utilization <= 1 for s in samples)
    assert scenario(name, WINDOW) == case  # seeded: the same series every run
    assert scenario(name, WINDOW, seed=13) != case


def test_rises_and_falls_change_level_after_ten_days() -> None:
    rises, falls = scenario("rises", WINDOW), scenario("falls", WINDOW)
    assert _mean(_between(rises, 0, 10)) == pytest.approx(0.12, abs=0.005)
    assert _mean(_between(rises, 10, 28)) == pytest.approx(0.6, abs=0.01)
    assert _mean(_between(falls, 0, 10)) == pytest.approx(0.6, abs=0.01)
    assert _mean(_between(falls, 10, 28)) == pytest.approx(0.1, abs=0.005)


def test_weekdays_are_busy_and_weekends_quiet_in_the_windows_zone() -> None:
    samples = scenario("weekdays", WINDOW).samples
    weekdays = [s for s in samples if s.at.astimezone(BERLIN).weekday() < 5]
    weekends = [s for s in samples if s.at.astimezone(BERLIN).weekday() >= 5]
    assert _mean(weekdays) == pytest.approx(0.55, abs=0.01)
    assert _mean(weekends) == pytest.approx(0.07, abs=0.005)


def test_growth_is_gradual_from_005_to_065() -> None:
    case = scenario("grows", WINDOW)
    daily = [_mean(_between(case, day, day + 1)) for day in range(28)]
    assert daily[0] == pytest.approx(0.06, abs=0.01)
    assert daily[-1] == pytest.approx(0.64, abs=0.01)
    assert all(later > earlier for earlier, later in itertools.pairwise(daily))
    assert max(b - a for a, b in itertools.pairwise(daily)) < 0.05  # no jump


def test_bursty_load_has_quiet_hours_in_a_day_too_busy_for_the_window() -> None:
    case = scenario("bursty", WINDOW)
    # A day's work at the mean (6 replicas * mean * 24 h) exceeds what the window's 2 pods
    # do in 4 h (45.6 replica-hours at efficiency 6 and 5% retries): about 0.32.
    assert 0.35 < _mean(case.samples) < 0.45
    hourly = [_mean(case.samples[i : i + 12]) for i in range(0, len(case.samples), 12)]
    assert sum(mean < 0.1 for mean in hourly) > 28  # more than one quiet hour a day
    assert max(s.utilization for s in case.samples) > 0.9


def test_failing_nights_fail_every_job_in_three_windows_only() -> None:
    case = scenario("failing-nights", WINDOW)
    assert case.failing_nights == 3
    failed = [s.at for s in case.samples if s.job_fails]
    nights = sorted({at.astimezone(BERLIN).date() for at in failed})
    assert nights == [date(2026, 11, 9), date(2026, 11, 16), date(2026, 11, 23)]
    for night in nights:
        span = window_on(WINDOW, night)
        assert span is not None
        in_window = [at for at in failed if span.contains(at)]
        assert len(in_window) == 48  # every 5 minutes of the 4 h window
    assert len(failed) == 3 * 48
    assert _mean(case.samples) == pytest.approx(0.15, abs=0.005)
    assert all(s.job_outcome is None for s in scenario("rises", WINDOW).samples)


def test_dst_spans_the_spring_forward_night_and_keeps_the_local_daily_shape() -> None:
    samples = scenario("dst", WINDOW).samples
    short_night = window_on(WINDOW, date(2027, 3, 28))
    assert short_night is not None and short_night.length == timedelta(hours=3)
    assert samples[0].at < short_night.start and short_night.end < samples[-1].at

    def at_local(day: date, hour: int) -> float:
        return _mean(
            [
                s
                for s in samples
                if s.at.astimezone(BERLIN).date() == day and s.at.astimezone(BERLIN).hour == hour
            ]
        )

    for day in (date(2027, 3, 20), date(2027, 4, 3)):  # before and after the change
        assert at_local(day, 9) == pytest.approx(0.36, abs=0.03)
        assert at_local(day, 7) == pytest.approx(0.16, abs=0.02)
    # The same local hour is a different UTC hour after the change.
    nine_before = datetime(2027, 3, 20, 9, tzinfo=BERLIN).utcoffset()
    nine_after = datetime(2027, 4, 3, 9, tzinfo=BERLIN).utcoffset()
    assert nine_before != nine_after


def test_an_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown scenario 'spiky': use one of rises, falls"):
        scenario("spiky", WINDOW)


def test_a_shorter_series_keeps_its_shape() -> None:
    case = scenario("rises", WINDOW, days=7)
    assert len(case.samples) == 7 * 288
    assert _mean(_between(case, 0, 2.4)) == pytest.approx(0.12, abs=0.01)
    assert _mean(_between(case, 2.6, 7)) == pytest.approx(0.6, abs=0.02)


def test_the_benchmark_runs_a_short_scenario_end_to_end() -> None:
    done = subprocess.run(
        [
            sys.executable, str(REPO / "bench" / "decision_quality.py"), "--no-traces",
            "--scenarios", "failing-nights", "--scenario-days", "8", "--table", "--check",
        ],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    line = json.loads(out[0])
    assert line["scenario"] == "failing-nights"
    assert line["placement"] == "nightly-enrichment"
    assert line["failing_nights"] == 3
    assert line["days"] == 8
    assert line["missed_windows"] == (
        line["missed_windows_load"] + line["missed_windows_failed_jobs"]
    )
    assert line["missed_windows_failed_jobs"] <= 3
    assert line["saving_oracle"] > 0
    for key in ("captured_share", "fallbacks", "mode_changes", "oracle_mode_changes"):
        assert key in line
    assert "| failing-nights x nightly-enrichment |" in done.stdout
    verdict = out[-1]
    assert verdict.startswith(("PASS failing-nights", "FAIL failing-nights")), verdict


def test_the_timeline_piped_into_a_reader_that_stops_exits_quietly() -> None:
    """`bench/timeline.py bursty | head`: the reader gone before the output is written (its
    end of the pipe closed at once) is no traceback and no failure."""
    process = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "timeline.py"), "bursty", "--days", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    with process.stderr:
        err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0, err
    assert "BrokenPipeError" not in err and "Traceback" not in err
