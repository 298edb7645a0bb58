"""The image tests run the image against the same real control plane and Prometheus as the
integration tests: their fixtures, shared (the session's operator is in tests/conftest.py, so
an image test can stop it while the image's operator runs)."""

from tests.integration.conftest import placements, utilization

__all__ = ["placements", "utilization"]
