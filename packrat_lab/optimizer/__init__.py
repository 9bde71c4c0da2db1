"""Packrat's optimizer: the 2-D knapsack DP over profiled (threads, batch) points, baselines and an oracle.

Pure NumPy on a Profile: no processes, no torch.
"""

from __future__ import annotations

from packrat_lab.optimizer.baselines import baselines, fat_plan, homogeneous_plan, thin_plan
from packrat_lab.optimizer.candidates import candidate_plans, setting_variants
from packrat_lab.optimizer.oracle import exhaustive_best, exhaustive_optimum
from packrat_lab.optimizer.reference import solve_reference_loop
from packrat_lab.optimizer.table import PlanTable, optimize, solve_table

__all__ = [
    "PlanTable",
    "baselines",
    "candidate_plans",
    "exhaustive_best",
    "exhaustive_optimum",
    "fat_plan",
    "homogeneous_plan",
    "optimize",
    "setting_variants",
    "solve_reference_loop",
    "solve_table",
    "thin_plan",
]
