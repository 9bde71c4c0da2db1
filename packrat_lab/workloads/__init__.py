"""Workloads: the built-in model zoo and user models, rebuildable in worker processes."""

from packrat_lab.workloads.base import Workload, WorkloadSpec
from packrat_lab.workloads.registry import get_workload, zoo_names

__all__ = ["Workload", "WorkloadSpec", "get_workload", "zoo_names"]
