"""Validate plans for real: run each through a serving pool on one batch of B, side by side.

Packrat's Appendix A compares the latency a plan is expected to have (isolated profile points)
with what its instances achieve when they run together and share caches and memory bandwidth.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from packrat_lab.plan import Plan

__all__ = ["PlanMeasurement", "ValidationReport", "config_key", "measure_plans", "validate"]


@dataclass(frozen=True)
class PlanMeasurement:
    """Measured batch latencies of one plan, all instances running concurrently."""

    plan: Plan
    samples_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        """Median measured batch latency."""
        return statistics.median(self.samples_ms)

    @property
    def p90_ms(self) -> float:
        """90th percentile of the measured batch latency."""
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]

    @property
    def expected_ms(self) -> float | None:
        """What the isolated profile predicted."""
        return self.plan.expected_latency_ms

    @property
    def gap(self) -> float | None:
        """(actual − expected) / expected: concurrency's cost, positive when slower than predicted."""
        if not self.expected_ms:
            return None
        return (self.median_ms - self.expected_ms) / self.expected_ms


@dataclass
class ValidationReport:
    """Plans measured in one run; speedups are relative to the plan named `baseline`."""

    batch: int
    results: list[PlanMeasurement] = field(default_factory=list)
    baseline: str = "fat"

    def by_name(self, name: str) -> PlanMeasurement:
        """The measurement of the plan with this name."""
        for r in self.results:
            if r.plan.name == name:
                return r
        msg = f"no plan named {name!r} in this report; names: {[r.plan.name for r in self.results]}"
        raise KeyError(msg)

    def speedup(self, name: str) -> float | None:
        """Median latency of the baseline divided by that of the named plan."""
        try:
            base = self.by_name(self.baseline).median_ms
        except KeyError:
            return None
        return base / self.by_name(name).median_ms

    def rows(self) -> list[dict[str, Any]]:
        """One row per plan for tables and plots."""
        return [
            {
                "plan": r.plan.name,
                "config": str(r.plan),
                "backends": ",".join(r.plan.backends),
                "expected_ms": r.expected_ms,
                "actual_ms": r.median_ms,
                "actual_p90_ms": r.p90_ms,
                "gap": r.gap,
                "speedup_vs_" + self.baseline: self.speedup(r.plan.name),
                "samples": len(r.samples_ms),
            }
            for r in self.results
        ]

    def to_markdown(self) -> str:
        """A Markdown table of the side-by-side results."""
        lines = [
            f"| plan (B={self.batch}) | ⟨i,t,b⟩ | expected ms | measured ms | gap | measured vs {self.baseline} |",
            "|---|---|---|---|---|---|",
        ]
        for row in self.rows():
            exp = "—" if row["expected_ms"] is None else f"{row['expected_ms']:.2f}"
            gap = "—" if row["gap"] is None else f"{row['gap']:+.0%}"
            spd = row["speedup_vs_" + self.baseline]
            lines.append(
                f"| {row['plan']} | {row['config']} | {exp} | {row['actual_ms']:.2f} | {gap} | "
                f"{'—' if spd is None else f'{spd:.2f}×'} |"
            )
        return "\n".join(lines)


def _measure(
    pool: Any, batch: Any, repeats: int, warmup: int, clock: Callable[[], float]
) -> tuple[float, ...]:
    for _ in range(warmup):
        pool.infer(batch)
    samples = []
    for _ in range(repeats):
        start = clock()
        pool.infer(batch)
        samples.append((clock() - start) * 1000.0)
    return tuple(samples)


def config_key(plan: Plan) -> str:
    """What makes two plans the same configuration: instances with threads, batch, backend and setting."""
    return "+".join(
        sorted(
            f"{i.threads}x{i.batch}{'' if i.backend.is_reference else ':' + i.backend.key}@{i.setting.name}"
            for i in plan.instances
        )
    )


PoolFactory = Callable[[Any, Plan], AbstractContextManager[Any]]


def _serving_pool(workload: Any, plan: Plan) -> AbstractContextManager[Any]:
    """A real pool for one plan, kept out of the sidebar (short-lived)."""
    from packrat_lab.serving.pool import Pool

    pool: AbstractContextManager[Any] = Pool(workload, plan, announce=False)
    return pool


def measure_plans(
    model: Any,
    plans: Sequence[Plan | str],
    *,
    repeats: int = 10,
    warmup: int = 3,
    rounds: int = 1,
    clock: Callable[[], float] = time.perf_counter,
    progress: Callable[[str], None] | None = None,
    pool_factory: PoolFactory | None = None,
) -> dict[str, tuple[float, ...]]:
    """Batch latencies (ms) of each distinct configuration, its instances running together in a pool.

    All plans must serve the same B. `rounds` > 1 alternates the plans to spread machine drift
    over all of them; samples of the same configuration are pooled under its config_key.
    """
    from packrat_lab.workloads.registry import get_workload

    resolved = [Plan.coerce(p) for p in plans]
    if not resolved:
        msg = "validate needs at least one plan; example: validate('mlp', ['1x2x8', '2x1x4'])"
        raise ValueError(msg)
    batches = {p.total_batch for p in resolved}
    if len(batches) != 1:
        msg = f"plans serve different batch sizes {sorted(batches)}; compare plans for one B, e.g. ['1x2x8', '2x1x4']"
        raise ValueError(msg)
    if repeats < 1 or rounds < 1:
        msg = f"repeats={repeats} and rounds={rounds} must be at least 1; example: repeats=10"
        raise ValueError(msg)
    workload = get_workload(model)
    batch = workload.example_input(batches.pop())
    open_pool = pool_factory or _serving_pool
    distinct: dict[str, Plan] = {}
    for plan in resolved:
        distinct.setdefault(config_key(plan), plan)
    collected: dict[str, list[float]] = {key: [] for key in distinct}
    for _ in range(rounds):
        for key, plan in distinct.items():
            if progress is not None:
                progress(f"validating {plan.name} {plan}")
            with open_pool(workload, plan) as pool:
                collected[key].extend(_measure(pool, batch, repeats, warmup, clock))
    return {key: tuple(samples) for key, samples in collected.items()}


def validate(
    model: Any,
    plans: Sequence[Plan | str],
    *,
    repeats: int = 10,
    warmup: int = 3,
    rounds: int = 1,
    baseline: str = "fat",
    clock: Callable[[], float] = time.perf_counter,
    progress: Callable[[str], None] | None = None,
    pool_factory: PoolFactory | None = None,
) -> ValidationReport:
    """Run each plan in its own pool (instances pinned, started together) on one batch of B.

    Plans with the same configuration (often the Packrat plan and a baseline) are measured once
    and share their samples, so the report never shows a "speedup" that is only run-to-run noise.
    """
    resolved = [Plan.coerce(p) for p in plans]
    samples = measure_plans(
        model,
        resolved,
        repeats=repeats,
        warmup=warmup,
        rounds=rounds,
        clock=clock,
        progress=progress,
        pool_factory=pool_factory,
    )
    report = ValidationReport(resolved[0].total_batch, baseline=baseline)
    report.results = [PlanMeasurement(p, samples[config_key(p)]) for p in resolved]
    return report
