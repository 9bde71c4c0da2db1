"""One DP solve for every T' <= T and B' <= B, the plans it implies, and `optimize`."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from packrat_lab.optimizer.common import DenseGrid, build_plan, check_positive, dense_grid, infeasible
from packrat_lab.optimizer.dp import fill_at_most, fill_exact
from packrat_lab.optimizer.reconstruct import ExactPicker, IdlePicker
from packrat_lab.plan import Plan
from packrat_lab.profiling.table import Profile

if TYPE_CHECKING:
    from packrat_lab.optimizer.measured import MeasureFn

__all__ = ["PlanTable", "optimize", "solve_table"]

_EXAMPLE = "optimize(profile, cores=16, batch=64)"


@dataclass
class PlanTable:
    """F[T'][B']: the best objective (ms) for every T' <= cores and B' <= batch, from one solve."""

    grid: DenseGrid
    cores: int
    batch: int
    all_cores: bool
    latency_ms: np.ndarray  # (cores+1, batch+1); inf where no plan exists
    _pickers: dict[tuple[int, float], IdlePicker | ExactPicker] = field(default_factory=dict, repr=False)

    def _check(self, cores: int, batch: int) -> tuple[int, int]:
        """T' and B' must lie inside the solved table."""
        example = f"table.plan({self.cores}, {self.batch})"
        cores = check_positive("cores", cores, example)
        batch = check_positive("batch", batch, example)
        if cores > self.cores or batch > self.batch:
            msg = f"(cores={cores}, batch={batch}) lies outside the table solved for cores<={self.cores}, batch<={self.batch}; example: {example}"
            raise ValueError(msg)
        return cores, batch

    def latency(self, cores: int, batch: int) -> float:
        """The optimal slowest-instance latency (ms) at (T', B'); inf when no plan exists."""
        cores, batch = self._check(cores, batch)
        return float(self.latency_ms[cores, batch])

    def feasible(self, cores: int, batch: int) -> bool:
        """Whether some plan serves B' on T' cores."""
        return math.isfinite(self.latency(cores, batch))

    def plan(self, cores: int, batch: int) -> Plan:
        """The optimal plan at (T', B'); ties go to fewer total threads, then fewer instances."""
        cores, batch = self._check(cores, batch)
        v = float(self.latency_ms[cores, batch])
        if not math.isfinite(v):
            raise infeasible(self.grid, cores, batch, self.all_cores, self._hint(cores, batch))
        picker = self._pickers.get((cores, v))
        if picker is None:
            lat, bs = self.grid.latency, self.grid.batches
            picker = (
                ExactPicker(lat, bs, cores, self.batch, v)
                if self.all_cores
                else IdlePicker(lat, bs, cores, self.batch, v)
            )
            self._pickers[(cores, v)] = picker
        picks = picker.pick(cores, batch) if isinstance(picker, ExactPicker) else picker.pick(batch)
        if picks is None:  # pragma: no cover - v came from the table, so a plan meets it
            msg = f"internal: objective {v} at cores={cores} batch={batch} has no plan"
            raise AssertionError(msg)
        meta = {"cores": cores, "batch": batch, "all_cores": self.all_cores, "objective_ms": v}
        plan = build_plan(self.grid, picks, "packrat", meta)
        if plan.expected_latency_ms != v:  # pragma: no cover - reconstruction must meet the objective
            msg = f"internal: plan {plan} has latency {plan.expected_latency_ms}, table says {v}"
            raise AssertionError(msg)
        return plan

    def best_by_batch(self, cores: int | None = None, batches: Iterable[int] | None = None) -> list[Plan]:
        """The winning plan at each batch size on `cores` (default: all), skipping sizes no plan serves.

        Batch sizes default to the profile's measured ones up to B, plus B; pass range(1, B + 1) for all.
        """
        cores = self.cores if cores is None else cores
        if batches is None:
            batches = sorted({*(int(b) for b in self.grid.batches), self.batch})
        return [self.plan(cores, b) for b in batches if self.feasible(cores, b)]

    def _hint(self, cores: int, batch: int) -> str:
        """A nearby (T', B') that works, for the error message."""
        row = np.flatnonzero(np.isfinite(self.latency_ms[cores, 1:])) + 1
        if row.size:
            near = int(row[np.argmin(np.abs(row - batch))])
            return f"example: batch={near} works on {cores} cores"
        col = np.flatnonzero(np.isfinite(self.latency_ms[1:, batch])) + 1
        if col.size:
            near = int(col[np.argmin(np.abs(col - cores))])
            return f"example: cores={near} works for batch {batch}"
        return f"profile the batch sizes you need, e.g. packrat-lab profile {self.grid.profile.model} --batch {batch}"


def solve_table(
    profile: Profile, cores: int, batch: int, *, all_cores: bool = False, statistic: str = "median"
) -> PlanTable:
    """Fill the DP once for every T' <= cores and B' <= batch (Σt <= T', or == T' with all_cores)."""
    cores = check_positive("cores", cores, _EXAMPLE)
    batch = check_positive("batch", batch, _EXAMPLE)
    grid = dense_grid(profile, cores, batch, statistic)
    fill = fill_exact if all_cores else fill_at_most
    return PlanTable(grid, cores, batch, all_cores, fill(grid.latency, grid.batches, batch))


def optimize(
    profile: Profile,
    cores: int,
    batch: int,
    *,
    all_cores: bool = False,
    statistic: str = "median",
    measure_top: int = 0,
    measure: MeasureFn | None = None,
    model: Any = None,
    use_measured: bool = True,
) -> Plan:
    """Packrat's plan: minimise the slowest instance's latency with Σt <= cores (== with all_cores), Σb = batch.

    With `measure_top=k` the k best distinct configurations by expected latency, plus fat, are
    measured for real with their instances together (`measure` replaces the serving pools in tests;
    `model` defaults to the profile's workload) and the measured fastest is returned, expected and
    measured latency on its meta. Those measurements are cached in `profile.corun`; with
    `use_measured`, a later plan for the same B picks from them when the DP's plan was measured.
    """
    from packrat_lab.optimizer.measured import choose_by_measurement, measured_best

    table = solve_table(profile, cores, batch, all_cores=all_cores, statistic=statistic)
    plan = table.plan(cores, batch)
    if measure_top:
        return choose_by_measurement(
            profile,
            plan,
            cores,
            batch,
            measure_top,
            all_cores=all_cores,
            statistic=statistic,
            measure=measure,
            model=model,
        )
    if use_measured and profile.corun:
        return measured_best(profile, plan, cores, batch, all_cores) or plan
    return plan
