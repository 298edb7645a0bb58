"""Fixtures for the pure-core tests (builders live in factories.py)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from placement.core.api import WorkloadPlacementSpec
from tests.unit.factories import make_spec


@pytest.fixture
def spec() -> WorkloadPlacementSpec:
    """The docs/design.md example placement (Enforce, window 01:00-05:00 UTC)."""
    return make_spec()


# Hypothesis: `ci` (default) is derandomized, so a run is reproducible and a failure in CI is
# the same failure on a laptop; `fuzz` explores new random examples, many more of them.
# The fuzz tests run FUZZ_FACTOR times each profile's max_examples.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, max_examples=100)
settings.register_profile("fuzz", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

FUZZ_FACTOR = 5


@pytest.fixture(autouse=True)
def _forget_admitted_specs() -> None:
    """Tests reuse a uid and generation with different specs, which a cluster never does:
    the operator's memo of admitted specs (and of decisions that needed no status write)
    starts empty in each."""
    from placement.core.status import QUIET
    from placement.runtime.handlers import ADMITTED

    ADMITTED.clear()
    QUIET.clear()
