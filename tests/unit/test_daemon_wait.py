"""The placement's daemon between evaluations: it waits for its tick without kopf's
per-tick tasks, and still ends at once when kopf stops it (deletion, shutdown, peering)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import kopf
from kopf._cogs.aiokits.aioenums import AsyncFlagWaiter, FlagSetter

from placement.runtime.config import OperatorConfig
from placement.runtime.handlers import register


def _body() -> kopf.Body:
    raw = {"metadata": {"name": "p", "namespace": "ml", "generation": 1}}
    return kopf.Body(cast(kopf.RawBody, raw))


def _daemon() -> Any:
    registry = kopf.OperatorRegistry()
    register(registry, OperatorConfig(prometheus_url="http://127.0.0.1:9090", tick_seconds=60))
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
