"""Shared-memory transport: tensors cross processes as rows in named segments, not pickles.

Each worker owns an input and an output segment sized for `capacity` rows. The parent writes
request rows straight into the input segment through a tensor view, sends a tiny control message
over a Pipe, and copies the result rows out of the output segment. Segment names carry the pool's
prefix so leftovers can be found (and removed) by prefix. This module imports torch only inside
functions, so the worker entry module stays torch-free until the runtime environment is set.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import secrets
import select
import struct
from dataclasses import dataclass
from math import prod
from multiprocessing import shared_memory
from typing import TYPE_CHECKING, Any

from packrat_lab.serving.messages import Done, Run, RunError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DIRECT_RECORD_MAX",
    "SHM_DIR",
    "Layout",
    "Segment",
    "decode_message",
    "encode_direct",
    "encode_message",
    "leftover_segments",
    "new_prefix",
    "remove_segments",
]

SHM_DIR = "/dev/shm"
_ITEMSIZE = {
    "float32": 4,
    "float64": 8,
    "float16": 2,
    "bfloat16": 2,
    "int64": 8,
    "int32": 4,
    "uint8": 1,
    "bool": 1,
}


# Control messages: the per-request ones (Run, Done) are fixed-size structs whose first byte is a
# tag below 0x80; everything else (rare: Ready, Resize, Stop, RunError, ...) is a pickle, which
# always starts with the PROTO opcode 0x80. One pipe carries both; the first byte tells them apart.
_RUN = struct.Struct("<Bqq")  # tag, request id, rows
_DONE = struct.Struct("<Bqqd")  # tag, request id, rows, model ms
_RUN_TAG, _DONE_TAG, _RUN_DIRECT_TAG = 1, 2, 3
# A direct answer is one write of at most PIPE_BUF bytes (4096 on Linux, 512 on macOS): atomic on a
# pipe, so one read takes it whole and an interrupted read takes nothing.
DIRECT_RECORD_MAX = select.PIPE_BUF
_ERROR_BYTES = DIRECT_RECORD_MAX - 128  # a RunError's text is cut to this (UTF-8): it stays one record


def encode_message(message: tuple[Any, ...]) -> bytes:
    """Bytes for one control message (hot ones packed, so a request costs no pickling)."""
    if isinstance(message, Run):
        return _RUN.pack(_RUN_DIRECT_TAG if message.direct else _RUN_TAG, message.req_id, message.rows)
    if isinstance(message, Done):
        return _DONE.pack(_DONE_TAG, message.req_id, message.rows, message.run_ms)
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def decode_message(data: bytes) -> tuple[Any, ...]:
    """Inverse of encode_message."""
    tag = data[0]
    if tag in (_RUN_TAG, _RUN_DIRECT_TAG):
        _, req_id, rows = _RUN.unpack(data)
        return Run(req_id, rows, tag == _RUN_DIRECT_TAG)
    if tag == _DONE_TAG:
        _, req_id, rows, ms = _DONE.unpack(data)
        return Done(req_id, rows, ms)
    message: tuple[Any, ...] = pickle.loads(data)
    return message


def encode_direct(reply: Done | RunError) -> bytes:
    """One direct-pipe record (≤ DIRECT_RECORD_MAX bytes): a Done, or a RunError with its text cut short."""
    if isinstance(reply, RunError):
        text = reply.message.encode("utf-8")
        if len(text) > _ERROR_BYTES:
            reply = RunError(reply.req_id, text[:_ERROR_BYTES].decode("utf-8", "ignore") + "...")
    data = encode_message(reply)
    assert len(data) <= DIRECT_RECORD_MAX, f"direct record of {len(data)} bytes"
    return data


def new_prefix() -> str:
    """A short per-pool prefix for segment names (POSIX names stay short for macOS's 31 chars)."""
    return f"prl{secrets.token_hex(4)}_"


@dataclass(frozen=True)
class Layout:
    """Shape of one row and its dtype name; `nbytes(rows)` sizes a segment."""

    sample_shape: tuple[int, ...]
    dtype: str

    def nbytes(self, rows: int) -> int:
        """Bytes needed for `rows` rows (at least 1 so empty outputs still map)."""
        return max(1, rows * prod(self.sample_shape) * _ITEMSIZE[self.dtype])


class Segment:
    """One named shared-memory block seen as a (capacity, *sample_shape) tensor."""

    def __init__(self, name: str, layout: Layout, capacity: int, *, create: bool) -> None:
        self.name = name
        self.layout = layout
        self.capacity = capacity
        self.owner = create
        self._shm: shared_memory.SharedMemory | None = shared_memory.SharedMemory(
            name=name, create=create, size=layout.nbytes(capacity) if create else 0
        )
        self._tensor: torch.Tensor | None = None

    @property
    def tensor(self) -> torch.Tensor:
        """A zero-copy tensor view of the whole block (created on first use)."""
        if self._tensor is None:
            import numpy as np
            import torch

            assert self._shm is not None, "segment already closed"
            buf = self._shm.buf
            assert buf is not None
            count = self.capacity * prod(self.layout.sample_shape)
            dtype = getattr(torch, self.layout.dtype)
            # first use may come from a caller in inference mode: the view must stay a normal tensor
            with torch.inference_mode(False):
                if self.layout.dtype == "bfloat16":  # numpy has no bfloat16: view raw bytes
                    raw = np.frombuffer(buf, dtype=np.uint16, count=count)
                    tensor = torch.from_numpy(raw).view(dtype)
                else:
                    raw = np.frombuffer(buf, dtype=np.dtype(self.layout.dtype), count=count)
                    tensor = torch.from_numpy(raw)
                self._tensor = tensor.view(self.capacity, *self.layout.sample_shape)
        return self._tensor

    def close(self, unlink: bool = False) -> None:
        """Drop the mapping (and the name when `unlink`); safe to call twice."""
        self._tensor = None
        shm, self._shm = self._shm, None
        if shm is None:
            return
        try:
            shm.close()
        except BufferError:  # a view is still alive elsewhere: the mapping goes when it does
            _forget_mapping(shm)
        if unlink:
            unlink_name(self.name)

    def describe(self) -> dict[str, object]:
        """What the other side needs to attach: name, layout, capacity."""
        return {
            "name": self.name,
            "shape": list(self.layout.sample_shape),
            "dtype": self.layout.dtype,
            "capacity": self.capacity,
        }

    @classmethod
    def attach(cls, info: dict[str, object]) -> Segment:
        """Open a segment the other process created (inverse of describe)."""
        layout = Layout(tuple(int(d) for d in info["shape"]), str(info["dtype"]))  # type: ignore[attr-defined]
        # On Python < 3.13 attaching registers the name with the resource tracker again; spawned
        # workers share the parent's tracker, so that is the same entry and needs no undoing.
        return cls(str(info["name"]), layout, int(info["capacity"]), create=False)  # type: ignore[call-overload]


def _forget_mapping(shm: shared_memory.SharedMemory) -> None:
    """Drop our handles on a mapping a live view still exports, so SharedMemory.__del__ (at exit or
    collection) does not try, and fail, to close it again ("Exception ignored ... BufferError")."""
    shm._buf = None  # type: ignore[attr-defined]
    shm._mmap = None  # type: ignore[attr-defined]
    fd = getattr(shm, "_fd", -1)
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
        shm._fd = -1  # type: ignore[attr-defined]


def unlink_name(name: str) -> None:
    """Remove a segment by name, ignoring one that is already gone."""
    try:
        shm = shared_memory.SharedMemory(name=name, create=False)
    except FileNotFoundError:
        return
    with contextlib.suppress(BufferError):
        shm.close()
    with contextlib.suppress(FileNotFoundError):
        shm.unlink()  # also unregisters it from the resource tracker


def leftover_segments(prefix: str) -> list[str]:
    """Names of segments in /dev/shm that start with `prefix` (what a crash would leave)."""
    try:
        return sorted(n for n in os.listdir(SHM_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def remove_segments(prefix: str) -> list[str]:
    """Unlink every segment with this prefix; returns the names removed."""
    names = leftover_segments(prefix)
    for name in names:
        unlink_name(name)
    return names
