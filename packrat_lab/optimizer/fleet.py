"""Joint plan for a fleet: each model's cores and ⟨i,t,b⟩, maximising Veltair's load scale factor.

The metric: the largest s such that, with every model m offered s·load_m req/s (Poisson), each
keeps `quantile` (95 %) of its queries within slo_ms[m]. Per model and core count c, the DP table
(`solve_table`, every T' ≤ T and B' ≤ B at once) gives the best plan for each batch bound B; a
queue model of the pool's dynamic batcher (one batch in flight, dispatched when B wait or the
oldest waited `max_queue_delay_ms`; a batch of k rows takes the plan's latency for k rows split
as the pool splits it) gives the highest rate that plan keeps within the objective. That makes a
capacity curve g_m(c); the outer allocation maximises min_m g_m(c_m)/load_m with Σc_m ≤ cores by
a DP over models (exact for the curves; `exhaustive_fleet` checks it). Pure NumPy: no torch.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import product
from typing import Any

import numpy as np

from packrat_lab.errors import InfeasiblePlanError
from packrat_lab.optimizer.common import DenseGrid, check_positive
from packrat_lab.optimizer.table import PlanTable, solve_table
from packrat_lab.plan import Plan
from packrat_lab.profiling.table import Profile

__all__ = [
    "ModelCurve",
    "allocate",
    "batch_latency_ms",
    "best_variant",
    "exhaustive_fleet",
    "model_curve",
    "optimize_fleet",
    "rate_capacity",
    "simulate_p_latency",
]

_EXAMPLE = "optimize_fleet({'a': prof_a, 'b': prof_b}, cores=16, loads={'a': 200, 'b': 50}, slo_ms=100)"


def batch_latency_ms(plan: Plan, grid: DenseGrid) -> np.ndarray:
    """S[k]: the plan's latency (ms) for a batch of k = 0..B rows, split over instances as the pool does.

    An instance given r rows costs its measured latency at the smallest measured batch ≥ r.
    """
    from packrat_lab.serving.dispatcher import split_rows

    total = plan.total_batch
    out = np.zeros(total + 1)
    batches = grid.batches
    sizes = [i.batch for i in plan.instances]
    for k in range(1, total + 1):
        worst = 0.0
        for index, _, rows in split_rows(k, sizes):
            j = int(np.searchsorted(batches, rows))
            lat = float(grid.latency[plan.instances[index].threads, min(j, batches.size - 1)])
            worst = max(worst, lat if math.isfinite(lat) else math.inf)
        out[k] = worst
    return out


def simulate_p_latency(
    gaps: np.ndarray, rate: float, service_ms: np.ndarray, delay_ms: float, quantile: float = 0.95
) -> float:
    """The `quantile` of request latency (ms) at `rate` req/s through the pool's batcher and plan.

    `gaps` are unit-mean exponential inter-arrival times (the same draws for every rate, so
    results are comparable); the first tenth is left out as warm-up.
    """
    arrivals = (np.cumsum(gaps) * (1000.0 / rate)).tolist()
    service = service_ms.tolist()
    n = len(arrivals)
    cap = len(service) - 1
    latency = [0.0] * n
    free, i = 0.0, 0
    while i < n:
        last = min(i + cap, n) - 1
        close = min(arrivals[i] + delay_ms, arrivals[last])  # B waiting, or the oldest's delay
        start = max(close, free)
        k = min(bisect_right(arrivals, start, i, last + 1) - i, cap)
        done = start + service[k]
        for j in range(i, i + k):
            latency[j] = done - arrivals[j]
        free, i = done, i + k
    return float(np.quantile(latency[n // 10 :], quantile))


def rate_capacity(
    service_ms: np.ndarray,
    slo_ms: float,
    *,
    delay_ms: float = 5.0,
    quantile: float = 0.95,
    gaps: np.ndarray | None = None,
    iterations: int = 12,
) -> float:
    """The highest Poisson rate (req/s) at which the plan keeps `quantile` of requests within slo_ms."""
    if not service_ms[1] <= slo_ms:
        return 0.0
    gaps = _gaps() if gaps is None else gaps
    top = 1000.0 * (service_ms.size - 1) / float(service_ms[-1])  # full batches back to back
    lo, hi = 0.0, top
    if simulate_p_latency(gaps, hi, service_ms, delay_ms, quantile) <= slo_ms:
        return hi
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if simulate_p_latency(gaps, mid, service_ms, delay_ms, quantile) <= slo_ms:
            lo = mid
        else:
            hi = mid
    return lo


def _gaps(n: int = 1500, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).exponential(1.0, n)


@dataclass
class ModelCurve:
    """g(c): for each core count c, the best rate (req/s) within the objective and the plan that gets it."""

    name: str
    slo_ms: float
    capacity: np.ndarray  # (cores + 1,), capacity[0] = 0
    plans: list[Plan | None]  # per core count
    by_batch: dict[tuple[int, int], float] = field(default_factory=dict)  # (c, B) -> capacity, every B tried


def _candidates(table: PlanTable, cores: int, slo_ms: float) -> list[tuple[float, int]]:
    """(upper bound on capacity, B) for every batch bound served within slo_ms on c cores, best bound first.

    The bound is full batches back to back, 1000·B/F[c][B] req/s: no queue does better.
    """
    row = table.latency_ms[cores]
    out = [
        (1000.0 * b / float(row[b]), b)
        for b in range(1, row.size)
        if math.isfinite(row[b]) and row[b] <= slo_ms
    ]
    return sorted(out, reverse=True)


def model_curve(
    name: str,
    profile: Profile,
    cores: int,
    slo_ms: float,
    *,
    max_batch: int | None = None,
    delay_ms: float = 5.0,
    quantile: float = 0.95,
    prune: bool = True,
    statistic: str = "median",
) -> ModelCurve:
    """g(c) for c = 0..cores from one DP solve.

    With `prune` (the default) a batch bound is skipped when even back-to-back full batches
    could not beat the best rate found on c cores, and a plan seen on fewer cores is not
    simulated again; `prune=False` simulates every bound (the oracle's way). Both give the same g.
    """
    batch = max_batch or max(profile.batches)
    table = solve_table(profile, cores, batch, statistic=statistic)
    gaps = _gaps()
    capacity = np.zeros(cores + 1)
    plans: list[Plan | None] = [None] * (cores + 1)
    by_batch: dict[tuple[int, int], float] = {}
    seen: dict[str, float] = {}
    for c in range(1, cores + 1):
        for top, b in _candidates(table, c, slo_ms):
            if prune and top <= capacity[c]:
                break  # sorted by bound: no later bound can win either
            plan = table.plan(c, b)
            key = f"{plan.text}/{b}"
            rate = seen.get(key) if prune else None
            if rate is None:
                service = batch_latency_ms(plan, table.grid)
                rate = rate_capacity(service, slo_ms, delay_ms=delay_ms, quantile=quantile, gaps=gaps)
                seen[key] = rate
            by_batch[(c, b)] = rate
            if rate > capacity[c]:
                capacity[c], plans[c] = rate, plan
        if capacity[c - 1] > capacity[c]:  # c cores can always run the (c-1)-core plan
            capacity[c], plans[c] = capacity[c - 1], plans[c - 1]
    return ModelCurve(name, slo_ms, capacity, plans, by_batch)


def best_variant(name: str, curves: Mapping[str, ModelCurve]) -> ModelCurve:
    """One curve from several runtime variants of a model (eager, TorchScript...): the best per core count.

    The winning variant's name goes into its plans' meta["variant"] ('' when there is one profile).
    """
    first = next(iter(curves.values()))
    capacity = np.zeros_like(first.capacity)
    plans: list[Plan | None] = [None] * capacity.size
    for variant, curve in curves.items():
        for c in range(1, capacity.size):
            plan = curve.plans[c]
            if plan is not None and curve.capacity[c] > capacity[c]:
                capacity[c] = curve.capacity[c]
                plans[c] = replace(plan, meta={**plan.meta, "variant": variant})
    return ModelCurve(name, first.slo_ms, capacity, plans)


def allocate(curves: Sequence[ModelCurve], loads: Sequence[float], cores: int) -> tuple[float, list[int]]:
    """max over Σc ≤ cores of min_m g_m(c_m)/load_m, by a DP over models; (scale, cores per model)."""
    m = len(curves)
    # best[k][c]: the best min-scale of the first k models using at most c cores; choice for backtracking
    best = np.full((m + 1, cores + 1), -1.0)
    best[0, :] = math.inf
    choice = np.zeros((m + 1, cores + 1), dtype=int)
    for k, (curve, load) in enumerate(zip(curves, loads, strict=True), start=1):
        scale = curve.capacity / load
        for c in range(cores + 1):
            for ck in range(1, c + 1):
                value = min(best[k - 1, c - ck], scale[ck])
                if value > best[k, c]:
                    best[k, c], choice[k, c] = value, ck
    alloc, c = [], cores
    for k in range(m, 0, -1):
        ck = int(choice[k, c])
        alloc.append(ck)
        c -= ck
    alloc.reverse()
    return float(best[m, cores]), alloc


def _inputs(
    profiles: Mapping[str, Any],
    cores: int,
    loads: Mapping[str, float],
    slo_ms: float | Mapping[str, float],
) -> tuple[list[str], dict[str, float], dict[str, float]]:
    cores = check_positive("cores", cores, _EXAMPLE)
    names = list(profiles)
    if not names:
        msg = f"optimize_fleet needs at least one profile; example: {_EXAMPLE}"
        raise ValueError(msg)
    slos = dict(slo_ms) if isinstance(slo_ms, Mapping) else dict.fromkeys(names, float(slo_ms))
    for label, values in (("loads", loads), ("slo_ms", slos)):
        for name in names:
            value = values.get(name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                msg = f"{label}[{name!r}] must be a positive number, got {value!r}; example: {_EXAMPLE}"
                raise ValueError(msg)
    if len(names) > cores:
        msg = f"{len(names)} models cannot each get a core of {cores}; example: cores={len(names)} or more"
        raise InfeasiblePlanError(msg)
    return names, {n: float(loads[n]) for n in names}, {n: float(slos[n]) for n in names}


def optimize_fleet(
    profiles: Mapping[str, Profile | Mapping[str, Profile]],
    cores: int,
    loads: Mapping[str, float],
    slo_ms: float | Mapping[str, float],
    *,
    max_batch: int | None = None,
    delay_ms: float = 5.0,
    quantile: float = 0.95,
    statistic: str = "median",
) -> dict[str, Plan]:
    """{name: Plan} maximising the load scale at which every model keeps 95 % within its objective.

    Each plan's meta holds its cores, the fleet's `scale` (×loads every model sustains),
    `capacity_rps`, `slo_ms` and `variant`. A model may map to {variant: Profile} (e.g. eager and
    TorchScript, each profiled at the interference it will see): the plan picks the best variant
    per model. Pass co-run profiles through `packrat_lab.fleet.corun.corun_view` so the plan
    prices the interference it will see.
    InfeasiblePlanError when some model cannot meet its objective even alone on every core.
    """
    names, load, slo = _inputs(profiles, cores, loads, slo_ms)
    curves = []
    for n in names:
        given = profiles[n]
        variants = given if isinstance(given, Mapping) else {"": given}
        curves.append(
            best_variant(
                n,
                {
                    v: model_curve(
                        n,
                        p,
                        cores,
                        slo[n],
                        max_batch=max_batch,
                        delay_ms=delay_ms,
                        quantile=quantile,
                        statistic=statistic,
                    )
                    for v, p in variants.items()
                },
            )
        )
    scale, alloc = allocate(curves, [load[n] for n in names], cores)
    if not scale > 0:
        worst = min(curves, key=lambda cv: float(cv.capacity[-1]) / load[cv.name])
        msg = f"model {worst.name!r} cannot keep {quantile:.0%} of queries within {worst.slo_ms:g} ms on any share of {cores} cores; example: a larger slo_ms"
        raise InfeasiblePlanError(msg)
    out: dict[str, Plan] = {}
    for curve, c in zip(curves, alloc, strict=True):
        plan = curve.plans[c]
        assert plan is not None
        meta = {
            **plan.meta,
            "fleet_cores": c,
            "scale": scale,
            "capacity_rps": float(curve.capacity[c]),
            "load_rps": load[curve.name],
            "slo_ms": curve.slo_ms,
        }
        out[curve.name] = replace(plan, name="fleet", meta=meta)
    return out


def exhaustive_fleet(
    profiles: Mapping[str, Profile],
    cores: int,
    loads: Mapping[str, float],
    slo_ms: float | Mapping[str, float],
    *,
    max_batch: int | None = None,
    delay_ms: float = 5.0,
    quantile: float = 0.95,
) -> tuple[float, dict[str, int]]:
    """Ground truth for tests and the benchmark: every core split × every batch bound per model.

    Same queue model, but no Pareto pruning, no monotone fill and no DP: the best min-scale and
    the cores per model that reach it.
    """
    names, load, slo = _inputs(profiles, cores, loads, slo_ms)
    curves = [
        model_curve(
            n,
            profiles[n],
            cores,
            slo[n],
            max_batch=max_batch,
            delay_ms=delay_ms,
            quantile=quantile,
            prune=False,
        )
        for n in names
    ]
    # scale of model k on c cores for each batch bound tried there
    per_core: list[dict[int, list[float]]] = []
    for curve in curves:
        table: dict[int, list[float]] = {}
        for (c, _), rate in curve.by_batch.items():
            table.setdefault(c, []).append(rate / load[curve.name])
        per_core.append(table)
    best, best_alloc = 0.0, [0] * len(names)
    for alloc in product(range(1, cores + 1), repeat=len(names)):
        if sum(alloc) > cores:
            continue
        # each model picks its batch bound independently, so the best over every combination of
        # bounds is the min over models of each one's best bound (no combination is skipped)
        value = min(max(per_core[k].get(c, [0.0])) for k, c in enumerate(alloc))
        if value > best:
            best, best_alloc = value, list(alloc)
    return best, dict(zip(names, best_alloc, strict=True))
