"""Auto mode: reconfigure when the estimated batch size has changed and stayed changed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from packrat_lab.plan import Plan
    from packrat_lab.profiling.table import Profile

__all__ = ["AutoPolicy", "optimizer_planner"]

Planner = Callable[[int], "Plan"]


def optimizer_planner(profile: Profile, cores: int | None = None) -> Planner:
    """A planner that asks the optimizer for the best plan at batch B on this host's cores."""

    def plan_for(batch: int) -> Plan:
        from packrat_lab.host import usable_core_count
        from packrat_lab.optimizer import optimize  # lazy: written elsewhere, numpy only

        return optimize(profile, cores=cores or usable_core_count(), batch=batch)

    return plan_for


class AutoPolicy:
    """Hysteresis + minimum interval around a planner, driven by `step` with an injectable clock.

    `step(current_batch, estimated_batch)` returns a new Plan when the estimate has differed from
    the current plan's B for `hysteresis_s` and `min_interval_s` has passed since the last change;
    else None. The paper's simulator used a 1 s timeout.
    """

    def __init__(
        self,
        planner: Planner,
        *,
        hysteresis_s: float = 1.0,
        min_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if hysteresis_s < 0 or min_interval_s < 0:
            msg = f"hysteresis_s and min_interval_s must be ≥ 0, got {hysteresis_s!r}, {min_interval_s!r}; example: AutoPolicy(p, hysteresis_s=1.0)"
            raise ValueError(msg)
        self.planner = planner
        self.hysteresis_s = hysteresis_s
        self.min_interval_s = min_interval_s
        self.clock = clock
        self._since: float | None = None
        self._target: int | None = None
        self._last_change: float | None = None

    def step(self, current_batch: int, estimated_batch: int) -> Plan | None:
        """Advance the policy by one estimate; a Plan means 'reconfigure to this now'."""
        now = self.clock()
        if estimated_batch == current_batch:
            self._since, self._target = None, None
            return None
        if self._target != estimated_batch:  # a new divergence (or a different one) restarts the timer
            self._since, self._target = now, estimated_batch
            return None
        assert self._since is not None
        if now - self._since < self.hysteresis_s:
            return None
        if self._last_change is not None and now - self._last_change < self.min_interval_s:
            return None
        plan = self.planner(estimated_batch)
        self.mark_changed()
        return plan

    def mark_changed(self) -> None:
        """Record a reconfiguration (also one made by hand) so the interval counts from it."""
        self._last_change = self.clock()
        self._since, self._target = None, None
