"""Packrat's batch-size estimator: EWMA of queue depth → power of two → mode of the last n."""

from __future__ import annotations

import heapq
import threading
from collections import Counter, deque

__all__ = ["BatchSizeEstimator", "RefusedDemand", "floor_pow2"]


def floor_pow2(value: float) -> int:
    """Largest power of two ≤ value, and at least 1 (an idle queue still serves batch 1)."""
    if value < 2:
        return 1
    return 1 << (int(value).bit_length() - 1)


class BatchSizeEstimator:
    """Watches request-queue depth samples and proposes the batch size B to plan for.

    Defaults follow the paper: α = 0.1, one sample every 5 ms (the pool's sampler calls
    `update` on that period), rounding down to a power of two, the mode of the last 10
    rounded values (ties go to the most recent). `max_batch` caps the estimate.
    """

    def __init__(
        self,
        alpha: float = 0.1,
        window: int = 10,
        interval_s: float = 0.005,
        max_batch: int | None = None,
    ) -> None:
        if not 0.0 < alpha <= 1.0:
            msg = f"alpha must be in (0, 1], got {alpha!r}; example: BatchSizeEstimator(alpha=0.1)"
            raise ValueError(msg)
        if window < 1:
            msg = f"window must be ≥ 1, got {window!r}; example: BatchSizeEstimator(window=10)"
            raise ValueError(msg)
        if interval_s <= 0:
            msg = f"interval_s must be > 0, got {interval_s!r}; example: BatchSizeEstimator(interval_s=0.005)"
            raise ValueError(msg)
        self.alpha = alpha
        self.window = window
        self.interval_s = interval_s
        self.max_batch = max_batch
        self.ewma: float | None = None
        self._recent: deque[int] = deque(maxlen=window)
        self._lock = threading.Lock()  # the sampler thread writes while stats() and HTTP read

    def update(self, depth: float) -> int:
        """Feed one queue-depth sample; return the current estimate."""
        with self._lock:
            self.ewma = depth if self.ewma is None else self.alpha * depth + (1.0 - self.alpha) * self.ewma
            rounded = floor_pow2(self.ewma)
            if self.max_batch is not None:
                rounded = min(rounded, floor_pow2(self.max_batch))
            self._recent.append(rounded)
        return self.estimate

    @property
    def estimate(self) -> int:
        """Mode of the recent rounded values (most recent wins a tie); 1 before any sample."""
        recent = self.recent
        if not recent:
            return 1
        counts = Counter(recent)
        top = max(counts.values())
        for value in reversed(recent):
            if counts[value] == top:
                return value
        return 1  # unreachable

    @property
    def recent(self) -> list[int]:
        """The rounded values the mode is taken over, oldest first."""
        with self._lock:
            return list(self._recent)

    @property
    def settled(self) -> bool:
        """True when more zero-depth samples cannot change the estimate (idle: EWMA < 1, all 1s)."""
        with self._lock:
            return (
                self.ewma is not None
                and self.ewma < 1
                and len(self._recent) == self.window
                and set(self._recent) == {1}
            )

    def skip_zeros(self, count: int) -> None:
        """Apply `count` zero-depth samples at once (the sampler sleeps while the queue is idle)."""
        with self._lock:
            if count > 0 and self.ewma is not None:
                self.ewma *= (1.0 - self.alpha) ** count
                self._recent.extend([floor_pow2(self.ewma)] * min(count, self.window))

    def reset(self) -> None:
        """Forget history (e.g. after a reconfiguration)."""
        with self._lock:
            self.ewma = None
            self._recent.clear()


class RefusedDemand:
    """Requests admission refused, counted as queued for as long as they could have waited.

    Packrat's estimator reads demand from queue depth; under an SLO the refused requests never
    queue, so without this the estimate (and the plan auto mode picks) would follow what was let
    in, not what was asked. Each refusal holds a place until `now + wait_s`; at most `cap` held.
    """

    def __init__(self, cap: int = 4096) -> None:
        self.cap = cap
        self._until: list[float] = []  # a min-heap of release times
        self._lock = threading.Lock()  # callers add, the sampler counts

    def add(self, now: float, wait_s: float) -> None:
        """One refused request that would have waited `wait_s` seconds from `now`."""
        with self._lock:
            if len(self._until) >= self.cap:
                heapq.heappushpop(self._until, now + wait_s)
            else:
                heapq.heappush(self._until, now + wait_s)

    def count(self, now: float) -> int:
        """Refused requests that would still be waiting at `now`."""
        with self._lock:
            while self._until and self._until[0] <= now:
                heapq.heappop(self._until)
            return len(self._until)
