"""Parent-side handle of one worker process: its queue, its reader thread, its death."""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from packrat_lab.errors import WorkerFailedError
from packrat_lab.serving.dispatcher import Piece
from packrat_lab.serving.transport import Segment, decode_message, encode_message, unlink_name
from packrat_lab.serving.worker import WorkerConfig, WorkerState, worker_main

if TYPE_CHECKING:
    from multiprocessing.context import SpawnContext, SpawnProcess

    from packrat_lab.plan import Instance

__all__ = ["WorkerHandle"]

_ENV_LOCK = threading.Lock()  # os.environ is process-wide: one spawn at a time edits it


@dataclass(frozen=True)
class _Resize:
    batch: int


class _Stop:
    pass


_Item = Union[Piece, _Resize, _Stop]  # noqa: UP007 - a runtime alias on 3.10
ExitCallback = Callable[["WorkerHandle", list[Piece]], None]


class WorkerHandle:
    """One worker: requests queue here FIFO and go to the process one at a time.

    A piece enqueued before the worker is ready waits; one enqueued after it failed or stopped
    fails at once with WorkerFailedError, so no caller ever waits on a dead worker.
    """

    def __init__(
        self, ctx: SpawnContext, config: WorkerConfig, instance: Instance, on_exit: ExitCallback
    ) -> None:
        self.ctx = ctx
        self.config = config
        self.instance = instance
        self.batch = instance.batch
        self.state = WorkerState.STARTING
        self.served = 0
        self.run_ms = 0.0  # model time reported by the worker, summed (for mean run time in stats)
        self.error: str | None = None
        self.pid: int | None = None
        self.ready = threading.Event()
        self.exited = threading.Event()
        self.drained = threading.Event()  # set once the stop went out: everything before it finished
        self.was_ready = False
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._pending: deque[_Item] = deque()
        self._current: _Item | None = None
        self._stop_sent = False
        self._ids = itertools.count()
        self._inp: Segment | None = None
        self._out: Segment | None = None
        self._names: set[str] = set()
        self._process: SpawnProcess | None = None
        self._conn: Any = None
        self._reader: threading.Thread | None = None

    @property
    def cores(self) -> tuple[int, ...]:
        """The cores this worker is pinned to."""
        return self.config.cores

    def start(self) -> None:
        """Spawn the process with the instance's runtime environment (set for the exec as well)."""
        parent_conn, child_conn = self.ctx.Pipe(duplex=True)
        process = self.ctx.Process(
            target=worker_main,
            args=(child_conn, self.config),
            daemon=True,
            name=f"packrat-worker-{self.config.worker_id}",
        )
        env = dict(self.config.env)
        with _ENV_LOCK:  # the child execs with our environ: torch may load before worker_main runs
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                process.start()
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
        child_conn.close()
        self._process, self._conn, self.pid = process, parent_conn, process.pid
        self._reader = threading.Thread(
            target=self._read, name=f"packrat-reader-{self.config.worker_id}", daemon=True
        )
        self._reader.start()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until warm; raise WorkerFailedError if it failed to start or timed out."""
        if not self.ready.wait(timeout):
            msg = f"worker {self.config.worker_id} ({self.instance.threads} threads, batch {self.batch}) not ready after {timeout} s"
            raise WorkerFailedError(msg)
        if self.state is not WorkerState.READY and self.state is not WorkerState.DRAINING:
            code = None if self._process is None else self._process.exitcode
            why = (
                self.error
                or f"exited with code {code} before it was ready (in a script, create pools under if __name__ == '__main__':)"
            )
            msg = f"worker {self.config.worker_id} failed to start: {why}"
            raise WorkerFailedError(msg)

    # -- queueing -----------------------------------------------------------------------------

    def enqueue(self, piece: Piece) -> None:
        """Queue one piece of a batch (≤ this worker's batch rows)."""
        with self._lock:
            dead = self.state in (WorkerState.FAILED, WorkerState.STOPPED) or self._stop_sent
            if not dead:
                self._pending.append(piece)
                self._send_next()
        if dead:
            piece.fail(
                WorkerFailedError(f"worker {self.config.worker_id} is {self.state.value}; retry the request")
            )

    def adopt(self, pieces: list[Piece]) -> None:
        """Take over the pieces a dead worker held (they run here once this worker is ready)."""
        for piece in pieces:
            self.enqueue(piece)

    def resize(self, batch: int) -> None:
        """Serve a new batch slice (queued behind what the worker already holds)."""
        with self._lock:
            self._pending.append(_Resize(batch))
        self._pump()

    def stop(self) -> None:
        """Drain: finish what is queued, then exit."""
        with self._lock:
            if self.state is WorkerState.READY:  # a starting worker gets the stop once it is ready
                self.state = WorkerState.DRAINING
            self._pending.append(_Stop())
        self._pump()

    @property
    def load(self) -> int:
        """Items held (running plus queued); 0 means idle."""
        with self._lock:
            return len(self._pending) + (self._current is not None and not isinstance(self._current, _Stop))

    def _pump(self) -> None:
        """Send the next item if the worker is free (called by callers and the reader thread)."""
        with self._lock:
            self._send_next()

    def _send_next(self) -> None:
        """_pump's body, for callers that already hold the lock (one acquisition per request)."""
        if self._current is not None or not self._pending or self._stop_sent:
            return
        if self.state is not WorkerState.READY and self.state is not WorkerState.DRAINING:
            return
        item = self._pending.popleft()
        self._current = item
        try:
            if isinstance(item, Piece):
                assert self._inp is not None
                self._inp.tensor[: item.rows].copy_(item.src)
                self._conn.send_bytes(encode_message(("run", next(self._ids), item.rows)))
            elif isinstance(item, _Stop):
                self._stop_sent = True
                self.drained.set()
                self._conn.send_bytes(encode_message(("stop",)))
            else:
                self._conn.send_bytes(encode_message(("resize", item.batch)))
        except (OSError, ValueError):  # pipe broken: the reader sees EOF and hands the item on
            pass

    # -- the reader thread --------------------------------------------------------------------

    def _attach(self, info: dict[str, Any]) -> None:
        for seg in (self._inp, self._out):
            if seg is not None:
                seg.close()
        self._inp, self._out = Segment.attach(info["input"]), Segment.attach(info["output"])
        self._names.update((self._inp.name, self._out.name))

    @property
    def output_layout(self) -> Any:
        """Layout of one output row (known once the worker is ready)."""
        return None if self._out is None else self._out.layout

    def _read(self) -> None:
        """Turn replies into completed pieces; on EOF, account for the process's end."""
        while True:
            try:
                message = decode_message(self._conn.recv_bytes())
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "ready":
                with self._lock:
                    self._attach(message[1])
                    self.was_ready = True
                    if self.state is WorkerState.STARTING:
                        self.state = WorkerState.READY
                self.ready.set()
            elif kind == "failed":
                self.error = message[1]
            elif kind in ("done", "error", "resized"):
                # `_current` stays set while the output is copied, so no other thread sends the next
                # request (which would overwrite the output segment) before we are done with it.
                # The caller is woken last, after the next request went out: it then finds the
                # GIL free as soon as this thread blocks in recv again.
                item = self._current
                finished: Piece | None = None
                if kind == "resized":
                    with self._lock:
                        self._attach(message[1])
                elif kind == "done":
                    assert isinstance(item, Piece) and self._out is not None
                    try:
                        if item.deliver(self._out.tensor):
                            finished = item
                    except Exception as exc:  # noqa: BLE001 - the reader thread must outlive any one request
                        item.fail(exc)
                elif isinstance(item, Piece):
                    item.fail(WorkerFailedError(f"worker {self.config.worker_id}: {message[2]}"))
                with self._lock:
                    self._current = None
                    if kind == "done":
                        self.served += 1
                        self.run_ms += float(message[3])
                    self._send_next()
                if finished is not None:
                    finished.job.resolve()
                continue
            self._pump()
        self._finish()

    def _finish(self) -> None:
        if self._process is not None:
            self._process.join(timeout=5)
        with self._lock:
            items = ([self._current] if self._current is not None else []) + list(self._pending)
            self._current = None
            self._pending.clear()
            expected = self._stop_sent and self.error is None
            self.state = WorkerState.STOPPED if expected else WorkerState.FAILED
            for seg in (self._inp, self._out):
                if seg is not None:
                    seg.close()
            self._inp = self._out = None
        for name in self._names:  # a killed worker could not remove its own segments
            unlink_name(name)
        with contextlib.suppress(OSError):
            self._conn.close()
        self.ready.set()
        self.drained.set()
        try:
            self._on_exit(self, [i for i in items if isinstance(i, Piece)])
        finally:
            self.exited.set()

    def join(self, timeout: float = 5.0) -> None:
        """Wait for the reader thread to end (a thread still unwinding torch state at exit can abort)."""
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout)

    def kill(self) -> None:
        """Terminate the process now (close() after a drain timeout, or a test)."""
        if self._process is not None and self._process.is_alive():
            self._process.kill()

    def describe(self) -> dict[str, Any]:
        """Per-worker row for pool.stats()."""
        return {
            "id": self.config.worker_id,
            "state": self.state.value,
            "pid": self.pid,
            "cores": list(self.cores),
            "threads": self.instance.threads,
            "batch": self.batch,
            "setting": self.instance.setting.name,
            "served": self.served,
            "mean_run_ms": self.run_ms / self.served if self.served else None,
            "queued": self.load,
        }
