"""The placement's daemon between evaluations (with --peering; standalone, the scheduler:
test_scheduler.py): it sleeps until its placement is due (no look every tick), wakes at once
for a spec change, tries a failed evaluation again a tick later, and still ends at once when
kopf stops it (deletion, shutdown, peering)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import kopf
import pytest
from kopf._cogs.aiokits.aioenums import AsyncFlagWaiter, FlagSetter

from placement.adapters.telemetry import Telemetry
from placement.core.labels import FINALIZER
from placement.runtime import handlers
from placement.runtime.config import OperatorConfig
from placement.runtime.handlers import RECORD_SPEC, Daemons, register
from placement.runtime.slots import Slots

# Daemons are for several replicas: kopf stops them on the paused one.
PEERING = "placement-operator"


def _body() -> kopf.Body:
    raw = {"metadata": {"name": "p", "namespace": "ml", "generation": 1}}
    return kopf.Body(cast(kopf.RawBody, raw))


def _daemon() -> Any:
    registry = kopf.OperatorRegistry()
    register(
        registry,
        OperatorConfig(prometheus_url="http://127.0.0.1:9090", tick_seconds=60, peering=PEERING),
    )
    (handler,) = [h for h in registry._spawning.get_all_handlers() if h.id == "reconcile"]
    return handler.fn


def test_a_daemon_waiting_for_its_tick_ends_when_stopped() -> None:
    async def scenario() -> float:
        setter: FlagSetter[Any] = FlagSetter()
        memo = kopf.Memo()
        # Evaluated already and not due for an hour: the daemon only waits.
        memo.evaluated_generation = 1
        memo.next_evaluation = time.monotonic() + 3600
        body = _body()
        daemon = asyncio.create_task(
            _daemon()(
                body=body,
                memo=memo,
                logger=logging.getLogger("test"),
                stopped=AsyncFlagWaiter(setter),
            )
        )
        await asyncio.sleep(0.05)
        assert not daemon.done()  # waiting for its 60 s tick
        started = time.monotonic()
        setter.set()
        await asyncio.wait_for(daemon, timeout=5)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 1.0  # at once, not at the next tick


def test_a_daemon_leaves_no_task_behind() -> None:
    async def scenario() -> int:
        setter: FlagSetter[Any] = FlagSetter()
        memo = kopf.Memo()
        memo.evaluated_generation = 1
        memo.next_evaluation = time.monotonic() + 3600
        body = _body()
        before = len(asyncio.all_tasks())
        daemon = asyncio.create_task(
            _daemon()(
                body=body,
                memo=memo,
                logger=logging.getLogger("test"),
                stopped=AsyncFlagWaiter(setter),
            )
        )
        await asyncio.sleep(0.05)
        daemon.cancel()  # as kopf does with a daemon that does not exit in time
        await asyncio.gather(daemon, return_exceptions=True)
        await asyncio.sleep(0)
        return len(asyncio.all_tasks()) - before

    assert asyncio.run(scenario()) == 0


class Evaluations:
    """The evaluation slots, counting the evaluations that start; each then fails (no cluster
    here), as a request that timed out would."""

    def __init__(self) -> None:
        self.started = 0

    @contextlib.asynccontextmanager
    async def slot(self, *, first: bool = False) -> AsyncIterator[None]:
        self.started += 1
        raise RuntimeError("no cluster in this test")
        yield


class Running:
    """A placement's daemon as kopf runs it, with its handlers and what it counted."""

    def __init__(self, tick: float, *, due_in: float) -> None:
        self.registry = kopf.OperatorRegistry()
        self.daemons = Daemons()
        self.telemetry = register(
            self.registry,
            OperatorConfig(
                prometheus_url="http://127.0.0.1:9090", tick_seconds=tick, peering=PEERING
            ),
            telemetry=Telemetry(),
            daemons=self.daemons,
        )
        self.setter: FlagSetter[Any] = FlagSetter()
        self.evaluations = Evaluations()
        self.memo = kopf.Memo()
        self.memo.evaluation_slots = self.evaluations
        self.memo.evaluated_generation = 1  # evaluated already
        self.memo.next_evaluation = time.monotonic() + due_in
        self.raw: dict[str, Any] = {"metadata": {"name": "p", "namespace": "ml", "generation": 1}}
        self.body = kopf.Body(cast(kopf.RawBody, self.raw))
        self.task: asyncio.Task[None] | None = None

    def handler(self, kind: Any, id: str) -> Any:
        (handler,) = [h for h in kind.get_all_handlers() if h.id == id]
        return handler

    def start(self) -> None:
        daemon = self.handler(self.registry._spawning, "reconcile").fn
        self.task = asyncio.create_task(
            daemon(
                body=self.body,
                memo=self.memo,
                logger=logging.getLogger("test"),
                stopped=AsyncFlagWaiter(self.setter),
            )
        )

    def wakeups(self, found: str) -> float:
        value = self.telemetry.registry.get_sample_value(
            "placement_daemon_wakeups_total", {"found": found}
        )
        return value or 0.0

    async def stop(self) -> None:
        self.setter.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, timeout=5)


async def _until(condition: Any, timeout: float = 5.0) -> float:
    """Seconds until `condition()` holds (a few ms of polling by the test, not the daemon)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "not within the timeout"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


def test_a_daemon_with_nothing_due_does_not_wake_at_every_tick() -> None:
    async def scenario() -> tuple[float, float, int]:
        running = Running(tick=0.01, due_in=3600)
        running.start()
        await asyncio.sleep(0.5)  # 50 ticks: it used to look at each
        await running.stop()
        return running.wakeups("not-due"), running.wakeups("due"), running.evaluations.started

    assert asyncio.run(scenario()) == (0.0, 0.0, 0)


def test_a_daemon_wakes_when_its_placement_is_due_not_at_the_next_tick() -> None:
    async def scenario() -> tuple[float, float]:
        running = Running(tick=60, due_in=0.2)
        running.start()
        waited = await _until(lambda: running.evaluations.started == 1)
        await running.stop()
        return waited, running.wakeups("not-due")

    waited, not_due = asyncio.run(scenario())
    assert waited < 5  # at its due time, not a 60 s tick later
    assert not_due == 0


def test_a_spec_change_wakes_the_daemon_at_once() -> None:
    async def scenario() -> tuple[float, int]:
        running = Running(tick=60, due_in=3600)
        running.start()
        await asyncio.sleep(0.05)
        assert running.evaluations.started == 0
        running.raw["metadata"]["generation"] = 2
        await running.handler(running.registry._changing, "spec-changed/spec").fn(
            body=running.body, memo=running.memo
        )
        waited = await _until(lambda: running.evaluations.started >= 1)
        await running.stop()
        return waited, running.evaluations.started

    waited, evaluations = asyncio.run(scenario())
    assert waited < 5  # not after the hour, nor after the 60 s tick
    assert evaluations == 1  # it failed here: the next try is a tick (60 s) later


def test_an_event_with_a_generation_not_evaluated_wakes_the_daemon() -> None:
    """A spec change kopf's spec-changed handler does not report (e.g. one that came before
    kopf recorded the spec) still wakes the daemon: every event of the placement is looked at."""

    async def scenario() -> tuple[float, float]:
        running = Running(tick=60, due_in=3600)
        running.start()
        await asyncio.sleep(0.05)
        looks = running.handler(running.registry._watching, RECORD_SPEC).when
        looks(body=running.body, type="MODIFIED", memo=running.memo)  # the same generation
        await asyncio.sleep(0.05)
        assert running.evaluations.started == 0
        running.raw["metadata"]["generation"] = 2
        looks(body=running.body, type="MODIFIED", memo=running.memo)
        waited = await _until(lambda: running.evaluations.started == 1)
        await running.stop()
        return waited, running.wakeups("not-due")

    waited, not_due = asyncio.run(scenario())
    assert waited < 5
    assert not_due == 0  # the event of the same generation did not wake it


def test_a_failed_evaluation_is_tried_again_a_tick_later() -> None:
    async def scenario() -> int:
        running = Running(tick=0.1, due_in=0)
        running.start()
        await _until(lambda: running.evaluations.started >= 3)
        await running.stop()
        return running.evaluations.started

    assert asyncio.run(scenario()) >= 3


def test_a_daemon_woken_and_stopped_ends_at_once() -> None:
    async def scenario() -> float:
        running = Running(tick=60, due_in=3600)
        running.start()
        await asyncio.sleep(0.05)
        await running.handler(running.registry._changing, "spec-changed/spec").fn(
            body=running.body, memo=running.memo
        )
        await _until(lambda: running.evaluations.started == 1)
        started = time.monotonic()
        await running.stop()  # asleep for its retry, a 60 s tick away
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 1.0


def test_an_enforce_placement_is_not_evaluated_before_its_finalizer_is_on() -> None:
    """kopf starts the daemon in the event cycle that sends the finalizer; a scale-down before
    it lands would be left in place by a deletion then. The event bringing it wakes the daemon."""

    async def scenario() -> tuple[int, float]:
        running = Running(tick=60, due_in=0)
        running.memo.evaluated_generation = None  # a new placement
        running.raw["spec"] = {"mode": "Enforce"}
        running.start()
        await asyncio.sleep(0.1)
        before = running.evaluations.started
        running.raw["metadata"]["finalizers"] = [FINALIZER]  # kopf's patch, seen by its watch
        looks = running.handler(running.registry._watching, RECORD_SPEC).when
        looks(body=running.body, type="MODIFIED", memo=running.memo)
        waited = await _until(lambda: running.evaluations.started == 1)
        await running.stop()
        return before, waited

    before, waited = asyncio.run(scenario())
    assert before == 0
    assert waited < 5  # at the event, not a 60 s tick later


def test_a_new_recommend_placement_waits_for_its_finalizer_but_not_for_ever(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Its first status write would land between kopf's read and kopf's conditional patch of
    the finalizer (refused, sent again): it waits for the event bringing the finalizer. It
    changes nothing, so past FINALIZER_PATIENCE it is evaluated without it."""

    async def scenario(with_finalizer: bool) -> tuple[int, float]:
        running = Running(tick=0.02 if not with_finalizer else 60, due_in=0)
        running.memo.evaluated_generation = None
        running.raw["spec"] = {"mode": "Recommend"}
        running.start()
        await asyncio.sleep(0.1)
        before = running.evaluations.started
        if with_finalizer:
            running.raw["metadata"]["finalizers"] = [FINALIZER]
            looks = running.handler(running.registry._watching, RECORD_SPEC).when
            looks(body=running.body, type="MODIFIED", memo=running.memo)
        waited = await _until(lambda: running.evaluations.started >= 1)
        await running.stop()
        return before, waited

    monkeypatch.setattr(handlers, "FINALIZER_PATIENCE", 0.3)
    before, waited = asyncio.run(scenario(with_finalizer=True))
    assert before == 0
    assert waited < 5  # at the event, not a 60 s tick later
    with caplog.at_level(logging.WARNING):
        before, waited = asyncio.run(scenario(with_finalizer=False))
    assert before == 0
    assert waited < 5  # past its patience, evaluated anyway
    assert not [r for r in caplog.records if "not evaluated for" in r.getMessage()]


class Writes:
    """The status writes, as kubeaio answers them: the resourceVersion each made."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.made = 0

    async def patch_placement_status(self, namespace: str, name: str, status: Any) -> str:
        self.made += 1
        return self.version


def _evaluating(running: Running, monkeypatch: pytest.MonkeyPatch) -> Writes:
    """Evaluations that succeed, each deciding a status due again in 20 ms, written through
    the real status write to `Writes` (resourceVersion 12)."""

    async def evaluate(body: Any, patch: kopf.Patch, *_: Any, **__: Any) -> float:
        running.evaluations.started += 1
        patch.status["phase"] = "Realtime"
        return 0.02

    monkeypatch.setattr(handlers, "evaluate_async", evaluate)
    writes = Writes("12")
    running.memo.evaluation_slots = Slots(1)
    running.memo.kube = writes
    running.memo.metrics = running.memo.blocking = None
    running.raw["metadata"]["resourceVersion"] = "10"
    return writes


def test_a_placement_is_not_evaluated_again_before_its_body_shows_its_last_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Evaluated on a body without its own last status write, a placement would decide and
    write the same again. It sleeps until the event that brings the write (no look before)."""

    async def scenario() -> tuple[int, int, float, float]:
        running = Running(tick=60, due_in=0)
        writes = _evaluating(running, monkeypatch)
        running.start()
        await _until(lambda: writes.made == 1)
        await asyncio.sleep(0.3)  # due again 20 ms after the write: 15 times over
        evaluated, made = running.evaluations.started, writes.made
        woke = running.wakeups("due") + running.wakeups("not-due")
        looks = running.handler(running.registry._watching, RECORD_SPEC).when
        running.raw["metadata"]["resourceVersion"] = "11"  # someone else's, before ours
        looks(body=running.body, type="MODIFIED", memo=running.memo)
        await asyncio.sleep(0.05)
        assert running.evaluations.started == 1
        running.raw["metadata"]["resourceVersion"] = "12"  # the event of its own write
        looks(body=running.body, type="MODIFIED", memo=running.memo)
        waited = await _until(lambda: running.evaluations.started == 2)
        await running.stop()
        return evaluated, made, woke, waited

    evaluated, made, woke, waited = asyncio.run(scenario())
    assert (evaluated, made) == (1, 1)
    assert woke <= 1  # once, at its due time, then asleep until the event
    assert waited < 5


def test_a_write_that_never_shows_holds_the_placement_only_so_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(handlers, "WRITE_PATIENCE", 0.2)

    async def scenario() -> int:
        running = Running(tick=60, due_in=0)
        _evaluating(running, monkeypatch)
        running.start()
        await _until(lambda: running.evaluations.started >= 3, timeout=5)
        await running.stop()
        return running.evaluations.started

    assert asyncio.run(scenario()) >= 3  # one per WRITE_PATIENCE, the body never caught up


def test_a_placement_left_without_its_finalizer_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(handlers, "FINALIZER_PATIENCE", 0.05)

    async def scenario() -> int:
        running = Running(tick=0.02, due_in=0)
        running.memo.evaluated_generation = None
        running.raw["spec"] = {"mode": "Enforce"}
        running.start()
        await asyncio.sleep(0.3)  # many ticks past its patience
        await running.stop()
        return running.evaluations.started

    with caplog.at_level(logging.WARNING):
        assert asyncio.run(scenario()) == 0
    warnings = [r.getMessage() for r in caplog.records if "not evaluated for" in r.getMessage()]
    assert len(warnings) == 1
    assert FINALIZER in warnings[0] and "may patch placements" in warnings[0]


class Interrupted:
    """An evaluation still running when the operator shuts down: it fails on the closed
    Prometheus threads once the test lets it go on."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.go_on = asyncio.Event()

    @contextlib.asynccontextmanager
    async def slot(self, *, first: bool = False) -> AsyncIterator[None]:
        self.started.set()
        await self.go_on.wait()
        raise RuntimeError("cannot schedule new futures after shutdown")
        yield


@pytest.mark.parametrize("ended_by", ["stop", "cleanup"])
def test_an_evaluation_cut_short_by_the_shutdown_logs_no_error(
    ended_by: str, caplog: pytest.LogCaptureFixture
) -> None:
    """At 10,000 placements a SIGTERM used to log one traceback per evaluation in flight."""

    async def scenario() -> None:
        running = Running(tick=60, due_in=0)
        interrupted = Interrupted()
        running.memo.evaluation_slots = interrupted
        running.start()
        await asyncio.wait_for(interrupted.started.wait(), timeout=5)
        if ended_by == "stop":
            running.setter.set()
        else:  # kopf's cleanup closes the clients while the evaluation still runs
            cleanup = running.handler(running.registry._activities, "close-clients").fn
            await cleanup(memo=kopf.Memo())
        interrupted.go_on.set()
        assert running.task is not None
        await asyncio.wait_for(running.task, timeout=5)

    with caplog.at_level(logging.DEBUG, logger="test"):
        asyncio.run(scenario())
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("ended by the stop" in r.getMessage() for r in caplog.records)


def test_a_job_of_the_placement_that_ends_wakes_its_daemon_to_evaluate() -> None:
    """A failed night is acted on at once (the fallback), not up to an evaluationInterval
    later; another placement's Job wakes nobody else."""

    async def scenario() -> tuple[float, int, int]:
        running = Running(tick=60, due_in=3600)
        running.start()
        await _until(lambda: len(running.daemons) == 1)
        running.daemons.job_ended("ml", "someone-else")
        await asyncio.sleep(0.05)
        assert running.evaluations.started == 0
        running.daemons.job_ended("ml", "p")
        waited = await _until(lambda: running.evaluations.started == 1)
        await asyncio.sleep(0.05)
        started = running.evaluations.started  # once: the flag is cleared as it evaluates
        await running.stop()
        return waited, started, len(running.daemons)

    waited, started, left = asyncio.run(scenario())
    assert waited < 5  # not after the hour, nor after the 60 s tick
    assert started == 1
    assert left == 0  # a stopped daemon is no longer woken


def test_the_stop_waiter_is_one_task_done_when_kopf_stops_the_daemon() -> None:
    # kopf's own `stopped.wait()` is two tasks and five coroutines kept for the daemon's life
    # (2.5 KB a placement); the waiter for the stopper's event is one task.
    async def scenario() -> tuple[int, bool, bool]:
        setter: FlagSetter[Any] = FlagSetter()
        before = len(asyncio.all_tasks())
        waiter = handlers.stop_waiter(AsyncFlagWaiter(setter))
        await asyncio.sleep(0.01)
        tasks = len(asyncio.all_tasks()) - before
        waiting = not waiter.done()
        setter.set()
        await asyncio.wait_for(waiter, timeout=5)
        return tasks, waiting, waiter.done()

    assert asyncio.run(scenario()) == (1, True, True)


def test_without_kopfs_stopper_event_the_stop_waiter_is_kopfs_own() -> None:
    class Stopped:  # a kopf release without `_setter.async_event`
        def __init__(self) -> None:
            self.event = asyncio.Event()

        async def wait(self) -> None:
            await self.event.wait()

    async def scenario() -> bool:
        stopped = Stopped()
        waiter = handlers.stop_waiter(cast(kopf.DaemonStopped, stopped))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        stopped.event.set()
        await asyncio.wait_for(waiter, timeout=5)
        return waiter.done()

    assert asyncio.run(scenario())


def test_kopf_lists_placements_in_pages() -> None:
    # A list of every placement at once (kopf's default) is decoded whole with managedFields
    # when kopf's watch cannot resume: about 20-47 KB a placement until the last is queued.
    settings = kopf.OperatorSettings()
    config = OperatorConfig(prometheus_url="http://127.0.0.1:9090", watch_timeout_seconds=120)
    handlers.configure_watching(settings, config)
    assert settings.watching.chunk_size == handlers.LIST_CHUNK == 500
    assert (settings.watching.server_timeout, settings.watching.client_timeout) == (120, 150)
