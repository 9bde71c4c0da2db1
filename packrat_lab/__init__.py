"""packrat_lab: make CPU inference of PyTorch models as fast as the host allows (Packrat, arXiv 2311.18174).

Importing the package is cheap: torch, plotly, ipywidgets and pandas load only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "FailurePolicy",
    "Fleet",
    "InfeasiblePlanError",
    "Instance",
    "Lab",
    "LoadReport",
    "PackratError",
    "Plan",
    "Pool",
    "PoolClosedError",
    "PoolState",
    "Profile",
    "ProfileError",
    "Rejected",
    "RequestTimeoutError",
    "RuntimeSetting",
    "WorkerFailedError",
    "Workload",
    "compare_plans",
    "get_workload",
    "load_ipython_extension",
    "load_profile",
    "optimize",
    "optimize_fleet",
    "profile",
    "run_load",
    "serve_pool",
    "solve_table",
    "unload_ipython_extension",
    "validate",
    "write_report",
]

# public name -> module that defines it (imported on first use)
_LAZY = {
    "PackratError": "packrat_lab.errors",
    "InfeasiblePlanError": "packrat_lab.errors",
    "ProfileError": "packrat_lab.errors",
    "WorkerFailedError": "packrat_lab.errors",
    "PoolClosedError": "packrat_lab.errors",
    "RequestTimeoutError": "packrat_lab.errors",
    "Rejected": "packrat_lab.errors",
    "FailurePolicy": "packrat_lab.serving.lifecycle",
    "PoolState": "packrat_lab.serving.lifecycle",
    "Instance": "packrat_lab.plan",
    "Plan": "packrat_lab.plan",
    "RuntimeSetting": "packrat_lab.settings",
    "Profile": "packrat_lab.profiling.table",
    "load_profile": "packrat_lab.profiling.table",
    "profile": "packrat_lab.profiling.profiler",
    "Workload": "packrat_lab.workloads.base",
    "get_workload": "packrat_lab.workloads.registry",
    "optimize": "packrat_lab.optimizer",
    "solve_table": "packrat_lab.optimizer",
    "compare_plans": "packrat_lab.comparison",
    "write_report": "packrat_lab.report",
    "validate": "packrat_lab.validation",
    "Pool": "packrat_lab.serving.pool",
    "Fleet": "packrat_lab.fleet.fleet",
    "optimize_fleet": "packrat_lab.optimizer.fleet",
    "serve_pool": "packrat_lab.serving.http.server",
    "run_load": "packrat_lab.loadgen",
    "LoadReport": "packrat_lab.loadgen",
    "Lab": "packrat_lab.ui.lab",
    "load_ipython_extension": "packrat_lab.ui.magics",
    "unload_ipython_extension": "packrat_lab.ui.magics",
}

if TYPE_CHECKING:
    from packrat_lab.comparison import compare_plans
    from packrat_lab.errors import (
        InfeasiblePlanError,
        PackratError,
        PoolClosedError,
        ProfileError,
        Rejected,
        RequestTimeoutError,
        WorkerFailedError,
    )
    from packrat_lab.fleet.fleet import Fleet
    from packrat_lab.loadgen import LoadReport, run_load
    from packrat_lab.optimizer import optimize, solve_table
    from packrat_lab.optimizer.fleet import optimize_fleet
    from packrat_lab.plan import Instance, Plan
    from packrat_lab.profiling.profiler import profile
    from packrat_lab.profiling.table import Profile, load_profile
    from packrat_lab.report import write_report
    from packrat_lab.serving.http.server import serve_pool
    from packrat_lab.serving.lifecycle import FailurePolicy, PoolState
    from packrat_lab.serving.pool import Pool
    from packrat_lab.settings import RuntimeSetting
    from packrat_lab.ui.lab import Lab
    from packrat_lab.ui.magics import load_ipython_extension, unload_ipython_extension
    from packrat_lab.validation import validate
    from packrat_lab.workloads.base import Workload
    from packrat_lab.workloads.registry import get_workload


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'packrat_lab' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where JupyterLab finds the prebuilt frontend extension shipped in the wheel."""
    return [{"src": "labextension", "dest": "packrat-lab"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The server extension (the /packrat-lab/ routes); its module imports tornado only when loaded."""
    return [{"module": "packrat_lab.jupyter_server"}]
