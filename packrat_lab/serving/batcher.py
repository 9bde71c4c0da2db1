"""Dynamic batcher: single samples queue up and leave in batches, per free instance or B at a time."""

from __future__ import annotations

import functools
import itertools
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

__all__ = ["DynamicBatcher", "Lane", "should_flush"]

LANE_RECHECK_S = 0.05  # work-conserving: look at the serving lanes again this often while all are busy

Dispatch = Callable[..., "Future[torch.Tensor]"]  # dispatch(batch) or dispatch(batch, deadline=s)
BatchObserver = Callable[[int, float, bool], None]  # (rows, ms dispatch to answer, filled its lane) per batch


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


@dataclass(frozen=True)
class Lane:
    """One way out of the batcher: a worker (or the whole plan), how many rows it takes, how to send.

    `depth` is how many batches may be in flight on it at once; `send(batch, deadline)` returns
    the batch's future (deadline: monotonic s or None).
    """

    key: object
    capacity: int
    send: Callable[[torch.Tensor, float | None], Future[torch.Tensor]]
    depth: int = 1


Lanes = Callable[[], "list[Lane]"]  # the lanes serving now (read with no batcher lock held)


@dataclass(frozen=True)
class _Taken:
    """What one look at the queue gave: a batch for a lane (maybe none) and requests to drop."""

    batch: list[_Request]
    dropped: list[_Request]
    lane: Lane | None


class DynamicBatcher:
    """Forms batches from single requests and sends them out; two dispatch modes.

    Work-conserving (`lanes` given, the pool's default): each serving instance is a lane that
    takes its next slice (≤ its plan batch b_k) the moment it is free, so several batches are in
    flight, one per instance, a partial batch leaves as soon as an instance is idle (no fixed
    wait), and lone requests go to the instance idle the longest, spreading over all of them.
    Under load every instance runs full slices back to back: Packrat's split of B, without the
    lockstep. Lockstep (`lanes=None`): one batch of up to B in flight at a time, sent when B
    samples wait or the oldest waited `max_delay_s` (`dispatch` splits it over the plan).

    A request's future is marked running when its batch is taken: one cancelled before that is
    skipped (never run), and one cannot be cancelled after it, so delivery never meets a
    cancelled future. A queued request that could no longer finish by its deadline even if its
    batch left now (`expect_ms(rows)`: a batch's expected time from dispatch to delivery) is
    dropped (DeadlineDropped, never run); a batch of requests that all have deadlines is sent
    with the latest one, so the workers drop it too if it cannot start in time.
    `on_batch(rows, ms, full)` sees each delivered batch (AIMD, the cycle time `expect_ms` learns
    from); `full` says it filled its lane's capacity (so the batch limit was what held it back). Lock order: `lanes()` is called with no batcher lock held (it takes pool locks, and a
    pool lock holder may settle a future whose callback takes the batcher's condition); futures
    are settled with no lock held; `expect_ms` must not take pool locks.
    """

    def __init__(
        self,
        dispatch: Dispatch,
        max_batch: Callable[[], int],
        max_delay_s: float = 0.005,
        *,
        max_in_flight: int = 1,
        lanes: Lanes | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_batch: BatchObserver | None = None,
        expect_ms: Callable[[int], float] | None = None,
        before_answer: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
    ) -> None:
        if max_delay_s < 0:
            msg = f"max queue delay must be ≥ 0 s, got {max_delay_s!r}; example: max_queue_delay_ms=5.0"
            raise ValueError(msg)
        self._dispatch = dispatch
        self._max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.max_in_flight = max_in_flight
        self._lanes = lanes
        self._clock = clock
        self._on_batch = on_batch
        self._expect_ms = expect_ms
        self._before_answer = before_answer  # (sample, answer row): runs before the caller can see it
        self.dropped = 0
        self._queue: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._busy: Counter[object] = Counter()  # batches in flight per lane key
        self._last_used: dict[object, int] = {}  # lane key -> when it last took a batch (a counter)
        self._sent = itertools.count()
        self._closed = False
        self._draining = False  # close() under way: no new requests, queued ones leave at once
        self.histogram: Counter[int] = Counter()
        self.activity = threading.Event()  # set by each submit (and close): wakes an idle estimator
        self._thread = threading.Thread(target=self._loop, name="packrat-batcher", daemon=True)
        self._thread.start()

    @property
    def work_conserving(self) -> bool:
        """True when each instance takes its next slice as soon as it is free."""
        return self._lanes is not None

    def submit(self, sample: torch.Tensor, *, deadline: float | None = None) -> Future[torch.Tensor]:
        """Queue one sample (no batch dimension); the future gets its output row (drop after `deadline`).

        Work-conserving fast path: with nothing queued and an instance free, the sample is sent on
        the caller's thread at once (one thread hand-off less than waking the batcher).
        """
        future: Future[torch.Tensor] = Future()
        request = _Request(sample, future, self._clock(), deadline)
        lanes = self._current_lanes() if self._lanes is not None and not self._queue else None
        lane: Lane | None = None
        with self._cond:
            if self._closed or self._draining:
                future.set_exception(
                    PoolClosedError("the pool is closed; start a new Pool to serve requests")
                )
                return future
            if lanes is not None and not self._queue:
                lane = self._free_lane(lanes)
            if lane is not None and future.set_running_or_notify_cancel():
                self._mark_sent(lane, 1)
            else:
                lane = None
                self._queue.append(request)
                self._cond.notify_all()
        self.activity.set()
        if lane is not None:
            self._send(lane, [request])
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

    def _current_lanes(self) -> list[Lane]:
        """The lanes to send to now; the whole plan as one lane in lockstep mode or when no worker serves.

        With no serving lane (a degraded or closing pool) batches go to `dispatch`, which fails
        them with the reason, instead of waiting for a worker that will not come.
        """
        lanes = self._lanes() if self._lanes is not None else []
        if lanes:
            return lanes
        return [Lane("plan", max(1, self._max_batch()), self._send_whole, self.max_in_flight)]

    def _send_whole(self, batch: torch.Tensor, deadline: float | None) -> Future[torch.Tensor]:
        return self._dispatch(batch) if deadline is None else self._dispatch(batch, deadline=deadline)

    def _take(self) -> _Taken | None:
        """Wait for a batch to be due on a free lane: (batch, lane, dropped); None once closed."""
        dropped: list[_Request] = []
        while True:
            lanes = self._current_lanes()  # outside the condition: see the lock order above
            with self._cond:
                if self._closed:
                    return None
                self._drop_expired(dropped, max(1, self._max_batch()))
                lane = self._free_lane(lanes)
                if lane is not None and self._queue and self._due(lane):
                    taken = [self._queue.popleft() for _ in range(min(lane.capacity, len(self._queue)))]
                    taken = [r for r in taken if r.future.set_running_or_notify_cancel()]
                    if taken:
                        self._mark_sent(lane, len(taken))
                        return _Taken(taken, dropped, lane)
                    continue  # all cancelled while queued: look again
                if dropped:  # settle them now (outside the lock), then come back
                    return _Taken([], dropped, None)
                self._cond.wait(self._wait_s(lane))

    def _mark_sent(self, lane: Lane, rows: int) -> None:
        """Count a batch of `rows` as in flight on `lane`; caller holds `_cond`."""
        self._in_flight += 1
        self._busy[lane.key] += 1
        self._last_used[lane.key] = next(self._sent)
        self.histogram[rows] += 1

    def _free_lane(self, lanes: list[Lane]) -> Lane | None:
        """The free lane idle the longest (lone requests spread over instances); caller holds `_cond`."""
        free = [lane for lane in lanes if self._busy[lane.key] < lane.depth]
        if len(self._last_used) > 4 * len(lanes) + 8:  # forget lanes of plans long gone
            keys = {lane.key for lane in lanes}
            self._last_used = {k: v for k, v in self._last_used.items() if k in keys}
        return min(free, key=lambda lane: self._last_used.get(lane.key, -1), default=None)

    def _due(self, lane: Lane) -> bool:
        """Work-conserving: whenever a lane is free. Lockstep: B samples, the delay, or a drain."""
        if self._lanes is not None or self._draining:
            return True
        oldest = self._queue[0].arrival if self._queue else None
        return should_flush(len(self._queue), oldest, self._clock(), lane.capacity, self.max_delay_s)

    def _wait_s(self, lane: Lane | None) -> float | None:
        """How long to sleep before looking again (None: until notified); caller holds `_cond`."""
        if not self._queue:
            return None
        now = self._clock()
        wakes = [r.deadline for r in self._queue if r.deadline is not None]
        if lane is not None and self._lanes is None:  # lockstep: the oldest sample's delay runs out
            wakes.append(self._queue[0].arrival + self.max_delay_s)
        if self._lanes is not None:  # a switch may bring new lanes without a delivery to wake us
            wakes.append(now + LANE_RECHECK_S)
        return max(0.0, min(wakes) - now) if wakes else None

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
        while True:
            took = self._take()
            if took is None:
                return
            for request in took.dropped:
                request.future.set_exception(DeadlineDropped(_drop_reason(request, self._clock())))
            if took.lane is None or not took.batch:
                continue
            self._send(took.lane, took.batch)

    def _send(self, lane: Lane, taken: list[_Request]) -> None:
        """Stack the taken samples and send them down `lane`; their answers come back in `_deliver`."""
        import torch

        deadlines = [r.deadline for r in taken]
        latest = None if None in deadlines else max(d for d in deadlines if d is not None)
        sent = self._clock()
        try:
            future = lane.send(torch.stack([r.sample for r in taken]), latest)
        except Exception as exc:  # noqa: BLE001 - a failed dispatch fails its requests, not the batcher
            future = Future()
            future.set_exception(exc)
        future.add_done_callback(
            functools.partial(
                self._deliver, taken=taken, sent=sent, key=lane.key, full=len(taken) >= lane.capacity
            )
        )

    def _deliver(
        self,
        future: Future[torch.Tensor],
        *,
        taken: list[_Request],
        sent: float,
        key: object,
        full: bool,
    ) -> None:
        try:
            exc = future.exception()
            for row, request in enumerate(taken):
                if exc is None:
                    answer = future.result()[row]
                    if self._before_answer is not None:  # e.g. the prediction cache: a repeat asked
                        self._before_answer(request.sample, answer)  # right after this answer must hit
                    request.future.set_result(answer)
                else:
                    request.future.set_exception(exc)
            if self._on_batch is not None and exc is None:  # the whole cycle, delivery included
                try:
                    self._on_batch(len(taken), (self._clock() - sent) * 1000.0, full)
                except Exception:  # noqa: BLE001, S110 - an observer's bug must not lose answers
                    pass
        finally:  # whatever happened above, the batcher must not wedge
            with self._cond:
                self._in_flight -= 1
                self._busy[key] -= 1
                if self._busy[key] <= 0:
                    del self._busy[key]
                self._cond.notify_all()

    def histogram_snapshot(self) -> dict[int, int]:
        """Batch sizes sent so far (a copy, safe to read while the batcher runs)."""
        with self._cond:
            return dict(sorted(self.histogram.items()))


def _drop_reason(request: _Request, now: float) -> str:
    """Why a queued request was dropped: its deadline passed, or is too near for a batch to finish."""
    left_ms = ((request.deadline or now) - now) * 1000.0
    if left_ms <= 0:
        return f"dropped before it ran: its deadline passed {-left_ms:.1f} ms ago while it was queued"
    return f"dropped before it ran: its deadline was {left_ms:.1f} ms away, too near for a batch to finish"
