"""Worker process: one plan instance, pinned, with its own threads, setting, backend and model copy.

This module is the spawn entry point. It must not import torch (or anything that does) at
module top: the instance's runtime setting (OMP_WAIT_POLICY, ...) has to be in os.environ and the
affinity set before torch and its OpenMP runtime load in the child.

Protocol over one duplex Pipe (the typed messages of `serving.messages`, framed by
`transport.encode_message`; tensors travel through `transport.Segment`):
parent → worker: Run | Resize | Stop
worker → parent: Ready | Done | RunError | Resized | StartFailed
plus a one-way direct pipe: a Run marked `direct` is answered there, as one raw record
(`transport.encode_direct`), for the caller that waits on it itself.
"""

from __future__ import annotations

import enum
import gc
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packrat_lab.serving.messages import (
    Done,
    Ready,
    Resize,
    Resized,
    Run,
    RunError,
    StartFailed,
    Stop,
    WorkerInfo,
)
from packrat_lab.serving.transport import Layout, Segment, decode_message, encode_direct, encode_message
from packrat_lab.workloads.backends.names import EAGER_FP32, BackendChoice

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    import torch

    from packrat_lab.settings import RuntimeSetting
    from packrat_lab.workloads.base import WorkloadSpec

__all__ = ["WorkerConfig", "WorkerState", "worker_main"]

PARENT_POLL_S = 0.2
# Opt-in busy-poll after each request (seconds). Off by default: on the 2-core dev host it made
# latency no better and tails worse, since the parent shares those cores (benchmarks/results/pool.md).
SPIN_S = float(os.environ.get("PACKRAT_WORKER_SPIN_S", "0"))


class WorkerState(str, enum.Enum):
    """Life of a worker as the pool sees it."""

    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    HUNG = "hung"  # a batch ran past its deadline: being killed, then replaced
    STOPPED = "stopped"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a spawned worker needs; picklable and torch-free."""

    worker_id: int
    threads: int
    batch: int
    cores: tuple[int, ...]
    env: tuple[tuple[str, str], ...]  # from child_env.child_environment: what profiling used too
    setting: RuntimeSetting
    spec: WorkloadSpec
    workload_name: str
    warmup: int
    prefix: str
    parent_pid: int
    backend: BackendChoice = EAGER_FP32  # the runtime the plan chose for this instance
    cache_dir: str | None = None  # conversion cache (None: $PACKRAT_LAB_CACHE or ~/.cache/packrat_lab)


class _Runner:
    """The model plus this worker's segments; runs requests on zero-copy views."""

    def __init__(self, config: WorkerConfig) -> None:
        import torch

        from packrat_lab.workloads.base import Workload, build_from_spec

        self.config = config
        self.model: Any = build_from_spec(config.spec)
        if isinstance(self.model, torch.nn.Module):
            self.model.eval()
        self.workload = Workload(config.workload_name, config.spec)
        self.convert_s = 0.0
        self.fixed_batch = False  # True: always run the whole slice (a compiled shape), answer the rows asked
        if not config.backend.is_reference:
            self._use_backend(config)
        self.generation = 0
        self.batch = config.batch
        example = self.workload.example_input(config.batch)
        started = time.perf_counter()
        out = self._forward(example)
        self.warm_ms = (time.perf_counter() - started) * 1000.0  # the first call (slow): an upper bound
        if out.dim() == 0 or out.shape[0] != config.batch:
            msg = f"model output shape {tuple(out.shape)} does not keep the batch dimension {config.batch}"
            raise ValueError(msg)
        self.in_layout = Layout(tuple(config.spec.sample_shape), config.spec.dtype)
        self.out_layout = Layout(tuple(out.shape[1:]), str(out.dtype).removeprefix("torch."))
        self.inp: Segment | None = None
        self.out: Segment | None = None
        self._allocate(config.batch)
        for _ in range(max(0, config.warmup - 1)):
            started = time.perf_counter()
            self._forward(example)
            self.warm_ms = (time.perf_counter() - started) * 1000.0  # the parent's hang deadline starts here

    def _use_backend(self, config: WorkerConfig) -> None:
        """Swap the module for its backend runner (converted once, from the cache after); failure is StartFailed."""
        from packrat_lab.child_env import backend_options
        from packrat_lab.workloads.backends.build import prepare_backend

        prepared = prepare_backend(
            self.model,
            self.workload.example_input(2),
            config.backend,
            threads=config.threads,
            options=backend_options(config.backend, config.threads, config.setting),
            sample_shape=tuple(config.spec.sample_shape),
            dtype=config.spec.dtype,
            cache_dir=config.cache_dir,
        )
        self.convert_s = prepared.convert_s
        self.model = prepared.run
        self.fixed_batch = prepared.fixed_batch
        if config.backend.backend in ("onnxruntime", "openvino"):
            gc.collect()  # the torch module is no longer referenced: its weights go

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        from packrat_lab.workloads.backends.base import first_tensor

        with torch.inference_mode():
            return first_tensor(self.model(x))

    def _allocate(self, capacity: int) -> None:
        """New segments for `capacity` rows (a new generation name), old ones unlinked."""
        self.close()
        self.generation += 1
        base = f"{self.config.prefix}w{self.config.worker_id}g{self.generation}"
        self.inp = Segment(base + "i", self.in_layout, capacity, create=True)
        self.out = Segment(base + "o", self.out_layout, capacity, create=True)

    def info(self) -> WorkerInfo:
        """What the parent needs to attach and account for this worker."""
        assert self.inp is not None and self.out is not None
        return WorkerInfo(os.getpid(), self.inp.describe(), self.out.describe(), self.batch, self.warm_ms)

    def run(self, rows: int) -> None:
        """Run the model on the first `rows` input rows, writing the output rows in place."""
        assert self.inp is not None and self.out is not None
        if not 0 < rows <= self.inp.capacity:
            msg = f"request of {rows} rows does not fit this worker's {self.inp.capacity}-row segment"
            raise ValueError(msg)
        # A backend compiled for the slice's shape runs the whole slice (rows past `rows` hold older
        # inputs, and each row's output depends on its own input only); others run just the rows.
        ran = self.batch if self.fixed_batch and rows < self.batch else rows
        y = self._forward(self.inp.tensor[:ran])
        self.out.tensor[:rows].copy_(y[:rows])

    def resize(self, batch: int) -> None:
        """Serve a new batch slice: grow segments if needed, warm once at the new size."""
        assert self.inp is not None
        self.batch = batch
        if batch > self.inp.capacity:
            self._allocate(batch)
        started = time.perf_counter()
        self._forward(self.workload.example_input(batch))
        self.warm_ms = (time.perf_counter() - started) * 1000.0

    def close(self) -> None:
        """Unlink this worker's segments (it created them, so it removes them)."""
        for seg in (self.inp, self.out):
            if seg is not None:
                seg.close(unlink=True)
        self.inp = self.out = None


def _exit_on_term(signum: int, frame: object) -> None:
    sys.exit(0)


def _parent_gone(config: WorkerConfig) -> bool:
    return os.getppid() != config.parent_pid


def worker_main(conn: Connection, config: WorkerConfig, direct: Connection | None = None) -> None:
    """Spawn entry: the profiled environment and affinity first, then torch, build, warm, serve until told."""
    from packrat_lab.child_env import ChildEnvironment

    signal.signal(signal.SIGTERM, _exit_on_term)  # terminate() still runs the cleanup below
    signal.signal(
        signal.SIGINT, signal.SIG_IGN
    )  # Ctrl-C belongs to the parent, which closes workers in order
    runner: _Runner | None = None
    try:
        # the same environment a profiling point of this (threads, cores, setting) ran with
        ChildEnvironment(
            config.threads, config.cores, config.setting, config.env, config.backend
        ).apply_in_child()
        runner = _Runner(config)
        # Collect once and freeze what import and warm-up left: later collections then skip
        # torch's many import-time objects instead of scanning them in the middle of a request.
        gc.collect()
        gc.freeze()
        conn.send_bytes(encode_message(Ready(runner.info())))
        _serve(conn, config, runner, None if direct is None else direct.fileno())
    except Exception as exc:  # noqa: BLE001 - report any startup failure instead of dying silently
        try:
            conn.send_bytes(encode_message(StartFailed(f"{type(exc).__name__}: {exc}")))
        except OSError:
            pass
    finally:
        if runner is not None:
            runner.close()
    # Skip interpreter teardown (seconds with torch loaded on a busy host): everything this
    # process owns (its segments) is already removed, so a plain exit is enough.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _serve(conn: Connection, config: WorkerConfig, runner: _Runner, direct_fd: int | None) -> None:
    """The request loop: one request at a time, parent death checked while idle."""

    def answer(run: Run, reply: Done | RunError) -> None:
        if run.direct and direct_fd is not None:
            os.write(direct_fd, encode_direct(reply))  # one record, one write: atomic on a pipe
        else:
            conn.send_bytes(encode_message(reply))

    idle_since = time.perf_counter()
    while True:
        # With SPIN_S > 0, poll the pipe without sleeping for that long after a request (saves a
        # scheduler wake-up when requests come back to back); then block, checking on the parent.
        if time.perf_counter() - idle_since < SPIN_S:
            if not conn.poll(0):
                continue
        elif not conn.poll(PARENT_POLL_S):
            if _parent_gone(config):
                return
            continue
        try:
            message = decode_message(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if isinstance(message, Stop):
            return
        if isinstance(message, Run):
            start = time.perf_counter()
            try:
                runner.run(message.rows)
            except Exception as exc:  # noqa: BLE001 - the request fails, the worker lives on
                answer(message, RunError(message.req_id, f"{type(exc).__name__}: {exc}"))
                continue
            ms = (time.perf_counter() - start) * 1000.0
            answer(message, Done(message.req_id, message.rows, ms))
            idle_since = time.perf_counter()
        elif isinstance(message, Resize):
            runner.resize(message.batch)
            conn.send_bytes(encode_message(Resized(runner.info())))
