"""Standalone, one scheduler evaluates every placement (no kopf daemon per placement): fed by
kopf's watch events, it evaluates each placement at start, at its due time (no look every
tick), at once for a spec change, a new generation or the end of its Job, a tick after a
failure, not before kopf's finalizer or its own last status write shows, never after its
deletion, and stops at shutdown without a word per placement."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import kopf
import pytest

from placement.adapters.telemetry import Telemetry
from placement.core.labels import FINALIZER
from placement.runtime import handlers, scheduler
from placement.runtime.config import OperatorConfig
from placement.runtime.handlers import RECORD_SPEC, register
from placement.runtime.scheduler import Scheduler, Tracked
from placement.runtime.slots import Slots


class Evaluations:
    """The evaluation slots, counting the evaluations that start, by placement; each then fails
    (no cluster here), as a request that timed out would. `hold`: evaluations wait for it."""

    def __init__(self) -> None:
        self.started: list[bool] = []  # whether each was a first evaluation
        self.hold: asyncio.Event | None = None
        self.gone = False  # each fails as a status write that finds no placement (404)

    @contextlib.asynccontextmanager
    async def slot(self, *, first: bool = False) -> AsyncIterator[None]:
        self.started.append(first)
        if self.hold is not None:
            await self.hold.wait()
        if self.gone:
            raise handlers.PlacementGone("ml/p")
        raise RuntimeError("no cluster in this test")
        yield


class Standalone:
    """The operator's handlers standalone (no --peering), as kopf runs them: watch events go
    through the event handler's filter, as kopf calls it for every event."""

    def __init__(self, tick: float, **options: Any) -> None:
        self.registry = kopf.OperatorRegistry()
        config = OperatorConfig(
            prometheus_url="http://127.0.0.1:9090", tick_seconds=tick, **options
        )
        self.scheduler = handlers.new_scheduler(config)
        self.telemetry = register(
            self.registry, config, telemetry=Telemetry(), scheduler=self.scheduler
        )
        self.evaluations = Evaluations()
        self.memo = kopf.Memo()  # the operator's: its clients and slots (kopf's startup)
        self.memo.evaluation_slots = self.evaluations
        self.scheduler.shared = self.memo
        self.scheduler.logger_for = lambda body: logging.getLogger("test")
        self.raw: dict[str, Any] = {
            "metadata": {"name": "p", "namespace": "ml", "generation": 1, "resourceVersion": "1"}
        }

    def handler(self, kind: Any, id: str) -> Any:
        (handler,) = [h for h in kind.get_all_handlers() if h.id == id]
        return handler

    def body(self) -> kopf.Body:
        return kopf.Body(cast(kopf.RawBody, copy.deepcopy(self.raw)))

    def event(self, type: str | None = "MODIFIED", raw: dict[str, Any] | None = None) -> None:
        """A watch event (type None: listed at the start), each with a body of its own."""
        body = kopf.Body(cast(kopf.RawBody, copy.deepcopy(raw or self.raw)))
        self.handler(self.registry._watching, RECORD_SPEC).when(
            body=body, type=type, memo=kopf.Memo()
        )

    def evaluated(self, *, due_in: float) -> Tracked:
        """The placement known and evaluated already, due in `due_in` seconds."""
        self.event(type=None)
        tracked = self.scheduler.get(("ml", "p"))
        assert tracked is not None
        tracked.evaluated_generation = self.raw["metadata"]["generation"]
        tracked.next_evaluation = time.monotonic() + due_in
        return tracked

    def wakeups(self, found: str) -> float:
        value = self.telemetry.registry.get_sample_value(
            "placement_daemon_wakeups_total", {"found": found}
        )
        return value or 0.0

    async def shutdown(self) -> None:
        await self.handler(self.registry._activities, "close-clients").fn(memo=kopf.Memo())


async def _until(condition: Any, timeout: float = 5.0) -> float:
    """Seconds until `condition()` holds (a few ms of polling by the test, not the operator)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "not within the timeout"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


def test_every_placement_listed_at_the_start_is_evaluated_once_each() -> None:
    async def scenario() -> tuple[list[bool], int]:
        running = Standalone(tick=60)
        for name in ("a", "b", "c"):
            raw = copy.deepcopy(running.raw)
            raw["metadata"]["name"] = name
            raw["metadata"]["finalizers"] = [FINALIZER]
            running.event(type=None, raw=raw)
        await _until(lambda: len(running.evaluations.started) == 3)
        await asyncio.sleep(0.1)
        await running.shutdown()
        return running.evaluations.started, len(running.scheduler)

    started, tracked = asyncio.run(scenario())
    assert started == [True, True, True]  # each a first evaluation, once (retried a tick later)
    assert tracked == 3


def test_placements_are_tracked_without_a_task_each() -> None:
    async def scenario() -> tuple[int, int]:
        running = Standalone(tick=60)
        before = len(asyncio.all_tasks())
        running.event(type=None)
        first = len(asyncio.all_tasks()) - before
        for index in range(500):
            raw = copy.deepcopy(running.raw)
            raw["metadata"]["name"] = f"p{index}"
            running.event(type=None, raw=raw)
        tasks = len(asyncio.all_tasks()) - before
        await running.shutdown()
        return first, tasks

    first, tasks = asyncio.run(scenario())
    assert first == tasks  # the workers, whatever the number of placements


def test_nothing_due_is_not_looked_at_every_tick() -> None:
    async def scenario() -> tuple[float, float, int]:
        running = Standalone(tick=0.01)
        running.evaluated(due_in=3600)
        await asyncio.sleep(0.5)  # 50 ticks
        await running.shutdown()
        return running.wakeups("not-due"), running.wakeups("due"), len(running.evaluations.started)

    assert asyncio.run(scenario()) == (0.0, 0.0, 0)


def test_a_placement_is_evaluated_at_its_due_time_not_at_the_next_tick() -> None:
    async def scenario() -> tuple[float, list[bool]]:
        running = Standalone(tick=60)
        running.evaluated(due_in=0.2)
        waited = await _until(lambda: len(running.evaluations.started) == 1)
        await running.shutdown()
        return waited, running.evaluations.started

    waited, started = asyncio.run(scenario())
    assert 0.1 < waited < 5  # at its due time, not at once, nor a 60 s tick later
    assert started == [False]  # a re-evaluation


def test_a_spec_change_is_evaluated_at_once() -> None:
    async def scenario() -> tuple[float, list[bool]]:
        running = Standalone(tick=60)
        running.evaluated(due_in=3600)
        await asyncio.sleep(0.05)
        assert running.evaluations.started == []
        running.raw["metadata"]["generation"] = 2
        body = running.body()
        running.event()  # the event brings it first, then kopf's spec-changed handler
        changed = running.handler(running.registry._changing, "spec-changed/spec").fn
        await changed(body=body, memo=kopf.Memo())
        waited = await _until(lambda: len(running.evaluations.started) >= 1)
        await asyncio.sleep(0.05)
        await running.shutdown()
        return waited, running.evaluations.started

    waited, started = asyncio.run(scenario())
    assert waited < 5  # not after the hour, nor after the 60 s tick
    assert started == [True]  # once, as a new spec (its retry is a tick later)


def test_an_event_with_a_generation_not_evaluated_has_it_evaluated_at_once() -> None:
    async def scenario() -> tuple[float, float]:
        running = Standalone(tick=60)
        running.evaluated(due_in=3600)
        running.event()  # the same generation
        await asyncio.sleep(0.05)
        assert running.evaluations.started == []
        running.raw["metadata"]["generation"] = 2
        running.event()
        waited = await _until(lambda: len(running.evaluations.started) == 1)
        await running.shutdown()
        return waited, running.wakeups("not-due")

    waited, not_due = asyncio.run(scenario())
    assert waited < 5
    assert not_due == 0  # the event of the same generation did not wake it


def test_a_spec_change_during_an_evaluation_is_evaluated_right_after_it() -> None:
    async def scenario() -> list[bool]:
        running = Standalone(tick=60)
        running.evaluations.hold = asyncio.Event()
        running.evaluated(due_in=0)
        await _until(lambda: len(running.evaluations.started) == 1)
        running.raw["metadata"]["generation"] = 2
        running.event()  # while the evaluation of generation 1 runs
        running.evaluations.hold.set()
        await _until(lambda: len(running.evaluations.started) == 2)
        await running.shutdown()
        return running.evaluations.started

    assert asyncio.run(scenario()) == [False, True]  # not a 60 s tick (or an interval) later


def test_a_failed_evaluation_is_tried_again_a_tick_later() -> None:
    async def scenario() -> int:
        running = Standalone(tick=0.1)
        running.evaluated(due_in=0)
        await _until(lambda: len(running.evaluations.started) >= 3)
        await running.shutdown()
        return len(running.evaluations.started)

    assert asyncio.run(scenario()) >= 3


def test_a_job_of_the_placement_that_ends_has_it_evaluated_at_once() -> None:
    """A failed night is acted on at once (the fallback), not up to an evaluationInterval
    later; another placement's Job wakes nobody else."""

    async def scenario() -> tuple[float, int]:
        running = Standalone(tick=60)
        running.evaluated(due_in=3600)
        await asyncio.sleep(0.05)
        running.scheduler.job_ended("ml", "someone-else")
        await asyncio.sleep(0.05)
        assert running.evaluations.started == []
        running.scheduler.job_ended("ml", "p")
        waited = await _until(lambda: len(running.evaluations.started) == 1)
        await asyncio.sleep(0.05)
        await running.shutdown()
        return waited, len(running.evaluations.started)

    waited, started = asyncio.run(scenario())
    assert waited < 5  # not after the hour, nor after the 60 s tick
    assert started == 1  # once: the flag is cleared as it evaluates


def test_an_enforce_placement_is_not_evaluated_before_its_finalizer_is_on() -> None:
    async def scenario() -> tuple[int, float]:
        running = Standalone(tick=60)
        running.raw["spec"] = {"mode": "Enforce"}
        running.event(type="ADDED")
        await asyncio.sleep(0.1)
        before = len(running.evaluations.started)
        running.raw["metadata"]["finalizers"] = [FINALIZER]  # kopf's patch, seen by its watch
        running.raw["metadata"]["resourceVersion"] = "2"
        running.event()
        waited = await _until(lambda: len(running.evaluations.started) == 1)
        await running.shutdown()
        return before, waited

    before, waited = asyncio.run(scenario())
    assert before == 0
    assert waited < 5  # at the event, not a 60 s tick later


def _count_looks(running: Standalone) -> list[int]:
    """The looks at placements from now on (one number, in a list to read it later)."""
    looks = [0]
    step = running.scheduler.step
    assert step is not None

    async def counted(tracked: Tracked) -> float | None:
        looks[0] += 1
        assert step is not None
        return await step(tracked)

    running.scheduler.step = counted
    return looks


@pytest.mark.parametrize("mode", ["Enforce", "Recommend"])
def test_a_placement_waiting_for_its_finalizer_is_not_looked_at_again_until_its_event(
    mode: str,
) -> None:
    """At a bulk apply kopf's patches of the finalizer lag: a look at every tick of each
    placement still without it made most of the looks at 10,000 (docs/scaling.md, stop 20),
    queued with the new placements ready to evaluate. The event bringing it wakes it."""

    async def scenario() -> tuple[int, int, float]:
        running = Standalone(tick=0.01)
        looks = _count_looks(running)
        running.raw["spec"] = {"mode": mode}
        running.event(type="ADDED")
        running.event()  # another event of the same generation (e.g. kopf's own write)
        await asyncio.sleep(0.3)  # 30 ticks
        looked, started = looks[0], len(running.evaluations.started)
        running.raw["metadata"]["finalizers"] = [FINALIZER]
        running.raw["metadata"]["resourceVersion"] = "2"
        running.event()
        waited = await _until(lambda: len(running.evaluations.started) == 1)
        await running.shutdown()
        return looked, started, waited

    looked, started, waited = asyncio.run(scenario())
    assert started == 0
    assert looked <= 2  # its first event, perhaps the second: not one per tick
    assert waited < 5


def test_an_enforce_placement_that_never_gets_its_finalizer_is_still_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No look every tick, but the warning still comes after FINALIZER_PATIENCE, once, and
    the placement is never evaluated; a Recommend one is evaluated then, without a warning."""
    monkeypatch.setattr(handlers, "FINALIZER_PATIENCE", 0.2)

    async def scenario(mode: str) -> tuple[int, int, float]:
        running = Standalone(tick=0.01)
        looks = _count_looks(running)
        running.raw["spec"] = {"mode": mode}
        running.event(type="ADDED")
        started = time.monotonic()
        if mode == "Enforce":
            await _until(lambda: any("not evaluated for" in r.getMessage() for r in caplog.records))
            waited = time.monotonic() - started
            await asyncio.sleep(0.1)  # 10 ticks more
        else:  # its evaluation fails here (no cluster), and is tried again each tick
            await _until(lambda: len(running.evaluations.started) == 1)
            waited = time.monotonic() - started
        looked = looks[0]
        await running.shutdown()
        return looked, len(running.evaluations.started), waited

    with caplog.at_level(logging.WARNING):
        looked, evaluated, waited = asyncio.run(scenario("Enforce"))
    warnings = [r.getMessage() for r in caplog.records if "not evaluated for" in r.getMessage()]
    assert len(warnings) == 1 and FINALIZER in warnings[0]
    assert evaluated == 0
    assert 0.15 < waited < 5  # at its patience's end
    assert looked <= 3  # its event, the look at the end of its patience: not one per tick
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        looked, evaluated, waited = asyncio.run(scenario("Recommend"))
    assert evaluated == 1  # it changes nothing: evaluated past its patience
    assert 0.15 < waited < 5
    assert looked <= 3
    assert not [r for r in caplog.records if "not evaluated for" in r.getMessage()]


def test_the_finalizer_put_back_has_a_placement_waiting_for_it_evaluated_at_once() -> None:
    """An Enforce placement evaluated before, its finalizer taken off (the same generation):
    it waits for it, and the event that shows it again wakes it (not FINALIZER_PATIENCE)."""

    async def scenario() -> tuple[int, float]:
        running = Standalone(tick=60)
        running.raw["spec"] = {"mode": "Enforce"}
        tracked = running.evaluated(due_in=0)  # no finalizer on it: held back at its look
        await _until(lambda: tracked.looked)
        await asyncio.sleep(0.05)
        held = len(running.evaluations.started)
        running.raw["metadata"]["finalizers"] = [FINALIZER]
        running.raw["metadata"]["resourceVersion"] = "2"
        running.event()
        waited = await _until(lambda: len(running.evaluations.started) == 1)
        await running.shutdown()
        return held, waited

    held, waited = asyncio.run(scenario())
    assert held == 0
    assert waited < 5


class Writes:
    """The status writes, as kubeaio answers them: the resourceVersion each made."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.made = 0

    async def patch_placement_status(self, namespace: str, name: str, status: Any) -> str:
        self.made += 1
        return self.version


def test_a_placement_is_not_evaluated_again_before_its_body_shows_its_last_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Evaluated on a body without its own last status write, a placement would decide and
    write the same again: it waits for the event that brings the write."""
    evaluated = 0

    async def evaluate(body: Any, patch: kopf.Patch, *_: Any, **__: Any) -> float:
        nonlocal evaluated
        evaluated += 1
        patch.status["phase"] = "Realtime"
        return 0.02  # due again in 20 ms

    monkeypatch.setattr(handlers, "evaluate_async", evaluate)

    async def scenario() -> tuple[int, int, float]:
        running = Standalone(tick=60)
        writes = Writes("12")
        running.memo.evaluation_slots = Slots(1)
        running.memo.kube = writes
        running.memo.metrics = running.memo.blocking = None
        running.raw["metadata"]["resourceVersion"] = "10"
        running.evaluated(due_in=0)
        await _until(lambda: writes.made == 1)
        await asyncio.sleep(0.3)  # due again 20 ms after the write: 15 times over
        first = (evaluated, writes.made)
        running.raw["metadata"]["resourceVersion"] = "11"  # someone else's, before ours
        running.event()
        await asyncio.sleep(0.05)
        assert evaluated == 1
        running.raw["metadata"]["resourceVersion"] = "12"  # the event of its own write
        running.event()
        waited = await _until(lambda: evaluated == 2)
        await running.shutdown()
        return first[0], first[1], waited

    evaluations, made, waited = asyncio.run(scenario())
    assert (evaluations, made) == (1, 1)
    assert waited < 5


class HeldWrites:
    """Status writes that wait for `release`: the placements whose writes started, and ended."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[str] = []
        self.release = asyncio.Event()

    async def patch_placement_status(self, namespace: str, name: str, status: Any) -> None:
        self.started.append(name)
        await self.release.wait()
        self.ended.append(name)


def _record_evaluations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Evaluations stubbed: each records its placement and decides Realtime for an hour."""
    evaluated: list[str] = []

    async def evaluate(body: Any, patch: kopf.Patch, *_: Any, **__: Any) -> float:
        evaluated.append(body["metadata"]["name"])
        patch.status["phase"] = "Realtime"
        return 3600.0

    monkeypatch.setattr(handlers, "evaluate_async", evaluate)
    return evaluated


def _one_worker_one_write() -> tuple[Standalone, HeldWrites]:
    """One worker, one connection, status writes held until released."""
    running = Standalone(tick=60, workers=1, api_connections=1)
    writes = HeldWrites()
    running.memo.evaluation_slots = Slots(1, first_size=2)  # as kopf's startup makes them
    running.memo.kube = writes
    running.memo.metrics = running.memo.blocking = None
    return running, writes


def test_a_first_evaluation_lets_its_worker_go_for_its_status_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At a bulk apply of 10,000 a worker was held through its placement's status write, whose
    round trip (0.5-1.1 s, the evaluation about 10 ms) was most of each first decision: the
    next new placement is evaluated while the write is under way. The placement itself is not
    looked at again before its write ends, and no more writes are in flight than connections."""
    evaluated = _record_evaluations(monkeypatch)

    async def scenario() -> tuple[list[str], list[str], list[str], list[str], list[str]]:
        running, writes = _one_worker_one_write()
        raws = {}
        for name in ("a", "b"):
            raws[name] = raw = copy.deepcopy(running.raw)
            raw["metadata"]["name"] = name
            raw["metadata"]["finalizers"] = [FINALIZER]
            running.event(type=None, raw=raw)
        await _until(lambda: evaluated == ["a", "b"])  # b while a's write is held
        raws["a"]["metadata"]["generation"] = 2  # a spec change while a's write runs
        running.event(raw=raws["a"])
        await asyncio.sleep(0.1)
        during = (list(evaluated), list(writes.started))
        writes.release.set()
        await _until(lambda: len(writes.ended) == 3)
        await running.shutdown()
        return *during, evaluated, sorted(writes.ended), list(running.evaluations.started)

    during, writing, evaluated_all, ended, _ = asyncio.run(scenario())
    assert during == ["a", "b"]  # a not again before its write ends
    assert writing == ["a"]  # b's write waits for the one connection
    assert evaluated_all == ["a", "b", "a"]  # a's new generation right after its write
    assert ended == ["a", "a", "b"]


def test_a_status_write_let_go_by_its_worker_still_holds_re_evaluations_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The write keeps its evaluation slot: with the slot let go too, re-evaluations (every
    placement due each second in bench/scale.py) ran through a bulk apply of 2,000 and kopf's
    own watch lagged (finalizer p50 4 -> 17-26 s, placements decided twice)."""
    evaluated = _record_evaluations(monkeypatch)

    async def scenario() -> tuple[list[str], list[str]]:
        running, writes = _one_worker_one_write()
        decided = running.evaluated(due_in=3600)  # "p": decided already
        raw = copy.deepcopy(running.raw)
        raw["metadata"].update(name="a", finalizers=[FINALIZER])
        running.event(type=None, raw=raw)
        await _until(lambda: writes.started == ["a"])
        decided.next_evaluation = 0.0  # "p" due now: a re-evaluation
        running.scheduler.wake(decided)
        await asyncio.sleep(0.1)
        during = list(evaluated)
        writes.release.set()
        await _until(lambda: evaluated == ["a", "p"])
        await running.shutdown()
        return during, evaluated

    during, evaluated_all = asyncio.run(scenario())
    assert during == ["a"]  # the re-evaluation waits for the slot a's write holds
    assert evaluated_all == ["a", "p"]


def test_a_look_let_go_by_its_worker_holds_its_placement_until_it_ends() -> None:
    """The deletion's restore waits for it (`settled`), a wake looks again only after it, and
    the shutdown cancels it and leaves no task."""

    async def scenario() -> tuple[bool, bool, int, int]:
        looks: list[str] = []
        write = asyncio.Event()
        sched = Scheduler(workers=1, handoffs=2)

        async def step(tracked: Tracked) -> float:
            looks.append(tracked.key[1])
            if await sched.let_go(tracked):
                await write.wait()  # the status write, never answered
            tracked.evaluated_generation = tracked.generation
            return 3600.0

        sched.step = step
        before = asyncio.all_tasks()
        sched.start()
        tracked = sched.track({"metadata": {"namespace": "ml", "name": "a", "generation": 1}})
        sched.track({"metadata": {"namespace": "ml", "name": "b", "generation": 1}})
        await _until(lambda: looks == ["a", "b"])  # both let their one worker go
        sched.wake(tracked)
        settled = asyncio.ensure_future(sched.settled(("ml", "a")))
        await asyncio.sleep(0.05)
        waited = not settled.done()
        again = looks.count("a")
        await sched.stop(grace=0.05)
        await asyncio.sleep(0)
        return waited, settled.done(), again, len(asyncio.all_tasks() - before)

    waited, settled, looks_at_a, left = asyncio.run(scenario())
    assert (waited, settled) == (True, True)
    assert looks_at_a == 1
    assert left == 0


@pytest.mark.parametrize("how", ["DELETED", "deletionTimestamp"])
def test_a_deleted_placement_is_never_evaluated_again(how: str) -> None:
    async def scenario() -> tuple[int, int]:
        running = Standalone(tick=0.05)
        running.evaluated(due_in=0)
        await _until(lambda: len(running.evaluations.started) >= 1)
        if how == "DELETED":
            running.event(type="DELETED")
        else:
            running.raw["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
            running.event()
        await asyncio.sleep(0.05)  # an evaluation running then ends
        after = len(running.evaluations.started)
        await asyncio.sleep(0.3)  # six ticks: it was retried at each before
        left = len(running.evaluations.started) - after
        await running.shutdown()
        return left, len(running.scheduler)

    assert asyncio.run(scenario()) == (0, 0)


def test_a_placement_deleted_unseen_is_dropped_at_its_first_status_write_that_finds_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # No DELETED event, no deletionTimestamp (a finalizer removed by hand, a re-list that
    # missed it): the status write's 404 ends its evaluations instead of one failure a tick.
    async def scenario() -> tuple[int, int]:
        running = Standalone(tick=0.05)
        running.evaluations.gone = True
        running.evaluated(due_in=0)
        await _until(lambda: len(running.evaluations.started) >= 1)
        await asyncio.sleep(0.3)  # six ticks: a failed evaluation was retried at each
        started = len(running.evaluations.started)
        await running.shutdown()
        return started, len(running.scheduler)

    with caplog.at_level(logging.INFO):
        assert asyncio.run(scenario()) == (1, 0)
    assert "The placement is gone" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


class Claims:
    """The cluster as the deletion's restore reads it: nothing claimed."""

    def __init__(self) -> None:
        self.read = asyncio.Event()

    async def claimed_by(self, namespace: str, placement: str) -> list[Any]:
        self.read.set()
        return []


def test_the_deletion_restores_only_after_the_evaluation_in_flight() -> None:
    """An evaluation still running could hold the Deployment after the restore gave it back."""

    async def scenario() -> tuple[bool, bool]:
        running = Standalone(tick=60)
        running.evaluations.hold = asyncio.Event()
        claims = Claims()
        running.memo.kube = claims
        running.evaluated(due_in=0)
        await _until(lambda: len(running.evaluations.started) == 1)
        restore = running.handler(running.registry._changing, "restore-on-delete").fn
        restoring = asyncio.create_task(
            restore(body=running.body(), memo=running.memo, logger=logging.getLogger("test"))
        )
        await asyncio.sleep(0.1)
        early = claims.read.is_set()
        running.evaluations.hold.set()
        await asyncio.wait_for(restoring, timeout=5)
        await running.shutdown()
        return early, claims.read.is_set()

    assert asyncio.run(scenario()) == (False, True)


def test_the_shutdown_says_nothing_per_placement_and_leaves_no_task(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kopf logged "Daemon 'reconcile' did not exit in time" about 12,000 times at 10,000."""
    monkeypatch.setattr(scheduler, "STOP_GRACE", 0.2)

    async def scenario() -> tuple[int, float]:
        running = Standalone(tick=60)
        running.evaluations.hold = asyncio.Event()  # evaluations that never end by themselves
        before = asyncio.all_tasks()
        for index in range(200):
            raw = copy.deepcopy(running.raw)
            raw["metadata"]["name"] = f"p{index}"
            raw["metadata"]["finalizers"] = [FINALIZER]
            running.event(type=None, raw=raw)
        await _until(lambda: len(running.evaluations.started) >= 4)
        started = time.monotonic()
        await running.shutdown()
        took = time.monotonic() - started
        await asyncio.sleep(0)
        return len(asyncio.all_tasks() - before), took

    with caplog.at_level(logging.DEBUG):
        left, took = asyncio.run(scenario())
    assert left == 0
    assert took < 5
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_no_evaluation_starts_once_the_shutdown_has_begun(monkeypatch: pytest.MonkeyPatch) -> None:
    """The placements still queued at the shutdown are left to the next operator: one started
    in the stop's grace could scale a Deployment or create a Job and then be cancelled half
    done (before, the workers went on through the queue until the grace ran out)."""
    monkeypatch.setattr(scheduler, "STOP_GRACE", 2.0)

    async def scenario() -> int:
        running = Standalone(tick=60, workers=1, api_connections=1)
        running.evaluations.hold = asyncio.Event()
        for name in ("a", "b", "c"):
            raw = copy.deepcopy(running.raw)
            raw["metadata"].update(name=name, finalizers=[FINALIZER])
            running.event(type=None, raw=raw)
        await _until(lambda: len(running.evaluations.started) == 1)
        cleanup = asyncio.create_task(running.shutdown())
        await asyncio.sleep(0.05)
        running.evaluations.hold.set()  # the evaluation in flight ends within the grace
        await asyncio.wait_for(cleanup, timeout=5)
        return len(running.evaluations.started)

    assert asyncio.run(scenario()) == 1


def test_an_evaluation_cut_short_by_the_shutdown_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The cleanup closes the clients under an evaluation still running: it fails, quietly."""

    async def scenario() -> None:
        running = Standalone(tick=60)
        running.evaluations.hold = asyncio.Event()
        running.evaluated(due_in=0)
        await _until(lambda: len(running.evaluations.started) == 1)
        cleanup = asyncio.create_task(running.shutdown())
        await asyncio.sleep(0.05)
        running.evaluations.hold.set()  # it fails now, on the closed clients
        await asyncio.wait_for(cleanup, timeout=5)

    with caplog.at_level(logging.DEBUG, logger="test"):
        asyncio.run(scenario())
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("ended by the stop" in r.getMessage() for r in caplog.records)


def test_new_specs_are_looked_at_before_re_evaluations() -> None:
    async def scenario() -> list[str]:
        order: list[str] = []
        sched = Scheduler(workers=1)

        async def step(tracked: Tracked) -> float:
            order.append(tracked.key[1])
            tracked.evaluated_generation = tracked.generation
            return 3600.0

        sched.step = step
        for name, generation in (("old", 1), ("new", 2)):
            sched.track({"metadata": {"namespace": "ml", "name": name, "generation": generation}})
        tracked = sched.get(("ml", "old"))
        assert tracked is not None
        tracked.evaluated_generation = 1  # decided already: a re-evaluation
        sched.start()
        await _until(lambda: len(order) == 2)
        await sched.stop()
        return order

    assert asyncio.run(scenario()) == ["new", "old"]


def test_re_evaluations_waiting_for_their_slots_do_not_hold_back_a_new_placement() -> None:
    """Every placement due each second at a bulk apply: with every worker on a re-evaluation
    waiting for one of the few re-evaluation slots, the new placements waited behind them
    (decided p50 28.6 -> 66.1 s at 2,000 in bench/scale.py)."""

    async def scenario() -> list[str]:
        looked: list[str] = []
        stuck = asyncio.Event()
        sched = Scheduler(workers=3, again_workers=1)

        async def step(tracked: Tracked) -> float:
            looked.append(tracked.key[1])
            if tracked.key[1].startswith("old"):
                await stuck.wait()  # its slot does not come
            tracked.evaluated_generation = tracked.generation
            return 3600.0

        sched.step = step
        sched.start()
        for index in range(5):
            tracked = sched.track({"metadata": {"namespace": "ml", "name": f"old{index}"}})
            tracked.evaluated_generation = None  # as `generation` reads it: decided already
        await asyncio.sleep(0.05)
        sched.track({"metadata": {"namespace": "ml", "name": "new", "generation": 1}})
        await _until(lambda: "new" in looked)
        stuck.set()
        await sched.stop()
        return looked

    looked = asyncio.run(scenario())
    assert looked[:2] == ["old0", "new"]  # one worker on re-evaluations, the new one at once


def test_a_finalizer_taken_off_again_is_waited_for_and_warned_about_afresh(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An Enforce placement warned about its missing finalizer, which then came: taken off
    later, the finalizer is waited for a whole FINALIZER_PATIENCE again (not measured from the
    first wait, no warning at once), and the warning comes again (not never)."""
    monkeypatch.setattr(handlers, "FINALIZER_PATIENCE", 0.3)

    def warnings() -> int:
        return len([r for r in caplog.records if "not evaluated for" in r.getMessage()])

    async def scenario() -> tuple[int, float]:
        running = Standalone(tick=0.02)
        running.raw["spec"] = {"mode": "Enforce"}
        running.event(type="ADDED")
        await _until(lambda: warnings() == 1)  # the first wait, past its patience
        running.raw["metadata"]["finalizers"] = [FINALIZER]
        running.raw["metadata"]["resourceVersion"] = "2"
        running.event()
        await _until(lambda: len(running.evaluations.started) >= 1)
        await asyncio.sleep(0.4)  # evaluated (failing here, tried each tick) past the patience
        running.raw["metadata"]["finalizers"] = []
        running.raw["metadata"]["resourceVersion"] = "3"
        running.event()
        waited = await _until(lambda: warnings() == 2)
        evaluated = len(running.evaluations.started)
        await running.shutdown()
        return evaluated, waited

    with caplog.at_level(logging.WARNING):
        evaluated, waited = asyncio.run(scenario())
    assert evaluated >= 1
    assert 0.2 < waited < 5  # a whole patience after the finalizer was taken off
