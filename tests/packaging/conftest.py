"""The image tests run the image against the same real control plane and Prometheus as the
integration tests: their fixtures, shared."""

from tests.integration.conftest import crd, placements, utilization

__all__ = ["crd", "placements", "utilization"]
