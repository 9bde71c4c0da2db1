"""The straightforward Python loop over profiled items: the yardstick for speed and exactness."""

from __future__ import annotations

import math

import numpy as np

from packrat_lab.optimizer.common import check_positive
from packrat_lab.profiling.table import Profile

__all__ = ["solve_reference_loop"]


def solve_reference_loop(
    profile: Profile, cores: int, batch: int, *, all_cores: bool = False, statistic: str = "median"
) -> np.ndarray:
    """F[T'][B'] for every T' <= cores, B' <= batch by plain nested loops (slow on purpose).

    F[T'][B'] = min over measured items (t, b) with t <= T', b <= B' of max(L[t][b], F[T'-t][B'-b]);
    F[T'][0] is 0 for every T' (threads may be left over) or, with all_cores, only for T' = 0.
    """
    cores = check_positive("cores", cores, "solve_reference_loop(profile, cores=4, batch=8)")
    batch = check_positive("batch", batch, "solve_reference_loop(profile, cores=4, batch=8)")
    grid = profile.grid(statistic)
    items = [
        (int(t), int(b), float(grid.latency_ms[i, j]))
        for i, t in enumerate(grid.threads)
        for j, b in enumerate(grid.batches)
        if math.isfinite(grid.latency_ms[i, j])
    ]
    inf = math.inf
    table = [[inf] * (batch + 1) for _ in range(cores + 1)]
    for tp in range(cores + 1):
        table[tp][0] = 0.0 if (tp == 0 or not all_cores) else inf
    for tp in range(1, cores + 1):
        row = table[tp]
        for bp in range(1, batch + 1):
            best = inf
            for t, b, lat in items:
                if t <= tp and b <= bp:
                    best = min(best, max(lat, table[tp - t][bp - b]))
            row[bp] = best
    return np.array(table, dtype=float)
