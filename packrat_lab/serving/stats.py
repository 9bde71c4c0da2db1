"""Request accounting for pool.stats(): counters, a recent latency window, throughput."""

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


class RequestStats:
    """Counts every request from submission to its outcome; `lost` should always read 0."""

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
        self._recent: deque[tuple[float, float]] = deque(maxlen=keep)  # (done time, latency ms)
        self._started = clock()

    def begin(self) -> float:
        """A request entered the pool; returns its start time for `end`."""
        with self._lock:
            self.submitted += 1
            self.in_flight += 1
        return self._clock()

    def end(self, started: float, outcome: str) -> None:
        """A request left the pool: 'ok' (answered), 'cancelled' (by its caller) or 'failed'."""
        now = self._clock()
        with self._lock:
            self.in_flight -= 1
            if outcome == "ok":
                self.served += 1
                self._recent.append((now, (now - started) * 1000.0))
            elif outcome == "cancelled":
                self.cancelled += 1
            else:
                self.failed += 1

    def snapshot(self) -> dict[str, Any]:
        """Counters plus p50/p99 and throughput over the last `window_s` seconds."""
        now = self._clock()
        with self._lock:
            recent = [ms for t, ms in self._recent if now - t <= self.window_s]
            counts = {
                "submitted": self.submitted,
                "served": self.served,
                "failed": self.failed,
                "cancelled": self.cancelled,
                "in_flight": self.in_flight,
            }
        span = max(1e-9, min(self.window_s, now - self._started))
        return {
            **counts,
            "lost": counts["submitted"]
            - counts["served"]
            - counts["failed"]
            - counts["cancelled"]
            - counts["in_flight"],
            "p50_ms": percentile(recent, 50),
            "p99_ms": percentile(recent, 99),
            "throughput_rps": len(recent) / span,
        }
