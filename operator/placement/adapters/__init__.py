"""The adapters: Kubernetes, Prometheus, the operator's metrics, and the in-memory fake."""
