"""Shared pieces of the optimizer: argument checks, the dense latency grid, building Plans."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from packrat_lab.errors import InfeasiblePlanError, ProfileError
from packrat_lab.plan import Instance, Plan
from packrat_lab.profiling.table import Profile
from packrat_lab.settings import RuntimeSetting
from packrat_lab.workloads.backends.names import BackendChoice, parse_backend_key

__all__ = ["DenseGrid", "build_plan", "check_positive", "dense_grid", "infeasible"]


def check_positive(name: str, value: object, example: str) -> int:
    """Cores and batch must be positive integers; say which one was wrong and what would work."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        msg = f"{name} must be a positive integer, got {value!r}; example: {example}"
        raise ValueError(msg)
    return int(value)


@dataclass(frozen=True)
class DenseGrid:
    """L[t][b] on a dense thread axis 0..T (row 0 and unmeasured points are inf) for the DP."""

    profile: Profile
    statistic: str
    threads: np.ndarray  # (nt,) measured thread counts, sorted
    batches: np.ndarray  # (nb,) measured batch sizes <= B, sorted
    latency: np.ndarray  # (T+1, nb) latency with exactly t threads; inf where not measured
    setting: np.ndarray  # (T+1, nb) winning setting name per point ('' where not measured)
    backend: np.ndarray | None = None  # (T+1, nb) winning backend key per point ('' where not measured)

    @property
    def cores(self) -> int:
        """T, the largest thread count the dense axis covers."""
        return int(self.latency.shape[0]) - 1

    def measured(self) -> str:
        """What the profile measured, for error messages."""
        return f"measured threads {self.profile.threads} and batches {self.profile.batches}"

    def setting_of(self, threads: int, j: int) -> RuntimeSetting:
        """The RuntimeSetting that won at (threads, batches[j])."""
        name = str(self.setting[threads, j])
        return self.profile.settings.get(name) or RuntimeSetting(name)

    def backend_of(self, threads: int, j: int) -> BackendChoice:
        """The backend (and precision) that won at (threads, batches[j]) within the accuracy tolerance."""
        key = "" if self.backend is None else str(self.backend[threads, j])
        return parse_backend_key(key or "eager")


def dense_grid(profile: Profile, cores: int, batch: int, statistic: str = "median") -> DenseGrid:
    """Best-over-(settings, admissible backends) latencies on thread axis 0..cores, batches up to `batch`."""
    if not profile.measurements:
        msg = (
            f"profile of {profile.model!r} has no measurements; example: packrat-lab profile mlp -o mlp.json"
        )
        raise ProfileError(msg)
    grid = profile.grid(statistic)
    keep_b = grid.batches <= batch
    keep_t = grid.threads <= cores
    latency = np.full((cores + 1, int(keep_b.sum())), np.inf)
    setting = np.full(latency.shape, "", dtype=object)
    backend = np.full(latency.shape, "", dtype=object)
    rows = grid.threads[keep_t].astype(np.intp)
    latency[rows] = grid.latency_ms[keep_t][:, keep_b]
    setting[rows] = grid.setting[keep_t][:, keep_b]
    if grid.backend is not None:
        backend[rows] = grid.backend[keep_t][:, keep_b]
    batches = grid.batches[keep_b].astype(np.intp)
    return DenseGrid(profile, statistic, grid.threads, batches, latency, setting, backend)


def infeasible(
    grid: DenseGrid, cores: int, batch: int, all_cores: bool, hint: str = ""
) -> InfeasiblePlanError:
    """The one-line error for a (T, B) no plan can serve."""
    rule = f"threads summing to exactly {cores}" if all_cores else f"at most {cores} threads"
    msg = f"no plan serves batch B={batch} on T={cores} cores ({rule}): the profile {grid.measured()}"
    if hint:
        msg += f"; {hint}"
    return InfeasiblePlanError(msg)


def build_plan(
    grid: DenseGrid, picks: Sequence[tuple[int, int]], name: str, meta: dict[str, Any] | None = None
) -> Plan:
    """A Plan from (threads, batch index) picks, each instance with its own latency and setting."""
    instances = []
    for t, j in sorted(picks, key=lambda p: (-p[0], -int(grid.batches[p[1]]))):
        latency = float(grid.latency[t, j])
        if not math.isfinite(latency):
            msg = f"internal: picked unmeasured point threads={t} batch={int(grid.batches[j])}"
            raise AssertionError(msg)
        instance = Instance(
            int(t), int(grid.batches[j]), grid.setting_of(t, j), (), latency, grid.backend_of(t, j)
        )
        instances.append(instance)
    worst = max(i.expected_latency_ms or 0.0 for i in instances)
    info = {"model": grid.profile.model, "statistic": grid.statistic, **(meta or {})}
    return Plan(tuple(instances), worst, name, info)
