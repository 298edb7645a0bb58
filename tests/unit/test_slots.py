"""A few evaluations at a time: a placement with no decision for its spec yet goes before the
re-evaluations waiting for a slot (at a bulk apply, new placements are decided first)."""

from __future__ import annotations

import asyncio

import pytest

from placement.runtime.slots import Slots


async def _order(slots: Slots, arrivals: list[tuple[str, bool]]) -> list[str]:
    """Who got a slot in which order, all arriving while every slot is taken."""
    served: list[str] = []
    release = asyncio.Event()

    async def evaluation(name: str, first: bool) -> None:
        async with slots.slot(first=first):
            served.append(name)
            await release.wait()

    busy = asyncio.create_task(evaluation("running", False))
    await asyncio.sleep(0)
    waiting = []
    for name, first in arrivals:
        waiting.append(asyncio.create_task(evaluation(name, first)))
        await asyncio.sleep(0)
    assert slots.waiting == len(arrivals)
    release.set()
    await asyncio.gather(busy, *waiting)
    return served


def test_first_evaluations_before_re_evaluations_each_in_arrival_order() -> None:
    arrivals = [("again-1", False), ("new-1", True), ("again-2", False), ("new-2", True)]
    served = asyncio.run(_order(Slots(1), arrivals))
    assert served == ["running", "new-1", "new-2", "again-1", "again-2"]


def test_no_more_at_a_time_than_slots() -> None:
    async def main() -> int:
        slots, running, most = Slots(3), 0, 0

        async def evaluation(first: bool) -> None:
            nonlocal running, most
            async with slots.slot(first=first):
                running += 1
                most = max(most, running)
                await asyncio.sleep(0.001)
                running -= 1

        await asyncio.gather(*(evaluation(i % 2 == 0) for i in range(40)))
        return most

    assert asyncio.run(main()) == 3


def test_a_cancelled_waiter_loses_no_slot() -> None:
    async def main() -> None:
        slots = Slots(1)
        release = asyncio.Event()

        async def hold() -> None:
            async with slots.slot():
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        cancelled = asyncio.create_task(hold())
        await asyncio.sleep(0)
        cancelled.cancel()
        release.set()
        await holder
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert slots.waiting == 0
        async with asyncio.timeout(1):  # the slot is free again
            async with slots.slot(first=True):
                pass

    asyncio.run(main())


def test_at_least_one_slot() -> None:
    with pytest.raises(ValueError):
        Slots(0)


def test_first_evaluations_run_more_at_a_time_than_re_evaluations() -> None:
    """At a bulk apply the new placements' first evaluations (each held through its status
    write) take up to `first_size` slots; re-evaluations never more than `size`, and none
    starts while first evaluations wait."""

    async def main() -> tuple[int, int, int]:
        slots = Slots(2, first_size=5)
        running = {True: 0, False: 0}
        most = {True: 0, False: 0}
        total = 0
        release = asyncio.Event()

        async def evaluation(first: bool) -> None:
            nonlocal total
            async with slots.slot(first=first):
                running[first] += 1
                most[first] = max(most[first], running[first])
                total = max(total, running[True] + running[False])
                await release.wait()
                await asyncio.sleep(0.001)
                running[first] -= 1

        tasks = [asyncio.create_task(evaluation(i % 3 != 0)) for i in range(30)]
        await asyncio.sleep(0.01)
        assert slots.running == 5 and running[False] <= 2
        release.set()
        await asyncio.gather(*tasks)
        return most[True], most[False], total

    firsts, agains, total = asyncio.run(main())
    assert firsts == 5
    assert agains == 2
    assert total == 5


def test_a_re_evaluation_waits_while_first_evaluations_fill_the_extra_slots() -> None:
    async def main() -> list[str]:
        slots = Slots(1, first_size=3)
        served: list[str] = []
        release = asyncio.Event()

        async def evaluation(name: str, first: bool) -> None:
            async with slots.slot(first=first):
                served.append(name)
                await release.wait()

        tasks = [asyncio.create_task(evaluation("new-1", True))]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(evaluation("again-1", False)))  # 1 running: waits
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(evaluation("new-2", True)))  # an extra slot
        await asyncio.sleep(0)
        assert served == ["new-1", "new-2"] and slots.waiting == 1
        release.set()
        await asyncio.gather(*tasks)
        return served

    assert asyncio.run(main()) == ["new-1", "new-2", "again-1"]
