"""Workloads: the built-in model zoo and user models, rebuildable in worker processes."""
