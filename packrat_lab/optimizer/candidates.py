"""Distinct candidate configurations ranked by expected latency: what measurement chooses among.

The DP returns one optimum of the isolated-latency objective, but co-running instances slow each
other by more than the gaps between near-optimal plans. A branch-and-bound enumeration keeps the
`limit` configurations with the lowest expected latency, each with one runtime setting and one
backend throughout (plus the DP's own plan, which may mix them). Only measurements the profile's
accuracy guard admits take part.
"""

from __future__ import annotations

import heapq
import math

from packrat_lab.optimizer.common import check_positive
from packrat_lab.plan import Instance, Plan
from packrat_lab.profiling.table import Profile
from packrat_lab.settings import RuntimeSetting
from packrat_lab.validation import config_key
from packrat_lab.workloads.backends.names import parse_backend_key

__all__ = ["candidate_plans", "setting_variants"]

MAX_NODES = 200_000  # enumeration steps per setting; past it the best found so far are kept

Item = tuple[float, int, int]  # (latency ms, threads, batch)


def _items(
    profile: Profile, setting: str, backend: str, cores: int, batch: int, statistic: str
) -> list[Item]:
    """Admissible measured points of one (setting, backend) that fit, fastest first."""
    return sorted(
        (m.statistic(statistic), m.threads, m.batch)
        for m in profile.usable_measurements
        if m.setting == setting
        and m.backend_key == backend
        and m.threads <= cores
        and m.batch <= batch
        and math.isfinite(m.statistic(statistic))
    )


def _best_multisets(
    items: list[Item], cores: int, batch: int, all_cores: bool, limit: int
) -> list[tuple[float, tuple[int, ...]]]:
    """The `limit` multisets (as item indices) with the lowest max latency, Σb = batch, Σt <= (==) cores."""
    heap: list[tuple[float, int, tuple[int, ...]]] = []  # max-heap by latency via negation
    nodes = 0

    def bound() -> float:
        return -heap[0][0] if len(heap) >= limit else math.inf

    def extend(start: int, threads_left: int, batch_left: int, worst: float, picked: tuple[int, ...]) -> None:
        nonlocal nodes
        nodes += 1
        if batch_left == 0:
            if not all_cores or threads_left == 0:
                entry = (-worst, -len(picked), picked)
                if len(heap) < limit:
                    heapq.heappush(heap, entry)
                elif worst < bound():
                    heapq.heapreplace(heap, entry)
            return
        if threads_left == 0 or nodes > MAX_NODES:
            return
        for k in range(start, len(items)):
            lat, t, b = items[k]
            if max(worst, lat) > bound():  # items are sorted by latency: nothing later can do better
                break
            if t <= threads_left and b <= batch_left:
                extend(k, threads_left - t, batch_left - b, max(worst, lat), (*picked, k))

    extend(0, cores, batch, 0.0, ())
    return sorted((-neg, picked) for neg, _, picked in heap)


def candidate_plans(
    profile: Profile,
    cores: int,
    batch: int,
    *,
    dp_plan: Plan | None = None,
    all_cores: bool = False,
    statistic: str = "median",
    limit: int = 16,
) -> list[Plan]:
    """Up to `limit` distinct configurations (plus `dp_plan`) ordered by expected latency, fewest threads first on ties."""
    example = "candidate_plans(profile, cores=2, batch=8)"
    cores = check_positive("cores", cores, example)
    batch = check_positive("batch", batch, example)
    limit = check_positive("limit", limit, "candidate_plans(profile, 2, 8, limit=8)")
    found: dict[str, Plan] = {}
    if dp_plan is not None:
        found[config_key(dp_plan)] = dp_plan
    for name, key in sorted({(m.setting, m.backend_key) for m in profile.usable_measurements}):
        setting = profile.settings.get(name) or RuntimeSetting(name)
        backend = parse_backend_key(key)
        items = _items(profile, name, key, cores, batch, statistic)
        for worst, picked in _best_multisets(items, cores, batch, all_cores, limit):
            instances = tuple(
                Instance(items[k][1], items[k][2], setting, (), items[k][0], backend)
                for k in sorted(picked, key=lambda k: (-items[k][1], -items[k][2]))
            )
            plan = Plan(
                instances, worst, "candidate", {"cores": cores, "batch": batch, "statistic": statistic}
            )
            found.setdefault(config_key(plan), plan)
    ranked = sorted(
        found.values(),
        key=lambda p: (
            p.expected_latency_ms or math.inf,
            p.total_threads,
            len(p.instances),
            p is not dp_plan,
        ),
    )
    top = ranked[:limit]
    if dp_plan is not None and not any(p is dp_plan for p in top):
        top.append(dp_plan)
    return top


def setting_variants(profile: Profile, plan: Plan, statistic: str = "median") -> list[Plan]:
    """The same ⟨i,t,b⟩ (and backends) under each other runtime setting the profile measured at all its points.

    Which setting wins can flip when instances share the machine (a spinning OpenMP runtime
    suffers most), so a measured choice should see the DP plan under each setting too.
    """
    out = []
    for name in sorted({m.setting for m in profile.measurements}):
        points = [
            [
                m
                for m in profile.points(i.threads, i.batch)
                if m.setting == name and m.backend_key == i.backend.key
            ]
            for i in plan.instances
        ]
        if not all(points) or all(i.setting.name == name for i in plan.instances):
            continue
        setting = profile.settings.get(name) or RuntimeSetting(name)
        latencies = [found[0].statistic(statistic) for found in points]
        instances = tuple(
            Instance(i.threads, i.batch, setting, i.cores, lat, i.backend)
            for i, lat in zip(plan.instances, latencies, strict=True)
        )
        out.append(Plan(instances, max(latencies), f"{plan.name}@{name}", dict(plan.meta)))
    return out
