"""Dynamic batcher: single samples queue up and leave as one batch of at most B."""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packrat_lab.errors import DeadlineDropped, PoolClosedError

if TYPE_CHECKING:
    import torch

__all__ = ["DynamicBatcher", "should_flush"]

Dispatch = Callable[..., "Future[torch.Tensor]"]  # dispatch(batch) or dispatch(batch, deadline=s)
BatchObserver = Callable[[int, float], None]  # (rows, ms from dispatch to answer) per answered batch


def should_flush(
    queued: int, oldest_arrival: float | None, now: float, max_batch: int, max_delay_s: float
) -> bool:
    """Send a batch when B samples wait or the oldest has waited `max_delay_s`."""
    if queued == 0 or oldest_arrival is None:
        return False
    return queued >= max_batch or now - oldest_arrival >= max_delay_s


@dataclass(eq=False)
class _Request:
    sample: torch.Tensor
    future: Future[torch.Tensor]
    arrival: float
    deadline: float | None = None  # clock time; a request still queued past it is dropped


class DynamicBatcher:
    """Forms batches from single requests for a dispatch function, one batch in flight at a time.

    While a batch runs the next one collects, so under load batches grow toward B by themselves
    (and the estimator sees the queue). `max_batch` is a callable so a plan switch changes B live.
    A request's future is marked running when its batch is taken: one cancelled before that is
    skipped (never run), and one cannot be cancelled after it, so delivery never meets a
    cancelled future. A queued request that could no longer finish by its deadline even if its
    batch left now (`expect_ms(rows)`: a batch's expected time from dispatch to delivery) is
    dropped (DeadlineDropped, never run); a batch of requests that all have deadlines is
    dispatched with the latest one, so the workers drop it too if it cannot start in time.
    `on_batch(rows, ms)` sees each delivered batch (AIMD, the cycle time `expect_ms` learns
    from). Futures are settled with no lock held; `expect_ms` must not take pool locks.
    """

    def __init__(
        self,
        dispatch: Dispatch,
        max_batch: Callable[[], int],
        max_delay_s: float = 0.005,
        *,
        max_in_flight: int = 1,
        clock: Callable[[], float] = time.monotonic,
        on_batch: BatchObserver | None = None,
        expect_ms: Callable[[int], float] | None = None,
    ) -> None:
        if max_delay_s < 0:
            msg = f"max queue delay must be ≥ 0 s, got {max_delay_s!r}; example: max_queue_delay_ms=5.0"
            raise ValueError(msg)
        self._dispatch = dispatch
        self._max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.max_in_flight = max_in_flight
        self._clock = clock
        self._on_batch = on_batch
        self._expect_ms = expect_ms
        self.dropped = 0
        self._queue: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._closed = False
        self._draining = False  # close() under way: no new requests, queued ones leave at once
        self.histogram: Counter[int] = Counter()
        self.activity = threading.Event()  # set by each submit (and close): wakes an idle estimator
        self._thread = threading.Thread(target=self._loop, name="packrat-batcher", daemon=True)
        self._thread.start()

    def submit(self, sample: torch.Tensor, *, deadline: float | None = None) -> Future[torch.Tensor]:
        """Queue one sample (no batch dimension); the future gets its output row (drop after `deadline`)."""
        future: Future[torch.Tensor] = Future()
        with self._cond:
            if self._closed or self._draining:
                future.set_exception(
                    PoolClosedError("the pool is closed; start a new Pool to serve requests")
                )
                return future
            self._queue.append(_Request(sample, future, self._clock(), deadline))
            self._cond.notify_all()
        self.activity.set()
        return future

    def depth(self) -> int:
        """Samples waiting to be batched (what the estimator samples)."""
        with self._cond:
            return len(self._queue)

    def backlog(self) -> tuple[int, float, int]:
        """(samples queued, age in ms of the oldest, max batch now) in one look, for admission."""
        with self._cond:
            oldest = self._queue[0].arrival if self._queue else None
            depth = len(self._queue)
        age = 0.0 if oldest is None else (self._clock() - oldest) * 1000.0
        return depth, age, max(1, self._max_batch())

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop taking requests, send what is queued at once and wait for it; fail what is left after the timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._draining = True
            self.activity.set()
            self._cond.notify_all()
            while (self._queue or self._in_flight) and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            self._closed = True
            left = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for request in left:
            if request.future.set_running_or_notify_cancel():
                request.future.set_exception(PoolClosedError("the pool closed before this request ran"))
        self._thread.join(timeout=5)

    def _take(self) -> tuple[list[_Request], list[_Request]] | None:
        """Wait for a batch to be due and for room in flight: (batch, dropped); None once closed."""
        dropped: list[_Request] = []
        with self._cond:
            while True:
                if self._closed:
                    return None
                self._drop_expired(dropped, max(1, self._max_batch()))
                max_batch = max(1, self._max_batch())
                oldest = self._queue[0].arrival if self._queue else None
                now = self._clock()
                due = should_flush(len(self._queue), oldest, now, max_batch, self.max_delay_s)
                if self._in_flight < self.max_in_flight and (due or (self._draining and self._queue)):
                    taken = [self._queue.popleft() for _ in range(min(max_batch, len(self._queue)))]
                    taken = [r for r in taken if r.future.set_running_or_notify_cancel()]
                    if not taken:  # all cancelled while queued
                        if dropped:
                            return [], dropped
                        continue
                    self._in_flight += 1
                    self.histogram[len(taken)] += 1
                    return taken, dropped
                if dropped:  # settle them now (outside the lock), then come back
                    return [], dropped
                if oldest is None or self._in_flight >= self.max_in_flight:
                    self._cond.wait()
                else:
                    wake = oldest + self.max_delay_s
                    first_deadline = min(
                        (r.deadline for r in self._queue if r.deadline is not None), default=None
                    )
                    if first_deadline is not None:
                        wake = min(wake, first_deadline)
                    self._cond.wait(max(0.0, wake - now))

    def _drop_expired(self, dropped: list[_Request], max_batch: int) -> None:
        """Move queued requests that cannot finish in time (and not cancelled) to `dropped`; caller holds `_cond`."""
        if not self._queue:
            return
        need_s = (
            self._expect_ms(min(max_batch, len(self._queue))) / 1000.0 if self._expect_ms is not None else 0.0
        )
        cutoff = self._clock() + need_s
        if not any(r.deadline is not None and cutoff > r.deadline for r in self._queue):
            return
        kept: deque[_Request] = deque()
        for request in self._queue:
            if request.deadline is not None and cutoff > request.deadline:
                if request.future.set_running_or_notify_cancel():
                    dropped.append(request)
            else:
                kept.append(request)
        self._queue = kept
        self.dropped += len(dropped)

    def _loop(self) -> None:
        import torch

        while True:
            took = self._take()
            if took is None:
                return
            taken, dropped = took
            for request in dropped:
                late_ms = (self._clock() - (request.deadline or 0.0)) * 1000.0
                request.future.set_exception(
                    DeadlineDropped(
                        f"dropped before it ran: its deadline passed {late_ms:.1f} ms ago while it was queued"
                    )
                )
            if not taken:
                continue
            deadlines = [r.deadline for r in taken]
            latest = None if None in deadlines else max(d for d in deadlines if d is not None)
            batch = torch.stack([r.sample for r in taken])
            sent = self._clock()
            try:
                future = self._dispatch(batch) if latest is None else self._dispatch(batch, deadline=latest)
            except Exception as exc:  # noqa: BLE001 - a failed dispatch fails its requests, not the batcher
                future = Future()
                future.set_exception(exc)
            future.add_done_callback(functools.partial(self._deliver, taken=taken, sent=sent))

    def _deliver(self, future: Future[torch.Tensor], *, taken: list[_Request], sent: float) -> None:
        try:
            exc = future.exception()
            for row, request in enumerate(taken):
                if exc is None:
                    request.future.set_result(future.result()[row])
                else:
                    request.future.set_exception(exc)
            if self._on_batch is not None and exc is None:  # the whole cycle, delivery included
                try:
                    self._on_batch(len(taken), (self._clock() - sent) * 1000.0)
                except Exception:  # noqa: BLE001, S110 - an observer's bug must not lose answers
                    pass
        finally:  # whatever happened above, the batcher must not wedge
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def histogram_snapshot(self) -> dict[int, int]:
        """Batch sizes sent so far (a copy, safe to read while the batcher runs)."""
        with self._cond:
            return dict(sorted(self.histogram.items()))
