"""The seam between a worker handle and its worker: a small channel protocol, and the real one.

`WorkerChannel` is all a `WorkerHandle` knows of its worker: start it, send Run/Resize/Stop,
receive typed replies, read output rows, kill it. `ProcessChannel` implements it with a spawned,
pinned process, one duplex Pipe, a one-way direct pipe and two shared-memory segments; the
schedule checker's in-process fake (tests/fake_workers.py) implements it with a thread, so fault
schedules run in milliseconds. Threads: `start`, `send_*`, `kill` are called under the handle's
lock (any thread); `recv` only from the handle's reader thread; `recv_direct` only from the one
thread collecting the direct run in flight; `output` from whichever of the two holds the answer;
`close` once, after `recv` hit EOF and no direct run is being collected.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from packrat_lab.serving.messages import Done, Ready, Reply, Resize, Resized, Run, RunError, Stop, WorkerInfo
from packrat_lab.serving.transport import (
    DIRECT_RECORD_MAX,
    Layout,
    Segment,
    decode_message,
    encode_message,
    unlink_name,
)
from packrat_lab.serving.worker import WorkerConfig, worker_main

if TYPE_CHECKING:
    from multiprocessing.context import SpawnContext, SpawnProcess

    import torch

__all__ = ["ChannelFactory", "ProcessChannel", "WorkerChannel", "process_channels"]

_ENV_LOCK = threading.Lock()  # os.environ is process-wide: one spawn at a time edits it


class WorkerChannel(Protocol):
    """One worker as the parent sees it: messages in, typed replies out, rows through `output`."""

    @property
    def pid(self) -> int | None:
        """The worker's process id once started (a fake's is made up)."""

    @property
    def output_layout(self) -> Layout | None:
        """Layout of one output row (known once the worker is ready)."""

    @property
    def exitcode(self) -> int | None:
        """How the worker ended (None while running or for a fake)."""

    def start(self) -> None:
        """Start the worker; its Ready (or StartFailed, or EOF) arrives through `recv`."""

    def send_run(self, req_id: int, rows: torch.Tensor, *, direct: bool = False) -> None:
        """Place `rows` in the worker's input and ask it to run them (OSError/ValueError: gone).

        With `direct`, the answer comes through `recv_direct`, not `recv`.
        """

    def send_resize(self, batch: int) -> None:
        """Ask the worker to serve a new batch slice."""

    def send_stop(self) -> None:
        """Ask the worker to exit once what was sent before is answered."""

    def recv(self) -> Reply:
        """Block for the next reply; EOFError once the worker is gone."""

    def recv_direct(self, timeout: float | None) -> Done | RunError | None:
        """The answer to the direct run in flight; None after `timeout` s; EOFError once the worker is gone."""

    def output(self, rows: int) -> torch.Tensor:
        """The first `rows` output rows of the last Done (valid until the next send_run)."""

    def kill(self) -> None:
        """End the worker now (a hang, a close that timed out, a test)."""

    def join(self, timeout: float) -> None:
        """Reap the worker after EOF."""

    def close(self) -> None:
        """Drop mappings and remove what the worker could not (a killed worker's segments)."""


ChannelFactory = Callable[[WorkerConfig], WorkerChannel]


class ProcessChannel:
    """A spawned worker process pinned to its cores, a Pipe, and two shared-memory segments."""

    def __init__(self, ctx: SpawnContext, config: WorkerConfig) -> None:
        self._ctx = ctx
        self._config = config
        self._process: SpawnProcess | None = None
        self._conn: Any = None
        self._direct: Any = None  # read end of the direct pipe
        self._inp: Segment | None = None
        self._out: Segment | None = None
        self._names: set[str] = set()

    @property
    def pid(self) -> int | None:
        """The worker's process id once started."""
        return None if self._process is None else self._process.pid

    @property
    def output_layout(self) -> Layout | None:
        """Layout of one output row (known once the worker is ready)."""
        return None if self._out is None else self._out.layout

    @property
    def exitcode(self) -> int | None:
        """The process's exit code once it ended (negative: killed by that signal)."""
        return None if self._process is None else self._process.exitcode

    def start(self) -> None:
        """Spawn with the instance's runtime environment (set for the exec, so torch sees it at import)."""
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        direct_read, direct_write = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=worker_main,
            args=(child_conn, self._config, direct_write),
            daemon=True,
            name=f"packrat-worker-{self._config.worker_id}",
        )
        env = dict(self._config.env)
        with _ENV_LOCK:
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
        direct_write.close()  # the worker holds the only write end: its death is EOF here
        self._process, self._conn, self._direct = process, parent_conn, direct_read

    def send_run(self, req_id: int, rows: torch.Tensor, *, direct: bool = False) -> None:
        """Copy rows into the input segment, then send the tiny Run message."""
        if self._inp is None:
            msg = "worker has no input segment (not ready)"
            raise ValueError(msg)
        self._inp.tensor[: rows.shape[0]].copy_(rows)
        self._conn.send_bytes(encode_message(Run(req_id, int(rows.shape[0]), direct)))

    def send_resize(self, batch: int) -> None:
        """Ask for a new batch slice."""
        self._conn.send_bytes(encode_message(Resize(batch)))

    def send_stop(self) -> None:
        """Ask the worker to exit after what it holds."""
        self._conn.send_bytes(encode_message(Stop()))

    def recv(self) -> Reply:
        """Next reply; Ready and Resized (re)attach the segments first."""
        try:
            message = decode_message(self._conn.recv_bytes())
        except OSError as exc:
            raise EOFError(str(exc)) from exc
        if isinstance(message, (Ready, Resized)):
            self._attach(message.info)
        return message  # type: ignore[return-value]

    def recv_direct(self, timeout: float | None) -> Done | RunError | None:
        """Wait for the one record on the direct pipe; a single read takes it whole (or nothing)."""
        fd = self._direct.fileno()
        if timeout is not None:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            if not poller.poll(max(0.0, timeout) * 1000.0):
                return None
        data = os.read(fd, DIRECT_RECORD_MAX)
        if not data:
            msg = f"worker {self._config.worker_id} ended"
            raise EOFError(msg)
        return decode_message(data)  # type: ignore[return-value]

    def _attach(self, info: WorkerInfo) -> None:
        for seg in (self._inp, self._out):
            if seg is not None:
                seg.close()
        self._inp, self._out = Segment.attach(info.input), Segment.attach(info.output)
        self._names.update((self._inp.name, self._out.name))

    def output(self, rows: int) -> torch.Tensor:
        """A view of the first `rows` output rows."""
        assert self._out is not None
        return self._out.tensor[:rows]

    def kill(self) -> None:
        """SIGKILL the process (a stopped one dies too)."""
        if self._process is not None and self._process.is_alive():
            self._process.kill()

    def join(self, timeout: float) -> None:
        """Reap the process."""
        if self._process is not None:
            self._process.join(timeout=timeout)

    def close(self) -> None:
        """Unmap the segments and unlink them (a killed worker could not)."""
        for seg in (self._inp, self._out):
            if seg is not None:
                seg.close()
        self._inp = self._out = None
        for name in self._names:
            unlink_name(name)
        for conn in (self._conn, self._direct):
            with contextlib.suppress(OSError):
                if conn is not None:
                    conn.close()


def process_channels(ctx: SpawnContext) -> ChannelFactory:
    """The production channel factory: one spawned process per worker."""

    def make(config: WorkerConfig) -> WorkerChannel:
        return ProcessChannel(ctx, config)

    return make
