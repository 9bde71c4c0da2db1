"""How sure a plan is: are the profile points it rests on noisy, and is its edge over fat inside their CIs?

Plans are priced from isolated profile points. When those points are noisy, or the plan's expected
advantage over the fat instance is within the points' 95 % confidence intervals, the number is not
evidence; every view (`plan`, the Lab, the report) says so next to it and suggests validating.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from packrat_lab.plan import Plan
    from packrat_lab.profiling.measurement import Measurement
    from packrat_lab.profiling.table import Profile

__all__ = ["PlanConfidence", "plan_confidence"]

VALIDATE_HINT = "validate it before trusting it (packrat-lab validate, or Validate in the Lab)"


@dataclass(frozen=True)
class PlanConfidence:
    """Noisy points under a plan (and fat), and whether its edge over fat is within their CIs."""

    noisy_points: tuple[str, ...]  # 't=2 b=4 passive' for each noisy point the plans rest on
    within_ci: bool  # the expected advantage over fat is not outside the points' 95 % CIs
    interval_ms: tuple[float, float] | None  # the plan's expected latency range from its points' CIs
    fat_interval_ms: tuple[float, float] | None

    @property
    def sure(self) -> bool:
        """Nothing to warn about."""
        return not self.noisy_points and not self.within_ci

    def warning(self) -> str | None:
        """One line for a table, a status line or a report, or None when the plan is on firm ground."""
        parts = []
        if self.noisy_points:
            count = len(self.noisy_points)
            parts.append(f"rests on {count} noisy profile point{'s' if count > 1 else ''}")
        if self.within_ci:
            parts.append("its edge over fat is within the points' 95% confidence intervals")
        if not parts:
            return None
        return f"uncertain: {' and '.join(parts)}; {VALIDATE_HINT}"


def _point(profile: Profile, threads: int, batch: int, setting: str) -> Measurement | None:
    found = [m for m in profile.points(threads, batch) if m.setting == setting]
    if found:
        return found[0]
    others = profile.points(threads, batch)
    return min(others, key=lambda m: m.median) if others else None


def _interval(profile: Profile, plan: Plan, noisy: dict[str, None]) -> tuple[float, float] | None:
    """[max of CI lows, max of CI highs] over the plan's instances: the range of its slowest instance."""
    lows, highs = [], []
    for instance in plan.instances:
        m = _point(profile, instance.threads, instance.batch, instance.setting.name)
        if m is None:
            return None
        if m.noisy:
            noisy.setdefault(f"t={m.threads} b={m.batch} {m.setting}")
        lo, hi = m.median_ci
        if not (math.isfinite(lo) and math.isfinite(hi)):
            lo, hi = m.median, m.median
            noisy.setdefault(f"t={m.threads} b={m.batch} {m.setting}")
        lows.append(lo)
        highs.append(hi)
    return max(lows), max(highs)


def plan_confidence(profile: Profile, plan: Plan, fat: Plan | None = None) -> PlanConfidence:
    """How much of `plan`'s expected latency (and edge over `fat`) the profile's noise leaves standing."""
    noisy: dict[str, None] = {}
    interval = _interval(profile, plan, noisy)
    fat_interval = _interval(profile, fat, noisy) if fat is not None else None
    within = False
    if fat is not None and fat.text != plan.text and interval is not None and fat_interval is not None:
        # the plan looks faster, but its slow end reaches fat's fast end: the gap may be noise
        within = interval[1] >= fat_interval[0] and interval[0] <= fat_interval[1]
    return PlanConfidence(tuple(noisy), within, interval, fat_interval)
