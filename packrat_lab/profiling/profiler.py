"""profile(): measure L[t][b] of one model instance on this host, point by point, in isolation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from packrat_lab.errors import InfeasiblePlanError
from packrat_lab.host import HostInfo, assign_cores, detect_host, fingerprint, require_cores
from packrat_lab.profiling.measurement import Measurement
from packrat_lab.profiling.runner import GroupRunner, PointCancelled, PointFailedError, run_group
from packrat_lab.profiling.spec import PointGroup, ProfileGrid, default_batches
from packrat_lab.profiling.stopping import StoppingRule
from packrat_lab.profiling.table import Profile
from packrat_lab.settings import RuntimeSetting, resolve_settings
from packrat_lab.workloads.backends.accuracy import DEFAULT_ACCURACY_TOL
from packrat_lab.workloads.backends.names import BackendChoice, resolve_choices

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
    progress_bar: bool | None = None,
    group_batches: bool = True,
    runner: GroupRunner | None = None,
    backends: str | Sequence[str] | None = None,
    precisions: str | Sequence[str] | None = None,
    accuracy_tol: float = DEFAULT_ACCURACY_TOL,
    cache_dir: str | None = None,
    **workload_options: Any,
) -> Profile:
    """Measure every (threads, batch, setting, backend, precision) point pinned and isolated; partial on cancel.

    backends: 'eager' (default), 'torchscript', 'compile', 'onnxruntime', 'openvino'; precisions:
    'fp32' (default), 'bf16'. Each other runtime converts once per model content (cached under
    `cache_dir`, default $PACKRAT_LAB_CACHE or ~/.cache/packrat_lab), is checked against eager fp32
    on a seeded input and is left out of planning beyond `accuracy_tol` (relative error). A runtime
    that cannot convert or run is recorded in meta['backend_failures'] and skipped.

    Points sharing (threads, setting) run in one fresh process with their batch sizes taking
    turns (`group_batches=False`: one process per point). `runner` replaces the child process in
    tests. time_budget_s is honoured: points that would overrun it, counting the measured start-up
    cost of a process, are not started. progress_bar: a tqdm.auto bar (widget in a notebook, text
    in a terminal); default on unless a progress callback is given; TQDM_DISABLE=1 silences it.
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
    if isinstance(accuracy_tol, bool) or not isinstance(accuracy_tol, (int, float)) or not accuracy_tol >= 0:
        msg = f"accuracy_tol must be a non-negative relative error, got {accuracy_tol!r}; example: accuracy_tol=0.01"
        raise ValueError(msg)
    choices = resolve_choices(backends, precisions)
    is_cancelled = _cancel_check(cancel)
    options = dict(workload_options)
    if torchscript:
        options["torchscript"] = True
    workload = get_workload(model, **options)

    result = Profile(workload.name, [], {s.name: s for s in grid.settings}, fingerprint(host))
    run = runner or run_group
    started = time.perf_counter()
    stopped: str | None = None
    total = len(grid) * len(choices)
    budget = _Budget(time_budget_s, started)
    if progress is None and progress_bar is not False:
        progress = _bar(workload.name, total)
    done = 0
    failures: dict[str, str] = {}

    def finished(measurement: Measurement) -> None:
        nonlocal done
        done += 1
        result.add(measurement)
        if progress is not None:
            progress(done, total, measurement)

    for t, setting, sizes, choice in _with_backends(grid.groups(group_batches), choices):
        if choice.key in failures:
            continue
        if is_cancelled():
            stopped = "cancelled"
            break
        fitted = budget.fit(point_time_s, len(sizes))
        if fitted is None:
            stopped = "time-budget"
            break
        count, cap = fitted
        if count < len(sizes):  # keep the small batches that fit; the budget ends with this group
            sizes, stopped = sizes[:count], "time-budget"
        group = PointGroup(
            workload.spec,
            t,
            sizes,
            setting,
            assign_cores([t], host)[0],
            StoppingRule(rule.precision, rule.min_samples, rule.max_samples, cap),
            warmup_min=min(3, warmup),
            warmup_max=warmup,
            backend=choice,
            cache_dir=cache_dir,
        )
        group_started = time.perf_counter()
        try:
            run(group, is_cancelled, finished)
        except PointCancelled:
            stopped = "cancelled"
            break
        except PointFailedError as exc:
            if choice.is_reference:
                raise
            failures[choice.key] = str(exc).split("; child stderr:")[0]  # reported and skipped; others go on
        budget.record(time.perf_counter() - group_started, cap * len(sizes))
        if stopped is not None:
            break
    close = getattr(progress, "close", None)
    if callable(close):
        close()

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
        "backends": [c.key for c in choices],
        "accuracy_tol": float(accuracy_tol),
        "backend_failures": failures,
    }
    return result


def _with_backends(
    groups: list[tuple[int, RuntimeSetting, tuple[int, ...]]], choices: tuple[BackendChoice, ...]
) -> list[tuple[int, RuntimeSetting, tuple[int, ...], BackendChoice]]:
    """Each process group once per runtime; runtimes alternate inside a (threads, setting) so drift spreads."""
    return [(t, s, sizes, c) for t, s, sizes in groups for c in choices]


# ---- time budget and progress bar (kept apart from the measuring loop above) ----------------------


class _Budget:
    """Honours a time budget from measured point costs: a point that would overrun it is not started."""

    def __init__(
        self, budget_s: float | None, started: float, clock: Callable[[], float] = time.perf_counter
    ):
        self.budget_s, self.started, self.clock = budget_s, started, clock
        self.overheads: list[
            float
        ] = []  # seconds a process took beyond its points' timing caps (spawn, import, warm-up)

    def record(self, elapsed_s: float, cap_s: float) -> None:
        """One process took `elapsed_s` for points whose timing caps add up to `cap_s`."""
        self.overheads.append(max(0.0, elapsed_s - cap_s))

    @property
    def overhead_s(self) -> float:
        """Typical start-up cost of a point so far (0 before the first)."""
        return sorted(self.overheads)[len(self.overheads) // 2] if self.overheads else 0.0

    def fit(self, point_time_s: float, count: int) -> tuple[int, float] | None:
        """How many of `count` points one process can still measure, and their timing cap; None: none fit."""
        if self.budget_s is None:
            return count, point_time_s
        left = self.budget_s - (self.clock() - self.started) - self.overhead_s
        fits = min(count, int(left // MIN_POINT_TIME_S))
        if fits < 1:
            return None
        return fits, min(point_time_s, left / fits)

    def cap(self, point_time_s: float) -> float | None:
        """Timing cap for one more point in its own process, or None when it cannot fit."""
        fitted = self.fit(point_time_s, 1)
        return None if fitted is None else fitted[1]


def _bar(name: str, total: int, *, disable: bool | None = None) -> Any:
    """A tqdm.auto progress callback with close(): a widget bar in a notebook, a text bar in a terminal.

    `disable=None` leaves it to tqdm (TQDM_DISABLE=1, read when tqdm is imported, silences it).
    """
    import sys

    from tqdm.auto import tqdm

    options = {} if disable is None else {"disable": disable}
    bar = tqdm(total=total, desc=f"profile {name}", unit="point", file=sys.stderr, **options)

    class _Progress:
        def __call__(self, done: int, total: int, m: Measurement) -> None:
            bar.set_postfix_str(f"t={m.threads} b={m.batch} {m.setting} {m.median:.2f} ms")
            bar.update(done - bar.n)

        def close(self) -> None:
            bar.close()

    return _Progress()
