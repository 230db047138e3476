"""Backends: registry, per-backend state and the prober."""
