"""Typed wire messages between the pool and a worker (torch-free: the worker imports this first).

parent → worker: Run | Resize | Stop
worker → parent: Ready | Done | RunError | Resized | StartFailed
A Run marked `direct` is answered (Done or RunError) on the worker's direct pipe instead, which
the caller that sent it reads itself (see `handle.py`). The hot pair (Run, Done) is packed as fixed-size structs by `transport.encode_message`; the rest
are pickled. `Reply` is what a `WorkerChannel.recv()` returns.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Union

__all__ = [
    "Done",
    "Ready",
    "Reply",
    "Resize",
    "Resized",
    "Run",
    "RunError",
    "StartFailed",
    "Stop",
    "WorkerInfo",
]


class WorkerInfo(NamedTuple):
    """What a worker tells the parent when ready or resized: its segments and warm batch time."""

    pid: int
    input: dict[str, Any]
    output: dict[str, Any]
    batch: int
    warm_ms: float


class Run(NamedTuple):
    """Run the model on the first `rows` rows of the input segment (`direct`: answer on the direct pipe)."""

    req_id: int
    rows: int
    direct: bool = False


class Resize(NamedTuple):
    """Serve a new batch slice (grow segments if needed, warm once)."""

    batch: int


class Stop(NamedTuple):
    """Finish nothing more: exit after this (everything sent before it has been answered)."""


class Ready(NamedTuple):
    """Loaded and warm; attach to these segments."""

    info: WorkerInfo


class Done(NamedTuple):
    """Output rows are in the output segment; `run_ms` is the model's own time."""

    req_id: int
    rows: int
    run_ms: float


class RunError(NamedTuple):
    """The model raised on this request; the worker lives on."""

    req_id: int
    message: str


class Resized(NamedTuple):
    """The resize is done; the segments may be new."""

    info: WorkerInfo


class StartFailed(NamedTuple):
    """The worker could not load or warm its model (it exits next): a deterministic failure."""

    message: str


Reply = Union[Ready, Done, RunError, Resized, StartFailed]  # noqa: UP007 - a runtime alias on 3.10
