"""The Packrat plan and its baselines for one (T, B), as one ordered list: what every view compares."""

from __future__ import annotations

from typing import Any

from packrat_lab.plan import Plan
from packrat_lab.profiling.table import Profile

__all__ = ["compare_plans", "comparison_rows"]


def compare_plans(
    profile: Profile, cores: int, batch: int, *, all_cores: bool = False, statistic: str = "median"
) -> list[Plan]:
    """[packrat, fat, thin, homogeneous]; baselines the profile cannot price are left out."""
    from packrat_lab.optimizer import baselines, optimize

    best = optimize(profile, cores, batch, all_cores=all_cores, statistic=statistic)
    others = baselines(profile, cores, batch, statistic=statistic, skip_missing=True)
    return [best, *others.values()]


def comparison_rows(plans: list[Plan], baseline: str = "fat") -> list[dict[str, Any]]:
    """Rows with expected latency, throughput and expected speedup over the named baseline."""
    base = next((p.expected_latency_ms for p in plans if p.name == baseline), None)
    rows = []
    for p in plans:
        lat = p.expected_latency_ms
        rows.append(
            {
                "plan": p.name,
                "config": str(p),
                "text": p.text,
                "expected_latency_ms": lat,
                "expected_throughput": p.expected_throughput,
                "speedup_vs_" + baseline: (base / lat) if base and lat else None,
            }
        )
    return rows
