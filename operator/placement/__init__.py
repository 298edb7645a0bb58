"""placement-operator: realtime or batch, decided per inference workload."""

__version__ = "0.1.0"
