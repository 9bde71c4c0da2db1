"""Exhaustive search over multisets of profiled items: the ground truth for small T and B in tests."""

from __future__ import annotations

import math

from packrat_lab.optimizer.common import check_positive
from packrat_lab.profiling.table import Profile

__all__ = ["exhaustive_best", "exhaustive_optimum"]

_LIMIT = 64  # T and B above this make the enumeration explode; the oracle is for tests


def exhaustive_optimum(
    profile: Profile, cores: int, batch: int, all_cores: bool = False, statistic: str = "median"
) -> float:
    """Smallest max_k L[t_k][b_k] over every multiset of measured points with Σt <= T (== T) and Σb = B.

    Returns inf when no multiset fits. Shares no code with the DP, so it can catch the DP's mistakes.
    """
    return exhaustive_best(profile, cores, batch, all_cores, statistic)[0]


def exhaustive_best(
    profile: Profile, cores: int, batch: int, all_cores: bool = False, statistic: str = "median"
) -> tuple[float, int, int]:
    """(objective, total threads, instances) of the best multiset, ties broken as optimize promises."""
    cores = check_positive("cores", cores, "exhaustive_optimum(profile, cores=4, batch=8)")
    batch = check_positive("batch", batch, "exhaustive_optimum(profile, cores=4, batch=8)")
    if cores > _LIMIT or batch > _LIMIT:
        msg = f"exhaustive search is for small grids, got cores={cores} batch={batch}; example: cores=6, batch=16"
        raise ValueError(msg)
    grid = profile.grid(statistic)
    items = sorted(
        (int(t), int(b), float(grid.latency_ms[i, j]))
        for i, t in enumerate(grid.threads)
        for j, b in enumerate(grid.batches)
        if math.isfinite(grid.latency_ms[i, j]) and t <= cores and b <= batch
    )
    best = (math.inf, 0, 0)

    def extend(start: int, threads_left: int, batch_left: int, worst: float, count: int) -> None:
        nonlocal best
        if batch_left == 0:
            if not all_cores or threads_left == 0:
                best = min(best, (worst, cores - threads_left, count))
            return
        for k in range(start, len(items)):
            t, b, lat = items[k]
            if t <= threads_left and b <= batch_left:
                extend(k, threads_left - t, batch_left - b, max(worst, lat), count + 1)

    extend(0, cores, batch, 0.0, 0)
    return best
