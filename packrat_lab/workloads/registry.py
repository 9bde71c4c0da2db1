"""get_workload: one entry point for zoo names, import strings, TorchScript files and modules."""

from __future__ import annotations

from typing import Any

from packrat_lab.workloads.base import Workload, WorkloadSpec
from packrat_lab.workloads.zoo import ZOO

__all__ = ["get_workload"]


def zoo_workload(name: str, **options: Any) -> Workload:
    """A zoo model as a Workload (validated name, options recorded in the spec)."""
    entry = ZOO.get(name)
    if entry is None:
        msg = f"unknown model {name!r}; valid: {', '.join(sorted(ZOO))} (example: 'resnet50')"
        raise ValueError(msg)
    spec = WorkloadSpec(
        "zoo", name, tuple(sorted(options.items())), tuple(entry.sample_shape(**options)), entry.dtype, entry.high
    )
    return Workload(name, spec)


def get_workload(model: Any, **options: Any) -> Workload:
    """Resolve what a user passes as a model into a Workload."""
    if isinstance(model, Workload):
        return model
    if isinstance(model, str):
        return zoo_workload(model, **options)
    msg = f"cannot make a workload from {type(model).__name__}; example: get_workload('resnet50')"
    raise ValueError(msg)
