"""Parent-side handle of one worker: its FIFO of pieces, its reader thread, its deadline, its end.

A handle owns no lifecycle decisions: when its worker becomes ready or ends it posts a
`WorkerReady` / `WorkerExited` to the supervisor, which alone decides what happens next.
Threads: callers (`enqueue`, `enqueue_direct`, `collect_direct`), the supervisor (`start`, `stop`,
`resize`, `mark_hung`, `kill`) and the reader thread all take `_lock` briefly; the reader delivers
outputs and settles jobs outside it.

Direct runs (the `infer` fast path): a caller that finds the worker idle sends its piece marked
direct and then reads the answer from the worker's direct pipe itself, so the answer reaches it
with no reader-thread hop. At most one direct run is in flight (`_direct`, under `_lock`); its
collector owns the direct pipe until the answer is read. The collector copies the output while
holding `_lock` (so the reader's end-of-worker accounting cannot take the piece mid-copy: whoever
takes the lock first owns it) and settles the job after releasing it. A collector that gives up
(its timeout, an interrupt) hands the read to a short-lived thread, so the worker's next request is
never stuck behind an unread answer. When the worker dies, the direct pipe reads EOF and the piece
is accounted for by the reader's `WorkerExited`, like any running piece.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Union

from packrat_lab.errors import DeadlineDropped, WorkerFailedError
from packrat_lab.serving.dispatcher import Piece
from packrat_lab.serving.messages import Done, Ready, Resized, RunError, StartFailed
from packrat_lab.serving.prediction import LatencyModel
from packrat_lab.serving.worker import WorkerConfig, WorkerState

if TYPE_CHECKING:
    from packrat_lab.plan import Instance
    from packrat_lab.serving.channel import WorkerChannel
    from packrat_lab.serving.transport import Layout

__all__ = ["WorkerExited", "WorkerHandle", "WorkerReady"]


@dataclass(frozen=True)
class _Resize:
    batch: int


class _Stop:
    pass


_Item = Union[Piece, _Resize, _Stop]  # noqa: UP007 - a runtime alias on 3.10


@dataclass(frozen=True)
class WorkerReady:
    """Posted by a reader thread: the worker is loaded and warm."""

    handle: WorkerHandle


@dataclass(frozen=True)
class WorkerExited:
    """Posted by a reader thread: the worker ended; what it was running and what waited behind it."""

    handle: WorkerHandle
    running: Piece | None
    queued: list[Piece]


Notify = Callable[[Union[WorkerReady, WorkerExited]], None]  # noqa: UP007
Settle = Callable[[], None]  # settles one future: run with no lock held


class WorkerHandle:
    """One worker: pieces queue here FIFO and go to the worker one at a time.

    A piece enqueued before the worker is ready waits (also while the handle's process is not
    started yet, during a restart backoff); one enqueued after the worker ended fails at once
    with WorkerFailedError, so no caller ever waits on a dead worker.
    """

    def __init__(
        self,
        channel: WorkerChannel,
        config: WorkerConfig,
        instance: Instance,
        notify: Notify,
        clock: Callable[[], float] = time.monotonic,
        latency: LatencyModel | None = None,
    ) -> None:
        self.config = config
        self.latency = latency or LatencyModel()  # read and written under `_lock`
        self.dropped = 0  # pieces dropped unsent: they could not finish by their job's deadline
        self.instance = instance
        self.batch = instance.batch
        self.state = WorkerState.STARTING
        self.served = 0
        self.served_direct = 0  # of `served`: answers its caller read itself (the infer fast path)
        self.run_ms = 0.0  # model time reported by the worker, summed (mean run time in stats)
        self.warm_ms: float | None = None  # the worker's own warm batch time (hang deadline base)
        self.error: str | None = None
        self.start_failed = False  # the worker said it could not load: a restart would fail again
        self.started_at: float | None = None
        self.ready = threading.Event()
        self.exited = threading.Event()
        self.was_ready = False
        self._channel = channel
        self._notify = notify
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: deque[_Item] = deque()
        self._current: _Item | None = None
        self._current_since = 0.0
        self._stop_asked = False
        self._stop_sent = False
        self._broken = False  # a send failed: the worker is gone, its EOF is on the way
        self._ended = False
        self._ids = itertools.count()
        self._reader: threading.Thread | None = None
        self._direct: Piece | None = None  # the piece whose answer comes on the direct pipe
        self._direct_free = threading.Event()  # clear while a direct answer is still to be read
        self._direct_free.set()

    @property
    def cores(self) -> tuple[int, ...]:
        """The cores this worker is pinned to."""
        return self.config.cores

    @property
    def pid(self) -> int | None:
        """The worker's process id (None before start)."""
        return self._channel.pid

    @property
    def output_layout(self) -> Layout | None:
        """Layout of one output row (known once the worker is ready)."""
        return self._channel.output_layout

    @property
    def exitcode(self) -> int | None:
        """How the worker process ended (None while it runs)."""
        return self._channel.exitcode

    @property
    def started(self) -> bool:
        """Whether `start` ran (a handle waiting out a restart backoff has not)."""
        return self._reader is not None

    def start(self) -> None:
        """Start the worker and its reader thread (supervisor thread only)."""
        self.started_at = self._clock()
        self._channel.start()
        self._reader = threading.Thread(
            target=self._read, name=f"packrat-reader-{self.config.worker_id}", daemon=True
        )
        self._reader.start()

    # -- queueing -----------------------------------------------------------------------------

    def enqueue(self, piece: Piece) -> bool:
        """Queue one piece of a batch (≤ this worker's batch rows); False if this worker takes no more.

        The caller fails a refused piece itself, after releasing its own locks.
        """
        return self.enqueue_direct(piece, direct=False) != "refused"

    def enqueue_direct(self, piece: Piece, *, direct: bool = True) -> Literal["direct", "queued", "refused"]:
        """Like `enqueue`, but an idle worker's answer comes to the caller: 'direct', 'queued' or 'refused'.

        After 'direct' the caller must call `collect_direct(piece, ...)` (it owns the answer).
        """
        with self._lock:
            if self._ended or self._stop_asked:
                return "refused"
            if direct and self._direct is None and self._current is None and not self._pending:
                self._direct = piece  # `_send_next` sends it marked direct
            self._pending.append(piece)
            doomed = self._send_next()
            sent_direct = self._direct is piece and self._current is piece
            if sent_direct:
                self._direct_free.clear()
            elif self._direct is piece:  # dropped, skipped or not sent: it goes the usual way
                self._direct = None
        _settle_all(doomed)
        return "direct" if sent_direct else "queued"

    def collect_direct(self, piece: Piece, timeout: float | None = None) -> None:
        """Wait for the direct run's answer on this thread and settle it (see the module docstring).

        Returns when the piece is settled here, when the worker ended (the reader's end-of-worker
        accounting settles it), or after `timeout` s (a helper thread then reads the answer).
        """
        try:
            reply = self._channel.recv_direct(timeout)
        except (EOFError, OSError):
            self._direct_free.set()
            return
        except BaseException:  # an interrupt in the caller: the answer still has to be read
            self._hand_over_direct(piece)
            raise
        if reply is None:
            self._hand_over_direct(piece)
            return
        self._settle_direct(piece, reply)

    def _hand_over_direct(self, piece: Piece) -> None:
        """Let a helper thread read the direct answer its caller stopped waiting for."""
        threading.Thread(
            target=self.collect_direct,
            args=(piece, None),
            name=f"packrat-direct-{self.config.worker_id}",
            daemon=True,
        ).start()

    def _settle_direct(self, piece: Piece, reply: Done | RunError) -> None:
        finished = False
        failure: BaseException | None = None
        with self._lock:
            if self._direct is not piece or self._current is not piece:
                self._direct_free.set()  # the worker's end took the piece first
                return
            if isinstance(reply, Done):
                try:
                    finished = piece.deliver(self._channel.output(piece.rows))
                except Exception as exc:  # noqa: BLE001 - one bad answer must not stop this worker's queue
                    failure = exc
                self._count_done(piece, reply)
                self.served_direct += 1
            else:
                failure = self._run_failure(reply)
            self._current = self._direct = None
            self._direct_free.set()
            doomed = self._send_next()
        if failure is not None:
            piece.fail(failure)
        _settle_all(doomed)
        if finished:
            piece.job.resolve()

    def refusal(self) -> WorkerFailedError:
        """The error for a piece this worker refused."""
        return WorkerFailedError(f"worker {self.config.worker_id} is {self.state}; retry the request")

    def resize(self, batch: int) -> None:
        """Serve a new batch slice (queued behind what the worker already holds)."""
        with self._lock:
            self.batch = batch
            self._pending.append(_Resize(batch))
            doomed = self._send_next()
        _settle_all(doomed)

    def stop(self) -> None:
        """Drain: finish what is queued, then exit (a worker not yet started just ends)."""
        with self._lock:
            if self._stop_asked or self._ended:
                return
            self._stop_asked = True
            if self.state is WorkerState.READY:
                self.state = WorkerState.DRAINING
            self._pending.append(_Stop())
            doomed = self._send_next()
        _settle_all(doomed)

    def take_queued(self) -> list[Piece]:
        """Remove and return the pieces not yet sent (a worker that will never start gives them back)."""
        with self._lock:
            pieces = [item for item in self._pending if isinstance(item, Piece)]
            self._pending = deque(item for item in self._pending if not isinstance(item, Piece))
            return pieces

    @property
    def load(self) -> int:
        """Items held (running plus queued); 0 means idle."""
        with self._lock:
            return len(self._pending) + (self._current is not None and not isinstance(self._current, _Stop))

    def wait_ms(self, now: float) -> float:
        """Predicted ms until this worker is free: queued pieces plus what is left of the running one.

        Infinite while the worker is not serving (starting, restarting, ended): nothing queued
        here can be promised a time.
        """
        with self._lock:
            if self._ended or self._stop_asked or self.state is not WorkerState.READY:
                return math.inf
            total = 0.0
            for item in self._pending:
                if isinstance(item, Piece):
                    if not item.job.settled:
                        total += self.latency.expect_ms(item.rows)
                elif isinstance(item, _Resize):
                    total += self.warm_ms or 0.0
            current = self._current
            if isinstance(current, Piece):
                elapsed = (now - self._current_since) * 1000.0
                total += max(0.0, self.latency.expect_ms(current.rows) - elapsed)
            elif isinstance(current, _Resize):
                total += self.warm_ms or 0.0
            return total

    def forget_measurements(self) -> None:
        """Start the latency model over from its prior (its measurements went stale)."""
        with self._lock:
            self.latency.forget()

    def expect_ms(self, rows: int) -> float:
        """Predicted service time of a piece of `rows` on this worker."""
        with self._lock:
            return self.latency.expect_ms(rows)

    def overdue(self, now: float, deadline_s: float, start_timeout_s: float) -> str | None:
        """Why this worker counts as hung at `now`, or None (a batch or a start past its deadline)."""
        with self._lock:
            if self._ended or self.state is WorkerState.HUNG:
                return None
            if self.state is WorkerState.STARTING:
                if self.started_at is not None and now - self.started_at > start_timeout_s:
                    return f"not ready after {start_timeout_s:g} s"
                return None
            if isinstance(self._current, Piece) and now - self._current_since > deadline_s:
                return f"no answer to a {self._current.rows}-row batch within {deadline_s:.3g} s"
            if isinstance(self._current, _Resize) and now - self._current_since > 2 * deadline_s:
                return f"no answer to a resize (one warm batch) within {2 * deadline_s:.3g} s"
            return None

    def mark_hung(self, why: str) -> None:
        """Record why the supervisor is about to kill this worker."""
        with self._lock:
            self.state = WorkerState.HUNG
            self.error = f"hung: {why}"

    def _send_next(self) -> list[Settle]:
        """Send the next item if the worker is free; caller holds `_lock` and settles what this returns."""
        doomed: list[Settle] = []
        while self._current is None and self._pending and not self._stop_sent and not self._broken:
            if self.state not in (WorkerState.READY, WorkerState.DRAINING):
                break
            item = self._pending.popleft()
            now = self._clock()
            if isinstance(item, Piece):
                expect_ms = self.latency.expect_ms(item.rows)
                verdict = item.job.begin_piece(now, expect_ms / 1000.0)
                if verdict == "skip":
                    continue  # failed elsewhere, withdrawn or cancelled: never run it
                if verdict == "drop":  # past its window: never run it
                    self.dropped += 1
                    doomed.append(functools.partial(item.job.settle_claimed, _dropped(item, now, expect_ms)))
                    continue
            self._current, self._current_since = item, now
            try:
                if isinstance(item, Piece):
                    self._channel.send_run(next(self._ids), item.src, direct=item is self._direct)
                elif isinstance(item, _Stop):
                    self._stop_sent = True
                    self._channel.send_stop()
                else:
                    self._channel.send_resize(item.batch)
            except (OSError, ValueError, EOFError):  # the worker is gone: the reader sees EOF next
                self._broken = True
                if isinstance(item, Piece):  # it never ran: it goes back as queued, not as the suspect
                    self._current = None
                    self._pending.appendleft(item)
                break
            except Exception as exc:  # noqa: BLE001 - one bad piece must not stop this worker's queue
                self._current = None
                if isinstance(item, Piece):
                    error = WorkerFailedError(
                        f"worker {self.config.worker_id}: could not send: {type(exc).__name__}: {exc}"
                    )
                    doomed.append(functools.partial(item.fail, error))
                continue
            break
        return doomed

    # -- the reader thread --------------------------------------------------------------------

    def _read(self) -> None:
        """Turn replies into completed pieces; on EOF (or any surprise), account for the end."""
        try:
            while True:
                try:
                    reply = self._channel.recv()
                except EOFError:
                    break
                self._on_reply(reply)
        except Exception as exc:  # noqa: BLE001 - recorded; the end is accounted for below
            self.error = self.error or f"reader: {type(exc).__name__}: {exc}"
            self._channel.kill()
        finally:
            self._finish()

    def _on_reply(self, reply: object) -> None:
        if isinstance(reply, Ready):
            with self._lock:
                self.warm_ms = reply.info.warm_ms
                self.latency.seed(self.batch, reply.info.warm_ms)
                self.was_ready = True
                if self.state is WorkerState.STARTING:
                    self.state = WorkerState.READY
                doomed = self._send_next()
            _settle_all(doomed)
            self.ready.set()
            self._notify(WorkerReady(self))
        elif isinstance(reply, StartFailed):
            self.error, self.start_failed = reply.message, True
        elif isinstance(reply, (Done, RunError, Resized)):
            self._on_answer(reply)

    def _on_answer(self, reply: Done | RunError | Resized) -> None:
        # `_current` stays set while the output is copied, so no other thread sends the next
        # request (which would overwrite the output segment) before we are done with it. The
        # caller is woken last, after the next request went out.
        item = self._current
        finished: Piece | None = None
        if isinstance(reply, Done) and isinstance(item, Piece):
            try:
                if item.deliver(self._channel.output(item.rows)):
                    finished = item
            except Exception as exc:  # noqa: BLE001 - the reader thread must outlive any one request
                item.fail(exc)
        elif isinstance(reply, RunError) and isinstance(item, Piece):
            item.fail(self._run_failure(reply))
        with self._lock:
            if isinstance(reply, Done):
                self._count_done(item if isinstance(item, Piece) else None, reply)
            self._current = None
            if isinstance(reply, Resized):
                self.warm_ms = reply.info.warm_ms
            doomed = self._send_next()
        _settle_all(doomed)
        if finished is not None:
            finished.job.resolve()

    def _count_done(self, piece: Piece | None, reply: Done) -> None:
        """Account one answered run (caller holds `_lock`): the latency model, served, model time."""
        if piece is not None:
            self.latency.observe(piece.rows, (self._clock() - self._current_since) * 1000.0)
        self.served += 1
        self.run_ms += reply.run_ms

    def _run_failure(self, reply: RunError) -> WorkerFailedError:
        """The error a piece gets when the model raised on it (the worker lives on)."""
        return WorkerFailedError(f"worker {self.config.worker_id}: {reply.message}")

    def _finish(self) -> None:
        self._channel.join(5.0)
        with self._lock:
            running = self._current if isinstance(self._current, Piece) else None
            queued = [i for i in self._pending if isinstance(i, Piece)]
            self._current = self._direct = None
            self._pending.clear()
            self._ended = True
            clean = self._stop_sent and self.error is None
            self.state = WorkerState.STOPPED if clean else WorkerState.FAILED
            if not clean and self.error is None:
                code = self._channel.exitcode
                self.error = "process died" if code is None else f"process ended with code {code}"
        self._direct_free.wait(5.0)  # a collector reads EOF on the direct pipe at once: close after it
        self._channel.close()
        self.ready.set()
        try:
            self._notify(WorkerExited(self, running, queued))
        finally:
            self.exited.set()

    def end_unstarted(self) -> list[Piece]:
        """Retire a handle whose worker was never started (close during a backoff); its queued pieces."""
        with self._lock:
            self._ended = True
            self.state = WorkerState.STOPPED
            queued = [i for i in self._pending if isinstance(i, Piece)]
            self._pending.clear()
        self.ready.set()
        self.exited.set()
        return queued

    def join(self, timeout: float = 5.0) -> None:
        """Wait for the reader thread to end."""
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout)

    def kill(self) -> None:
        """End the worker now (a hang, a close that timed out, a test)."""
        self._channel.kill()

    def describe(self) -> dict[str, object]:
        """Per-worker row for pool.stats()."""
        return {
            "id": self.config.worker_id,
            "state": self.state.value,
            "pid": self.pid,
            "cores": list(self.cores),
            "threads": self.instance.threads,
            "batch": self.batch,
            "setting": self.instance.setting.name,
            "backend": self.instance.backend.key,
            "served": self.served,
            "served_direct": self.served_direct,
            "mean_run_ms": self.run_ms / self.served if self.served else None,
            "expected_ms": self.expect_ms(self.batch),
            "dropped": self.dropped,
            "queued": self.load,
            "error": self.error,
        }


def _settle_all(doomed: list[Settle]) -> None:
    """Settle pieces that were dropped or could not be sent (called with no lock held: futures run callbacks)."""
    for settle in doomed:
        settle()


def _dropped(piece: Piece, now: float, expect_ms: float) -> DeadlineDropped:
    deadline = piece.job.deadline
    left_ms = (deadline - now) * 1000.0 if deadline is not None else 0.0
    return DeadlineDropped(
        f"dropped before it ran: a {piece.rows}-row piece needs about {expect_ms:.1f} ms "
        f"but its deadline was {left_ms:.1f} ms away",
        predicted_ms=expect_ms,
        deadline_ms=left_ms,
    )
