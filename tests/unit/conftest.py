"""Fixtures for the pure-core tests (builders live in factories.py)."""

from __future__ import annotations

import pytest

from placement.api import WorkloadPlacementSpec
from tests.unit.factories import make_spec


@pytest.fixture
def spec() -> WorkloadPlacementSpec:
    """The DESIGN.md example placement (Enforce, window 01:00-05:00 UTC)."""
    return make_spec()
