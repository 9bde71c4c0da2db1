"""Admission (Clockwork): predict a request's completion from the work ahead of it, refuse it if it would miss.

Pure functions over a snapshot of the serving workers (`SlotLoad`), so they can be checked
without a pool: `predict_infer_ms` for a batch split by the plan, `predict_submit_ms` for a
sample that goes through the lockstep batcher (one batch in flight at a time),
`predict_conserving_ms` for the work-conserving one (each worker takes its next slice when
free), and `refusal`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from packrat_lab.errors import Rejected
from packrat_lab.serving.dispatcher import split_rows

__all__ = [
    "SlotLoad",
    "batch_ms",
    "predict_conserving_ms",
    "predict_infer_ms",
    "predict_submit_ms",
    "refusal",
]


@dataclass(frozen=True)
class SlotLoad:
    """One serving worker as admission sees it: its plan batch, ms until free, ms for a piece of n rows."""

    batch: int
    wait_ms: float
    expect_ms: Callable[[int], float]


def _per_slot(slots: Sequence[SlotLoad], rows: int, start: Sequence[float]) -> float:
    """When the last piece of a `rows`-row batch finishes, each slot starting at `start[k]`."""
    finish = list(start)
    touched: set[int] = set()
    for k, _, n in split_rows(rows, [s.batch for s in slots]):
        finish[k] += slots[k].expect_ms(n)
        touched.add(k)
    return max(finish[k] for k in touched)


def batch_ms(slots: Sequence[SlotLoad], rows: int) -> float:
    """Service time of one batch of `rows` on idle workers (chunks of B run back to back)."""
    return _per_slot(slots, rows, [0.0] * len(slots))


def predict_infer_ms(slots: Sequence[SlotLoad], rows: int) -> float:
    """Completion time of `pool.infer` of `rows` rows arriving now: each piece queues behind its worker's work."""
    if not slots:
        return math.inf
    return _per_slot(slots, rows, [s.wait_ms for s in slots])


def predict_submit_ms(
    slots: Sequence[SlotLoad],
    *,
    ahead: int,
    max_batch: int,
    max_delay_ms: float,
    oldest_age_ms: float,
    cycle_ms: Callable[[int], float] | None = None,
) -> float:
    """Completion time of one `submit`ted sample arriving now behind `ahead` queued samples.

    The batcher sends one batch at a time: the sample waits for the workers to be free, the
    full batches ahead of it, then its own batch (and, when that batch is not full and nothing
    is ahead, for the batcher's queue delay counted from the oldest queued sample). A batch
    costs the workers' time for it, or the batcher's measured cycle for that size (`cycle_ms`:
    dispatch to delivery, which adds stacking and answering each sample) when that is longer.
    """
    if not slots:
        return math.inf
    size = max(1, max_batch)
    full, own = divmod(ahead, size)
    own += 1
    start = max(s.wait_ms for s in slots)
    if full == 0 and own < size:
        start = max(start, max_delay_ms - oldest_age_ms)

    def cost(rows: int) -> float:
        work = batch_ms(slots, rows)
        return max(work, cycle_ms(rows)) if cycle_ms is not None else work

    return start + full * cost(size) + cost(own)


def predict_conserving_ms(slots: Sequence[SlotLoad], *, ahead: int, capacities: Sequence[int]) -> float:
    """Completion time of one `submit`ted sample behind `ahead` queued ones, work-conserving dispatch.

    Each worker takes up to `capacities[k]` queued samples the moment it is free (its `wait_ms`),
    so the queue drains over all workers at once: replay that, earliest-free worker first, until
    the new sample is taken. A long queue is first fast-forwarded at the workers' combined rate.
    """
    if not slots or all(math.isinf(s.wait_ms) for s in slots):
        return math.inf
    left = ahead + 1
    free_at = [s.wait_ms for s in slots]
    round_rows = sum(capacities)
    if left > 4 * round_rows:  # fast-forward whole rounds: rows per ms of every serving worker
        rate = sum(
            c / max(s.expect_ms(c), 1e-6)
            for s, c in zip(slots, capacities, strict=True)
            if not math.isinf(s.wait_ms)
        )
        skipped = left - 2 * round_rows
        free_at = [t + skipped / rate for t in free_at]
        left -= skipped
    heap = [(t, k) for k, t in enumerate(free_at) if not math.isinf(t)]
    heapq.heapify(heap)
    while True:
        t, k = heapq.heappop(heap)
        rows = min(capacities[k], left)
        done = t + slots[k].expect_ms(rows)
        left -= rows
        if left <= 0:
            return done
        heapq.heappush(heap, (done, k))


def refusal(predicted_ms: float, deadline_ms: float, rows: int, margin_ms: float = 0.0) -> Rejected | None:
    """The Rejected error for a request predicted (plus the error margin) to miss its deadline, or None to admit it."""
    if predicted_ms + margin_ms <= deadline_ms:
        return None
    said = (
        "no serving worker can take it now"
        if math.isinf(predicted_ms)
        else f"predicted {predicted_ms:.1f} ms"
    )
    if margin_ms > 0 and not math.isinf(predicted_ms):
        said += f" (+{margin_ms:.1f} ms margin for prediction error)"
    return Rejected(
        f"refused a {rows}-row request: {said}, over its {deadline_ms:.3g} ms deadline; retry later or allow more time",
        predicted_ms=None if math.isinf(predicted_ms) else predicted_ms,
        deadline_ms=deadline_ms,
    )
