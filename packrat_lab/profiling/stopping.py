"""Adaptive stopping: time iterations until the median is known well enough or time runs out.

The clock is injected so tests drive the rule exactly with a fake clock and synthetic samples.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from packrat_lab.profiling.measurement import median_confidence_interval

__all__ = ["StopReason", "StoppingRule", "TimedRun", "run_interleaved", "run_timed", "run_warmup"]

Clock = Callable[[], float]

StopReason = str  # 'precision' | 'time-cap' | 'max-samples'


@dataclass(frozen=True)
class StoppingRule:
    """When to stop timing one point: median CI within ±precision, or a sample/time cap."""

    precision: float = 0.02
    min_samples: int = 10
    max_samples: int = 100
    time_cap_s: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.precision < 1:
            msg = f"precision must be in (0, 1), got {self.precision!r}; example: 0.02 for ±2 %"
            raise ValueError(msg)
        if self.min_samples < 1 or self.max_samples < self.min_samples:
            msg = (
                f"need 1 <= min_samples <= max_samples, got {self.min_samples} and {self.max_samples}; "
                "example: min_samples=10, max_samples=100"
            )
            raise ValueError(msg)
        if not self.time_cap_s > 0:
            msg = f"time cap must be positive seconds, got {self.time_cap_s!r}; example: 10.0"
            raise ValueError(msg)

    def decide(self, samples_ms: Sequence[float], elapsed_s: float) -> StopReason | None:
        """Why to stop now, or None to take another sample (pure: no clock, no state)."""
        n = len(samples_ms)
        if n >= self.max_samples:
            return "max-samples"
        if n >= self.min_samples and half_width_ratio(samples_ms) <= self.precision:
            return "precision"
        if n >= 1 and elapsed_s >= self.time_cap_s:
            return "time-cap"
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (sent to the point process)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoppingRule:
        """Inverse of to_dict."""
        return cls(
            float(data["precision"]),
            int(data["min_samples"]),
            int(data["max_samples"]),
            float(data["time_cap_s"]),
        )


def half_width_ratio(samples_ms: Sequence[float]) -> float:
    """Half-width of the median's 95 % CI relative to the median (inf when undefined)."""
    if not samples_ms:
        return math.inf
    lo, hi = median_confidence_interval(samples_ms)
    ordered = sorted(samples_ms)
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2.0
    if median <= 0 or not math.isfinite(lo):
        return math.inf
    return (hi - lo) / 2.0 / median


@dataclass(frozen=True)
class TimedRun:
    """What the timed loop produced: raw samples, why it stopped, how long it took."""

    samples_ms: tuple[float, ...]
    stop_reason: StopReason
    wall_s: float


def run_timed(step: Callable[[], object], rule: StoppingRule, clock: Clock = time.perf_counter) -> TimedRun:
    """Call `step` repeatedly, timing each call, until `rule` says stop."""
    return run_interleaved([step], rule, clock=clock)[0]


def run_interleaved(
    steps: Sequence[Callable[[], object]],
    rule: StoppingRule,
    *,
    slice_s: float = 0.0,
    clock: Clock = time.perf_counter,
    on_done: Callable[[int, TimedRun], object] | None = None,
) -> list[TimedRun]:
    """Time several steps by turns of `slice_s` (at least one call each) until `rule` stops each one.

    Turns spread machine drift over all steps instead of letting it hit whichever ran last. Each
    step's time cap counts only its own calls, so a step stops as it would if it ran alone.
    """
    samples: list[list[float]] = [[] for _ in steps]
    spent = [0.0] * len(steps)
    runs: list[TimedRun | None] = [None] * len(steps)
    active = list(range(len(steps)))
    while active:
        for i in list(active):
            turn_start = clock()
            while True:
                t0 = clock()
                steps[i]()
                t1 = clock()
                samples[i].append((t1 - t0) * 1000.0)
                spent[i] += t1 - t0
                reason = rule.decide(samples[i], spent[i])
                if reason is not None:
                    run = runs[i] = TimedRun(tuple(samples[i]), reason, spent[i])
                    active.remove(i)
                    if on_done is not None:
                        on_done(i, run)
                    break
                if t1 - turn_start >= slice_s:
                    break
    return [r for r in runs if r is not None]


def run_warmup(
    step: Callable[[], object],
    *,
    min_iters: int = 3,
    max_iters: int = 10,
    time_cap_s: float = 5.0,
    clock: Clock = time.perf_counter,
) -> int:
    """Warm caches and the allocator: at least min_iters calls, at most max_iters or time_cap_s."""
    start = clock()
    done = 0
    while done < max_iters and not (done >= min_iters and clock() - start >= time_cap_s):
        step()
        done += 1
    return done
