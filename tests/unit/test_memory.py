"""The malloc arena cap the operator sets before its handler threads start."""

from __future__ import annotations

import platform

from placement.runtime.memory import limit_malloc_arenas


def test_glibc_accepts_the_arena_cap() -> None:
    # Elsewhere (musl, macOS) there are no glibc arenas to cap, and it says so.
    assert limit_malloc_arenas(2) is (platform.libc_ver()[0] == "glibc")
