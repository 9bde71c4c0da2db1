"""What the notebook UI calls: the public API behind one small seam so tests can inject fakes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from packrat_lab.plan import Plan
    from packrat_lab.profiling.measurement import Measurement
    from packrat_lab.profiling.table import Profile

__all__ = ["EAGER_FAT", "Backend", "LoadLike", "PoolLike", "RealBackend", "stat"]

EAGER_FAT = "eager-fat"  # the fat plan under eager fp32, beside a profile over several backends

ProgressFn = Callable[[int, int, "Measurement"], None]


class PoolLike(Protocol):
    """The part of packrat_lab.Pool the UI drives."""

    def reconfigure(self, plan: Any) -> Any: ...
    def stats(self) -> Any: ...
    def events(self) -> Any: ...
    def set_auto(self, enabled: bool) -> Any: ...
    def set_slo(self, slo_ms: float | None) -> Any: ...
    def close(self) -> Any: ...


class LoadLike(Protocol):
    """A running load generator the Serve step can steer and stop (a LoadProcess in production)."""

    @property
    def alive(self) -> bool: ...
    @property
    def error(self) -> str | None: ...
    def set_rate(self, rate: float) -> None: ...
    def counts(self) -> dict[str, float]: ...
    def stop(self, timeout: float = 10.0) -> None: ...


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
        backends: Sequence[str] = ("eager",),
    ) -> Profile: ...

    def plans(self, profile: Profile, *, cores: int, batch: int) -> dict[str, Plan]: ...

    def validate(
        self, model: Any, plans: Sequence[Plan], *, progress: Callable[[str], None]
    ) -> dict[str, float]: ...

    def pool(self, model: Any, plan: Plan, profile: Profile | None) -> PoolLike: ...

    def serve(
        self, model: Any, plan: Plan, profile: Profile | None, *, slo_ms: float | None = None
    ) -> PoolLike: ...

    def start_load(self, pool: PoolLike, *, rate: float, poisson: bool, seed: int) -> LoadLike: ...


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
        backends: Sequence[str] = ("eager",),
    ) -> Profile:
        """Measure L[t][b] on this host's cores (each point in its own pinned process), per backend."""
        from packrat_lab.profiling.profiler import profile

        return profile(
            model,
            cores=cores,
            batches=list(batches),
            point_time_s=point_time_s,
            time_budget_s=time_budget_s,
            progress=progress,
            cancel=cancel,
            backends=list(backends),
        )

    def plans(self, profile: Profile, *, cores: int, batch: int) -> dict[str, Plan]:
        """The DP plan first, then the baselines it is judged against, keyed by plan name."""
        from packrat_lab import optimizer

        best = optimizer.optimize(profile, cores=cores, batch=batch)
        out: dict[str, Plan] = {best.name: best}
        for name, plan in optimizer.baselines(profile, cores, batch, skip_missing=True).items():
            out.setdefault(name, plan)
        if profile.backends != ["eager"]:  # what the user runs today: eager, one instance, every core
            eager = optimizer.baselines(profile.only_backend("eager"), cores, batch, skip_missing=True)
            if "fat" in eager:
                out.setdefault(EAGER_FAT, replace(eager["fat"], name=EAGER_FAT))
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
        """An in-kernel pool running `plan` (library use and %packrat serve: the user calls it)."""
        from packrat_lab.serving.pool import Pool

        pool: PoolLike = Pool(model, plan, profile=profile)
        return pool

    def serve(
        self, model: Any, plan: Plan, profile: Profile | None, *, slo_ms: float | None = None
    ) -> PoolLike:
        """The Lab's pool: `packrat-lab serve [--slo-ms MS]` in its own process, driven over its management routes."""
        from packrat_lab.ui.remote import start_server

        return start_server(model, plan, profile, slo_ms=slo_ms)

    def start_load(self, pool: PoolLike, *, rate: float, poisson: bool, seed: int) -> LoadLike:
        """Continuous seeded load on the pool's URL from a separate process."""
        from packrat_lab.loadgen import LoadProcess

        url = getattr(pool, "url", None)
        if not isinstance(url, str):
            msg = "the Lab sends load only to a pool served over HTTP (start it from the Serve step)"
            raise TypeError(msg)
        return LoadProcess(url, rate=rate, poisson=poisson, seed=seed)
