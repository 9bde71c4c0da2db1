"""An in-process fake of a worker (a thread behind the WorkerChannel protocol), with faults on demand.

The fake computes `fake_model(x) = 2x + 1` (exact in float32), so answers can be checked exactly.
Faults mirror what a real process can suffer: `kill` (SIGKILL: the reader sees EOF at once),
`pause` / `resume` (SIGSTOP / SIGCONT: no reply until resumed), a poison input (rows holding a
negative value kill their worker mid-run, like a model that segfaults), and start failures.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import Counter

import torch

from packrat_lab.serving.messages import (
    Done,
    Ready,
    Reply,
    Resize,
    Resized,
    Run,
    RunError,
    StartFailed,
    Stop,
    WorkerInfo,
)
from packrat_lab.serving.transport import Layout
from packrat_lab.serving.worker import WorkerConfig

_EOF = object()
_KILL = object()
_pids = itertools.count(900_000)


def fake_model(x: torch.Tensor) -> torch.Tensor:
    """What every fake worker computes."""
    return x * 2 + 1


class FakeWorld:
    """Every fake worker of a test: how they behave, and a record of which rows ran how often."""

    def __init__(self, *, start_s: float = 0.0, run_s: float = 0.0) -> None:
        self.start_s = start_s
        self.run_s = run_s
        self.channels: list[FakeChannel] = []
        self.runs: Counter[float] = Counter()  # a row's first value -> times the model ran it
        self.abrupt_start_failures = 0  # the next N starts die before ready (killed)
        self.clean_start_failures = 0  # the next N starts report StartFailed (a model that cannot load)
        self._lock = threading.Lock()

    def factory(self, config: WorkerConfig) -> FakeChannel:
        """The pool's channel factory."""
        channel = FakeChannel(self, config)
        with self._lock:
            self.channels.append(channel)
        return channel

    def take_start_fault(self) -> str | None:
        with self._lock:
            if self.abrupt_start_failures:
                self.abrupt_start_failures -= 1
                return "abrupt"
            if self.clean_start_failures:
                self.clean_start_failures -= 1
                return "clean"
        return None

    def count(self, rows: torch.Tensor) -> None:
        with self._lock:
            for value in rows[:, 0].tolist():
                self.runs[value] += 1

    def alive(self) -> list[FakeChannel]:
        """Fake workers whose thread still runs."""
        with self._lock:
            return [c for c in self.channels if c.running]


class FakeChannel:
    """One fake worker: a thread with an inbox, a reply queue and its own input/output rows."""

    def __init__(self, world: FakeWorld, config: WorkerConfig) -> None:
        self._world = world
        self._config = config
        self._layout = Layout(tuple(config.spec.sample_shape), config.spec.dtype)
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._replies: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._direct: queue.SimpleQueue[object] = queue.SimpleQueue()  # answers to direct runs
        self._gate = threading.Event()
        self._gate.set()
        self._dead = False
        self._eof_sent = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = next(_pids)
        self._inp = torch.zeros(config.batch, *self._layout.sample_shape)
        self._out = torch.zeros_like(self._inp)
        self.exitcode: int | None = None

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def output_layout(self) -> Layout | None:
        return self._layout

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=f"fake-worker-{self._pid}", daemon=True)
        self._thread.start()

    def send_run(self, req_id: int, rows: torch.Tensor, *, direct: bool = False) -> None:
        if self._dead:
            raise OSError("fake worker is gone")
        self._inp[: rows.shape[0]].copy_(rows)
        self._inbox.put(Run(req_id, int(rows.shape[0]), direct))

    def send_resize(self, batch: int) -> None:
        if self._dead:
            raise OSError("fake worker is gone")
        self._inbox.put(Resize(batch))

    def send_stop(self) -> None:
        if self._dead:
            raise OSError("fake worker is gone")
        self._inbox.put(Stop())

    def recv(self) -> Reply:
        reply = self._replies.get()
        if reply is _EOF:
            raise EOFError("fake worker ended")
        return reply  # type: ignore[return-value]

    def recv_direct(self, timeout: float | None) -> Done | RunError | None:
        try:
            reply = self._direct.get(timeout=timeout)
        except queue.Empty:
            return None
        if reply is _EOF:
            self._direct.put(_EOF)  # every later read sees the end too, as on a pipe
            raise EOFError("fake worker ended")
        return reply  # type: ignore[return-value]

    def output(self, rows: int) -> torch.Tensor:
        return self._out[:rows]

    def kill(self) -> None:
        """SIGKILL: gone at once, even while paused."""
        self._die(-9)
        self._inbox.put(_KILL)
        self._gate.set()

    def pause(self) -> None:
        """SIGSTOP: takes nothing more until resumed."""
        self._gate.clear()

    def resume(self) -> None:
        """SIGCONT."""
        self._gate.set()

    def join(self, timeout: float) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def close(self) -> None:
        pass

    def _die(self, code: int) -> None:
        with self._lock:
            self._dead = True
            if self.exitcode is None:
                self.exitcode = code
            if self._eof_sent:
                return
            self._eof_sent = True
        self._replies.put(_EOF)
        self._direct.put(_EOF)

    def _info(self) -> WorkerInfo:
        return WorkerInfo(self._pid, {}, {}, int(self._inp.shape[0]), max(0.01, self._world.run_s * 1000))

    def _main(self) -> None:
        time.sleep(self._world.start_s)
        fault = self._world.take_start_fault()
        if fault == "clean":
            self._replies.put(StartFailed("ValueError: fake model cannot load"))
        if fault is not None:
            self._die(-9 if fault == "abrupt" else 0)
            return
        self._replies.put(Ready(self._info()))
        while True:
            message = self._inbox.get()
            self._gate.wait()
            if message is _KILL or self._dead:
                return
            if isinstance(message, Stop):
                self._die(0)
                return
            if isinstance(message, Resize):
                if message.batch > self._inp.shape[0]:
                    self._inp = torch.zeros(message.batch, *self._layout.sample_shape)
                    self._out = torch.zeros_like(self._inp)
                self._replies.put(Resized(self._info()))
            elif isinstance(message, Run):
                self._run(message)

    def _run(self, message: Run) -> None:
        rows = self._inp[: message.rows]
        self._world.count(rows)
        if bool((rows < 0).any()):  # poison: the model "segfaults"
            self._die(-11)
            return
        time.sleep(self._world.run_s)
        self._gate.wait()
        if self._dead:
            return
        self._out[: message.rows].copy_(fake_model(rows))
        answers = self._direct if message.direct else self._replies
        answers.put(Done(message.req_id, message.rows, self._world.run_s * 1000))
