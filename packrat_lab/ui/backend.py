"""What the notebook UI calls: the public API behind one small seam so tests can inject fakes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from packrat_lab.plan import Plan
    from packrat_lab.profiling.measurement import Measurement
    from packrat_lab.profiling.table import Profile

__all__ = ["Backend", "PoolLike", "RealBackend", "stat"]

ProgressFn = Callable[[int, int, "Measurement"], None]


class PoolLike(Protocol):
    """The part of packrat_lab.Pool the UI drives."""

    def reconfigure(self, plan: Any) -> Any: ...
    def stats(self) -> Any: ...
    def events(self) -> Any: ...
    def set_auto(self, enabled: bool) -> Any: ...
    def close(self) -> Any: ...


class Backend(Protocol):
    """Every call the widget and the magics make into packrat_lab (fakes implement the same)."""

    def profile(
        self,
        model: Any,
        *,
        cores: int,
        batches: Sequence[int],
        point_time_s: float,
        progress: ProgressFn,
        cancel: threading.Event,
        time_budget_s: float | None = None,
    ) -> Profile: ...

    def plans(self, profile: Profile, *, cores: int, batch: int) -> dict[str, Plan]: ...

    def validate(
        self, model: Any, plans: Sequence[Plan], *, progress: Callable[[str], None]
    ) -> dict[str, float]: ...

    def pool(self, model: Any, plan: Plan, profile: Profile | None) -> PoolLike: ...

    def run_load(self, pool: PoolLike, *, rate: float, duration_s: float, poisson: bool) -> Any: ...


def stat(stats: Any, name: str, default: float = 0.0) -> float:
    """One number from pool.stats(), whether it is a mapping or an object with attributes."""
    value = stats.get(name, default) if isinstance(stats, Mapping) else getattr(stats, name, default)
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default


class RealBackend:
    """The real packrat_lab API, imported on first use so the magics load without torch."""

    def profile(
        self,
        model: Any,
        *,
        cores: int,
        batches: Sequence[int],
        point_time_s: float,
        progress: ProgressFn,
        cancel: threading.Event,
        time_budget_s: float | None = None,
    ) -> Profile:
        """Measure L[t][b] on this host's cores (each point in its own pinned process)."""
        from packrat_lab.profiling.profiler import profile

        return profile(
            model,
            cores=cores,
            batches=list(batches),
            point_time_s=point_time_s,
            time_budget_s=time_budget_s,
            progress=progress,
            cancel=cancel,
        )

    def plans(self, profile: Profile, *, cores: int, batch: int) -> dict[str, Plan]:
        """The DP plan first, then the baselines it is judged against, keyed by plan name."""
        from packrat_lab import optimizer

        best = optimizer.optimize(profile, cores=cores, batch=batch)
        out: dict[str, Plan] = {best.name: best}
        for name, plan in optimizer.baselines(profile, cores, batch, skip_missing=True).items():
            out.setdefault(name, plan)
        return out

    def validate(
        self, model: Any, plans: Sequence[Plan], *, progress: Callable[[str], None]
    ) -> dict[str, float]:
        """Measured median batch latency (ms) of each plan, keyed by plan name; equal plans run once."""
        from packrat_lab.validation import validate

        unique: dict[str, Plan] = {}
        for plan in plans:
            unique.setdefault(plan.text, plan)
        report = validate(model, list(unique.values()), repeats=5, warmup=1, progress=progress)
        by_text = {r.plan.text: r.median_ms for r in report.results}
        return {plan.name: by_text[plan.text] for plan in plans if plan.text in by_text}

    def pool(self, model: Any, plan: Plan, profile: Profile | None) -> PoolLike:
        """A background serving pool running `plan`."""
        from packrat_lab.serving.pool import Pool

        pool: PoolLike = Pool(model, plan, profile=profile)
        return pool

    def run_load(self, pool: PoolLike, *, rate: float, duration_s: float, poisson: bool) -> Any:
        """Send requests to the pool at `rate` per second for `duration_s` (blocks)."""
        from packrat_lab.loadgen import run_load

        return run_load(pool, rate=rate, duration_s=duration_s, poisson=poisson)
