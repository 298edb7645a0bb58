"""The kopf runtime, the CLI and the operator's configuration."""
