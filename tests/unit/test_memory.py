"""The malloc arena cap the operator sets before its handler threads start."""

from __future__ import annotations

import platform

from placement.runtime.memory import limit_malloc_arenas


def test_glibc_accepts_the_arena_cap() -> None:
    # Elsewhere (musl, macOS) there are no glibc arenas to cap, and it says so.
    assert limit_malloc_arenas(2) is (platform.libc_ver()[0] == "glibc")


def test_a_full_collection_freezes_its_survivors_and_a_thaw_frees_cycles_that_died_frozen() -> None:
    import gc

    from placement.runtime.memory import freeze_survivors

    now = [0.0]
    callback = freeze_survivors(thaw_seconds=3600, clock=lambda: now[0])
    try:
        kept = [[{"a": [i]}] for i in range(1000)]  # alive: a placement's state
        gc.collect()
        frozen = gc.get_freeze_count()
        assert frozen >= 3000  # walked by no later collection
        assert gc.get_count() == (0, 0, 0)

        class Cycle:
            pass

        cycle = Cycle()
        cycle.me = cycle  # type: ignore[attr-defined]
        gc.collect()  # frozen while alive
        del cycle
        assert not any(type(o) is Cycle for o in gc.get_objects())  # not walked...
        assert gc.collect() == 0  # ...so not found: it died frozen
        now[0] = 3600.0
        gc.collect()  # the thaw: the next full collection walks everything again
        assert gc.get_freeze_count() == 0
        assert gc.collect() >= 1  # the cycle, freed
        assert len(kept) == 1000
    finally:
        gc.callbacks.remove(callback)
        gc.unfreeze()
