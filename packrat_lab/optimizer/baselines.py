"""The plans Packrat is judged against: fat ⟨1,T,B⟩, thin (one-thread instances), best homogeneous."""

from __future__ import annotations

import math

import numpy as np

from packrat_lab.errors import ProfileMissingPointError
from packrat_lab.optimizer.common import DenseGrid, build_plan, check_positive, dense_grid
from packrat_lab.plan import Plan
from packrat_lab.profiling.table import Profile

__all__ = ["baselines", "fat_plan", "homogeneous_plan", "thin_plan"]

_EXAMPLE = "fat_plan(profile, cores=16, batch=64)"


def _grid(profile: Profile, cores: int, batch: int, statistic: str) -> DenseGrid:
    cores = check_positive("cores", cores, _EXAMPLE)
    batch = check_positive("batch", batch, _EXAMPLE)
    return dense_grid(profile, cores, batch, statistic)


def _missing(what: str, threads: int, batch: int, profile: Profile, cores: int) -> ProfileMissingPointError:
    """The error for a baseline the profile cannot price, naming the point and the fix."""
    msg = (
        f"{what} needs the point threads={threads} batch={batch}, which the profile of {profile.model!r} lacks "
        f"(measured threads {profile.threads}, batches {profile.batches}); example fix: "
        f"packrat-lab profile {profile.model} --cores {cores} --batch {batch}"
    )
    return ProfileMissingPointError(msg)


def _column(grid: DenseGrid, batch: int) -> int | None:
    """Index of a measured batch size, or None."""
    found = np.flatnonzero(grid.batches == batch)
    return int(found[0]) if found.size else None


def fat_plan(profile: Profile, cores: int, batch: int, *, statistic: str = "median") -> Plan:
    """One instance with every core and the whole batch, ⟨1,T,B⟩: what a default deployment does."""
    grid = _grid(profile, cores, batch, statistic)
    j = _column(grid, batch)
    if j is None or not math.isfinite(grid.latency[cores, j]):
        raise _missing(f"fat baseline ⟨1,{cores},{batch}⟩", cores, batch, profile, cores)
    return build_plan(grid, [(cores, j)], "fat", {"cores": cores, "batch": batch})


def thin_plan(profile: Profile, cores: int, batch: int, *, statistic: str = "median") -> Plan:
    """T one-thread instances splitting B as evenly as the measured batch sizes allow.

    If B < T there is not a sample per core: B one-thread instances of batch 1, leaving cores idle.
    "Evenly" means the smallest largest slice, then the largest smallest slice.
    """
    grid = _grid(profile, cores, batch, statistic)
    parts = min(cores, batch)
    sizes = grid.batches[np.isfinite(grid.latency[1])] if cores >= 1 else grid.batches[:0]
    share = -(-batch // parts)
    for cap in (int(s) for s in sizes if s >= share):
        for floor in (int(s) for s in sizes[::-1] if s <= batch // parts):
            allowed = sizes[(sizes >= floor) & (sizes <= cap)]
            split = _split(batch, parts, allowed)
            if split is not None:
                picks = [(1, int(np.flatnonzero(grid.batches == b)[0])) for b in split]
                return build_plan(grid, picks, "thin", {"cores": cores, "batch": batch})
    raise _missing(
        f"thin baseline ({parts} one-thread instances for batch {batch})", 1, share, profile, cores
    )


def _split(total: int, parts: int, sizes: np.ndarray) -> list[int] | None:
    """`total` as exactly `parts` values from `sizes` (largest first), or None."""
    reach = np.zeros((parts + 1, total + 1), dtype=bool)
    reach[0, 0] = True
    for k in range(1, parts + 1):
        for s in sizes:
            reach[k, s:] |= reach[k - 1, : total + 1 - s]
    if not reach[parts, total]:
        return None
    out, left = [], total
    for k in range(parts, 0, -1):
        s = next(int(s) for s in sizes[::-1] if s <= left and reach[k - 1, left - s])
        out.append(s)
        left -= s
    return out


def homogeneous_plan(profile: Profile, cores: int, batch: int, *, statistic: str = "median") -> Plan:
    """The best ⟨i,t,b⟩ of identical instances with i·t <= T and i·b = B (ties: fewer threads, then instances)."""
    grid = _grid(profile, cores, batch, statistic)
    best: tuple[float, int, int, int, int] | None = None
    for j, b in enumerate(int(b) for b in grid.batches):
        if batch % b:
            continue
        count = batch // b
        for t in range(1, cores // count + 1):
            lat = float(grid.latency[t, j])
            if math.isfinite(lat):
                key = (lat, count * t, count, t, j)
                best = key if best is None or key < best else best
    if best is None:
        raise _missing(f"homogeneous baseline for batch {batch} on {cores} cores", 1, batch, profile, cores)
    _, _, count, t, j = best
    return build_plan(grid, [(t, j)] * count, "homogeneous", {"cores": cores, "batch": batch})


def baselines(
    profile: Profile, cores: int, batch: int, *, statistic: str = "median", skip_missing: bool = False
) -> dict[str, Plan]:
    """fat, thin and homogeneous plans by name; with skip_missing, those the profile cannot price are left out."""
    out: dict[str, Plan] = {}
    for build in (fat_plan, thin_plan, homogeneous_plan):
        try:
            plan = build(profile, cores, batch, statistic=statistic)
        except ProfileMissingPointError:
            if not skip_missing:
                raise
            continue
        out[plan.name] = plan
    return out
