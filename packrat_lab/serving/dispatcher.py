"""Splitting a batch by the plan and reassembling the pieces in order (parent side)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from packrat_lab.serving.transport import Layout

__all__ = ["Job", "Piece", "lane_capacity", "proportional_split", "split_rows"]


def proportional_split(rows: int, batches: Sequence[int]) -> list[int]:
    """Share `rows` ≤ B among instances in proportion to their b_k (largest remainder, ties to the first)."""
    total = sum(batches)
    if not 0 <= rows <= total:
        msg = f"cannot split {rows} rows over batches {list(batches)}; example: proportional_split(4, [4, 4])"
        raise ValueError(msg)
    if rows == total:
        return list(batches)
    exact = [rows * b / total for b in batches]
    shares = [int(x) for x in exact]
    left = rows - sum(shares)
    order = sorted(range(len(batches)), key=lambda k: (-(exact[k] - shares[k]), k))
    for k in order[:left]:
        shares[k] += 1
    return shares


def lane_capacity(batch: int, limit: int, plan_batch: int) -> int:
    """Rows one worker of slice `batch` takes at a time when the batcher's max is `limit` of the plan's B.

    The slice scales with the limit (AIMD below B) but never exceeds `batch`: the worker's
    buffers hold that many rows.
    """
    if limit >= plan_batch:
        return batch
    return max(1, min(batch, round(batch * limit / plan_batch)))


def split_rows(rows: int, batches: Sequence[int]) -> list[tuple[int, int, int]]:
    """(instance index, start row, row count) for a batch of `rows`: chunks of B, each split by the plan."""
    if rows < 1:
        msg = f"a batch needs at least one row, got {rows}; example: split_rows(8, [4, 4])"
        raise ValueError(msg)
    total = sum(batches)
    out: list[tuple[int, int, int]] = []
    for chunk_start in range(0, rows, total):
        start = chunk_start
        for k, share in enumerate(proportional_split(min(total, rows - chunk_start), batches)):
            if share:
                out.append((k, start, share))
                start += share
    return out


class Job:
    """One batch in flight: an output tensor filled piece by piece, a Future set when all are in."""

    def __init__(self, rows: int, out_layout: Layout, pieces: int, *, deadline: float | None = None) -> None:
        self.future: Future[torch.Tensor] = Future()
        self.deadline = (
            deadline  # monotonic s: dropped before its first piece starts if it cannot finish by then
        )
        self._started = False  # a piece went to a worker: the rest run too (the answer may be late)
        self.out: torch.Tensor | None = None  # a single piece's rows are cloned out whole in `fill`
        if pieces > 1:
            import torch

            with torch.inference_mode(
                False
            ):  # a caller in inference mode must not make it an inference tensor
                self.out = torch.empty(
                    (rows, *out_layout.sample_shape), dtype=getattr(torch, out_layout.dtype)
                )
        self._remaining = pieces
        self._settled = False  # decided under the lock; the future itself is set outside it
        self._lock = threading.Lock()

    @property
    def settled(self) -> bool:
        """Answered, failed, withdrawn or cancelled: its pieces need not run."""
        return self.future.done() or self._settled

    def fill(self, start: int, rows: torch.Tensor) -> bool:
        """Copy one piece's output rows; True once the last is in (then `resolve`, after freeing the worker)."""
        if self.settled:
            return False
        if self.out is None:  # the only piece: one clone instead of an empty tensor and a copy
            import torch

            # The reader thread is never in inference mode: skip entering torch's guard on every
            # reply (tens of µs on a core just woken) unless this thread needs it.
            guard = torch.inference_mode(False) if torch.is_inference_mode_enabled() else nullcontext()
            with guard:
                self.out = rows.clone()
        else:
            self.out[start : start + rows.shape[0]].copy_(rows)
        with self._lock:
            self._remaining -= 1
            return self._remaining == 0

    def _claim(self) -> bool:
        """True for the one caller that gets to settle the future (callbacks then run lock-free)."""
        with self._lock:
            if self._settled or self.future.done():
                return False
            self._settled = True
            return True

    def begin_piece(self, now: float, expect_s: float) -> str:
        """'run', 'skip' (settled: never run it) or 'drop' (claimed: past its window, call `settle_claimed`).

        Clockwork's rule: a job whose first piece cannot finish by its deadline (now + expected
        run time) is dropped before anything of it runs; once one piece started, the rest run.
        """
        with self._lock:
            if self._settled or self.future.done():
                return "skip"
            if not self._started and self.deadline is not None and now + expect_s > self.deadline:
                self._settled = True
                return "drop"
            self._started = True
            return "run"

    def settle_claimed(self, exc: BaseException) -> None:
        """Fail a job claimed by `begin_piece` (call with no lock held: callbacks run)."""
        self.future.set_exception(exc)

    def resolve(self) -> None:
        """Hand the filled output to the caller (unless the batch already failed)."""
        if self._claim():
            self.future.set_result(self.out)  # type: ignore[arg-type]

    def fail(self, exc: BaseException) -> bool:
        """Fail the whole batch once (other pieces still finish but are ignored); True if this call did."""
        if not self._claim():
            return False
        self.future.set_exception(exc)
        return True


@dataclass(eq=False)
class Piece:
    """Rows [start, start+rows) of a job, for one worker; `src` is a view of the caller's input."""

    job: Job
    src: torch.Tensor
    start: int
    rows: int = field(init=False)
    attempts: int = 0  # runs that ended with the worker dying under it (the policy reruns once)

    def __post_init__(self) -> None:
        self.rows = int(self.src.shape[0])  # read on every send and reply: worth keeping

    def deliver(self, out: torch.Tensor) -> bool:
        """Copy this piece's rows out of the worker's output; True if the job is then complete."""
        return self.job.fill(self.start, out[: self.rows])

    def complete(self, out: torch.Tensor) -> None:
        """The worker finished: copy its output rows into the job (resolving it after the last)."""
        if self.deliver(out):
            self.job.resolve()

    def fail(self, exc: BaseException) -> None:
        """The worker failed this piece (and so its whole job)."""
        self.job.fail(exc)
