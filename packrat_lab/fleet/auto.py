"""Fleet auto mode: re-plan the core split from measured arrival rates, with hysteresis.

Every step reads each pool's `submitted` counter, turns the growth since the last step into a
rate (smoothed), asks `optimize_fleet` for the joint plan at those rates, and returns it only when
the same new split has been proposed for `hysteresis_s` and `min_interval_s` has passed since the
last change; the fleet then moves cores by per-model active-passive switches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from packrat_lab.plan import Plan

__all__ = ["FleetAutoPolicy"]

Planner = Callable[[Mapping[str, float]], "dict[str, Plan]"]


class FleetAutoPolicy:
    """Rates in, a new {name: Plan} out when the proposed split is new and has held long enough."""

    def __init__(
        self,
        fleet: Any,
        slo_ms: float | Mapping[str, float],
        *,
        hysteresis_s: float = 3.0,
        min_interval_s: float = 10.0,
        smoothing: float = 0.5,
        floor_rps: float = 1.0,
        planner: Planner | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if hysteresis_s < 0 or min_interval_s < 0 or not 0 < smoothing <= 1:
            msg = f"hysteresis_s and min_interval_s must be ≥ 0 and smoothing in (0, 1], got {hysteresis_s!r}, {min_interval_s!r}, {smoothing!r}; example: FleetAutoPolicy(fleet, 50, hysteresis_s=3)"
            raise ValueError(msg)
        self.fleet = fleet
        self.slo_ms = slo_ms
        self.hysteresis_s = hysteresis_s
        self.min_interval_s = min_interval_s
        self.smoothing = smoothing
        self.floor_rps = floor_rps
        self.clock = clock
        self.planner: Planner = planner or self._optimize
        self.rates: dict[str, float] = {}
        self._last: tuple[float, dict[str, int]] | None = None
        self._proposal: dict[str, str] | None = None
        self._since: float | None = None
        self._changed: float | None = None

    def _optimize(self, rates: Mapping[str, float]) -> dict[str, Plan]:
        from packrat_lab.optimizer.fleet import optimize_fleet

        return optimize_fleet(self.fleet.profiles, self.fleet.host.usable_cores, rates, self.slo_ms)

    def observe(self, counts: Mapping[str, int]) -> dict[str, float]:
        """Fold submitted-request counters into smoothed rates (req/s)."""
        now = self.clock()
        if self._last is not None:
            then, before = self._last
            elapsed = max(now - then, 1e-9)
            for name, count in counts.items():
                fresh = max(0, count - before.get(name, count)) / elapsed
                old = self.rates.get(name, fresh)
                self.rates[name] = old + self.smoothing * (fresh - old)
        self._last = (now, dict(counts))
        return dict(self.rates)

    def step(self, counts: Mapping[str, int] | None = None) -> dict[str, Plan] | None:
        """One decision: the plans to switch to now, or None."""
        if counts is None:
            counts = {
                name: int(stats["submitted"])
                for name, stats in self.fleet.stats().items()
                if "submitted" in stats
            }
        rates = self.observe(counts)
        if len(rates) < len(counts):
            return None  # the first look only sets the baseline
        target = self.planner({n: max(r, self.floor_rps) for n, r in rates.items()})
        proposal = {n: p.text for n, p in target.items()}
        current = {n: p.text for n, p in self.fleet.plans.items()}
        now = self.clock()
        if proposal == current:
            self._proposal, self._since = None, None
            return None
        if proposal != self._proposal:
            self._proposal, self._since = proposal, now
            return None
        assert self._since is not None
        if now - self._since < self.hysteresis_s:
            return None
        if self._changed is not None and now - self._changed < self.min_interval_s:
            return None
        self._changed = now
        self._proposal, self._since = None, None
        return target
