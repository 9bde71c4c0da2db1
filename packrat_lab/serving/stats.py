"""Request accounting for pool.stats(): counters, a recent latency window, throughput, SLO attainment."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["RequestStats", "percentile"]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100.0 * len(ordered)) - 1))
    return ordered[rank]


OUTCOMES = ("ok", "failed", "cancelled", "rejected", "dropped")


class RequestStats:
    """Counts every request from submission to its outcome; `lost` should always read 0.

    A request with a deadline is `offered` to the SLO: `rejected` (refused at admission),
    `dropped` (admitted, never ran), or answered within it (`on_time`) or after it (`late`).
    `slo_attainment` = on_time / offered; `goodput_rps` = answers within their deadline (or
    without one) per second over the window.
    """

    def __init__(
        self, window_s: float = 10.0, keep: int = 4096, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self.submitted = 0
        self.served = 0
        self.failed = 0
        self.cancelled = 0
        self.in_flight = 0
        self.rejected = 0
        self.dropped = 0
        self.offered = 0
        self.on_time = 0
        self.late = 0
        self._recent: deque[tuple[float, float]] = deque(maxlen=keep)  # (done time, latency ms)
        self._good: deque[float] = deque(maxlen=keep)  # done times of answers that met their deadline
        self._started = clock()

    def begin(self, *, offered: bool = False) -> float:
        """A request entered the pool (`offered`: it has a deadline); returns its start time for `end`."""
        with self._lock:
            self.submitted += 1
            self.in_flight += 1
            self.offered += offered
        return self._clock()

    def end(self, started: float, outcome: str, deadline: float | None = None) -> float:
        """A request left the pool with one of OUTCOMES; returns its latency in ms.

        `deadline` (same clock as `started`) sorts an answer into on time or late.
        """
        now = self._clock()
        latency_ms = (now - started) * 1000.0
        with self._lock:
            self.in_flight -= 1
            if outcome == "ok":
                self.served += 1
                self._recent.append((now, latency_ms))
                if deadline is None or now <= deadline:
                    self._good.append(now)
                if deadline is not None:
                    if now <= deadline:
                        self.on_time += 1
                    else:
                        self.late += 1
            elif outcome == "cancelled":
                self.cancelled += 1
            elif outcome == "rejected":
                self.rejected += 1
            elif outcome == "dropped":
                self.dropped += 1
            else:
                self.failed += 1
        return latency_ms

    def snapshot(self) -> dict[str, Any]:
        """Counters plus p50/p99 and throughput over the last `window_s` seconds."""
        now = self._clock()
        with self._lock:
            recent = [ms for t, ms in self._recent if now - t <= self.window_s]
            good = sum(1 for t in self._good if now - t <= self.window_s)
            counts = {
                "submitted": self.submitted,
                "served": self.served,
                "failed": self.failed,
                "cancelled": self.cancelled,
                "rejected": self.rejected,
                "dropped": self.dropped,
                "in_flight": self.in_flight,
            }
            offered, on_time, late = self.offered, self.on_time, self.late
        span = max(1e-9, min(self.window_s, now - self._started))
        return {
            **counts,
            "lost": counts["submitted"]
            - counts["served"]
            - counts["failed"]
            - counts["cancelled"]
            - counts["rejected"]
            - counts["dropped"]
            - counts["in_flight"],
            "admitted": offered - counts["rejected"],
            "late": late,
            "slo_attainment": on_time / offered if offered else None,
            "goodput_rps": good / span,
            "p50_ms": percentile(recent, 50),
            "p99_ms": percentile(recent, 99),
            "throughput_rps": len(recent) / span,
        }
