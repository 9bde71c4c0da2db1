"""AIMD batch size (Clipper): grow the batch while batches meet the latency objective, back off on a miss."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["AIMDBatchSize"]


class AIMDBatchSize:
    """The largest batch B whose measured batch latency stays under `target_ms`, found by AIMD.

    `observe(rows, latency_ms)` after each batch: a full batch (rows ≥ B) that met the target
    adds `step`; any batch over the target multiplies B by `backoff` (at least −1). A batch
    smaller than B says nothing about B when under target (the queue was short), so B does not
    grow at idle. At most one change per `interval_s` of `clock` (the batch that triggered a
    change is still running its effect). Thread-safe: the batcher's delivery threads observe,
    the batcher and stats read.
    """

    def __init__(
        self,
        target_ms: float,
        *,
        start: int = 1,
        step: int = 1,
        backoff: float = 0.9,
        min_batch: int = 1,
        max_batch: int = 4096,
        interval_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not target_ms > 0 or step < 1 or not 0.0 < backoff < 1.0 or not 1 <= min_batch <= max_batch:
            msg = (
                f"AIMD needs target_ms > 0, step ≥ 1, 0 < backoff < 1, 1 ≤ min_batch ≤ max_batch; got "
                f"{target_ms!r}, {step!r}, {backoff!r}, {min_batch!r}..{max_batch!r}; example: AIMDBatchSize(50.0)"
            )
            raise ValueError(msg)
        self.target_ms = target_ms
        self.step = step
        self.backoff = backoff
        self.min_batch = min_batch
        self.max_batch = max_batch
        self.interval_s = interval_s
        self._clock = clock
        self._batch = max(min_batch, min(max_batch, start))
        self._changed_at: float | None = None
        self.increases = 0
        self.decreases = 0
        self._lock = threading.Lock()

    @property
    def batch(self) -> int:
        """The batch size the batcher may form now."""
        with self._lock:
            return self._batch

    def observe(self, rows: int, latency_ms: float, *, full: bool | None = None) -> int:
        """Feed one batch's size and latency; returns B after it.

        `full` says whether the batch was as large as allowed (default: rows ≥ B); with
        work-conserving dispatch each instance takes its share of B, so the batcher says it.
        """
        now = self._clock()
        with self._lock:
            if self._changed_at is not None and now - self._changed_at < self.interval_s:
                return self._batch
            old = self._batch
            if latency_ms > self.target_ms:
                self._batch = max(self.min_batch, min(old - 1, math.floor(old * self.backoff)))
            elif (rows >= old) if full is None else full:
                self._batch = min(self.max_batch, old + self.step)
            if self._batch != old:
                self._changed_at = now
                if self._batch > old:
                    self.increases += 1
                else:
                    self.decreases += 1
            return self._batch
