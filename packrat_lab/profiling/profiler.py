"""profile(): measure L[t][b] of one model instance on this host, point by point, in isolation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from packrat_lab.errors import InfeasiblePlanError
from packrat_lab.host import HostInfo, assign_cores, detect_host, fingerprint, require_cores
from packrat_lab.profiling.measurement import Measurement
from packrat_lab.profiling.runner import GroupRunner, PointCancelled, run_group
from packrat_lab.profiling.spec import PointGroup, ProfileGrid, default_batches
from packrat_lab.profiling.stopping import StoppingRule
from packrat_lab.profiling.table import Profile
from packrat_lab.settings import RuntimeSetting, resolve_settings

__all__ = ["ProgressCallback", "profile"]

ProgressCallback = Callable[[int, int, Measurement], object]
Cancel = threading.Event | Callable[[], bool] | None
SettingsArg = Mapping[str, Mapping[str, str]] | Sequence[str] | None
MIN_POINT_TIME_S = 0.5


def _cancel_check(cancel: Cancel) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    if callable(cancel):
        return lambda: bool(cancel())
    msg = f"cancel must be a threading.Event or a callable, got {type(cancel).__name__}; example: cancel=threading.Event()"
    raise ValueError(msg)


def resolve_threads(threads: Sequence[int] | None, cores: int | None, host: HostInfo) -> tuple[int, ...]:
    """Thread counts to measure, checked against the usable cores (never oversubscribe)."""
    if cores is not None:
        require_cores(cores, host)
    limit = cores or host.usable_cores
    chosen = tuple(range(1, limit + 1)) if threads is None else tuple(sorted(set(threads)))
    too_many = [t for t in chosen if isinstance(t, int) and t > limit]
    if too_many:
        msg = f"threads={too_many[-1]} needs {too_many[-1]} cores but only {limit} are usable here; example: threads=[1, {limit}]"
        raise InfeasiblePlanError(msg)
    return chosen


def _settings_tuple(settings: SettingsArg) -> tuple[RuntimeSetting, ...]:
    if settings is None or isinstance(settings, Mapping):
        return tuple(resolve_settings(settings).values())
    if isinstance(settings, str):
        return tuple(resolve_settings([s.strip() for s in settings.split(",") if s.strip()]).values())
    return tuple(resolve_settings(list(settings)).values())


def profile(
    model: Any,
    *,
    cores: int | None = None,
    threads: Sequence[int] | None = None,
    batches: Sequence[int] | None = None,
    max_batch: int = 16,
    extra_batches: Sequence[int] = (),
    settings: SettingsArg = None,
    warmup: int = 10,
    min_samples: int = 10,
    max_samples: int = 100,
    precision: float = 0.02,
    point_time_s: float = 10.0,
    time_budget_s: float | None = None,
    progress: ProgressCallback | None = None,
    cancel: Cancel = None,
    torchscript: bool = False,
    group_batches: bool = True,
    runner: GroupRunner | None = None,
    **workload_options: Any,
) -> Profile:
    """Measure every (threads, batch, setting) point pinned and isolated; partial on cancel.

    Points sharing (threads, setting) run in one fresh process with their batch sizes taking
    turns (`group_batches=False`: one process per point). `runner` replaces the child process in tests.
    """
    from packrat_lab.workloads.registry import get_workload

    host = detect_host()
    thread_counts = resolve_threads(threads, cores, host)
    batch_sizes = tuple(batches) if batches is not None else tuple(default_batches(max_batch, extra_batches))
    if batches is not None and extra_batches:
        batch_sizes = tuple(sorted(set(batch_sizes) | set(extra_batches)))
    grid = ProfileGrid(thread_counts, tuple(sorted(set(batch_sizes))), _settings_tuple(settings))
    rule = StoppingRule(precision, min(min_samples, max_samples), max_samples, point_time_s)
    if warmup < 0:
        msg = f"warmup must be >= 0 iterations, got {warmup!r}; example: warmup=10"
        raise ValueError(msg)
    if time_budget_s is not None and not time_budget_s > 0:
        msg = f"time_budget_s must be positive seconds, got {time_budget_s!r}; example: time_budget_s=600"
        raise ValueError(msg)
    is_cancelled = _cancel_check(cancel)
    options = dict(workload_options)
    if torchscript:
        options["torchscript"] = True
    workload = get_workload(model, **options)

    result = Profile(workload.name, [], {s.name: s for s in grid.settings}, fingerprint(host))
    run = runner or run_group
    started = time.perf_counter()
    stopped: str | None = None
    total = len(grid)
    done = 0

    def finished(measurement: Measurement) -> None:
        nonlocal done
        done += 1
        result.add(measurement)
        if progress is not None:
            progress(done, total, measurement)

    for t, setting, sizes in grid.groups(group_batches):
        if is_cancelled():
            stopped = "cancelled"
            break
        cap = point_time_s
        if time_budget_s is not None:
            left = time_budget_s - (time.perf_counter() - started)
            fit = min(len(sizes), int(left // MIN_POINT_TIME_S))
            if fit < 1:
                stopped = "time-budget"
                break
            if fit < len(sizes):  # keep the small batches that fit; the budget ends with this group
                sizes, stopped = sizes[:fit], "time-budget"
            cap = min(cap, left / fit)
        group = PointGroup(
            workload.spec,
            t,
            sizes,
            setting,
            assign_cores([t], host)[0],
            StoppingRule(rule.precision, rule.min_samples, rule.max_samples, cap),
            warmup_min=min(3, warmup),
            warmup_max=warmup,
        )
        try:
            run(group, is_cancelled, finished)
        except PointCancelled:
            stopped = "cancelled"
            break
        if stopped is not None:
            break

    result.meta = {
        "workload": workload.to_dict(),
        "settings": {s.name: s.env_dict for s in grid.settings},
        "grid": grid.to_dict(),
        "rule": rule.to_dict(),
        "warmup": warmup,
        "wall_s": round(time.perf_counter() - started, 3),
        "points": len(result.measurements),
        "points_planned": total,
        "cancelled": stopped == "cancelled",
        "grouped": group_batches,
        "stopped": stopped,
    }
    return result
