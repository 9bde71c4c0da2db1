"""Shared-memory segments: round trip through views, names by prefix, cleanup."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

import pytest
import torch

from packrat_lab.serving.messages import Done, Ready, Resize, Run, RunError, StartFailed, Stop, WorkerInfo
from packrat_lab.serving.transport import (
    Layout,
    Segment,
    decode_message,
    encode_message,
    leftover_segments,
    new_prefix,
    remove_segments,
)


@pytest.fixture
def prefix() -> Iterator[str]:
    value = new_prefix()
    yield value
    remove_segments(value)


def test_attach_sees_what_the_creator_wrote(prefix: str) -> None:
    owner = Segment(prefix + "a", Layout((3, 2), "float32"), capacity=4, create=True)
    assert owner.tensor.shape == (4, 3, 2)
    owner.tensor[1] = torch.arange(6, dtype=torch.float32).view(3, 2)
    other = Segment.attach(owner.describe())
    assert torch.equal(other.tensor[1], owner.tensor[1])
    other.tensor[2].fill_(7.0)  # writes go both ways: it is one block of memory
    assert float(owner.tensor[2].sum()) == 42.0
    assert leftover_segments(prefix) == [prefix + "a"]
    other.close()
    owner.close(unlink=True)
    owner.close(unlink=True)  # idempotent
    assert leftover_segments(prefix) == []


def test_int64_rows(prefix: str) -> None:
    seg = Segment(prefix + "i", Layout((5,), "int64"), capacity=2, create=True)
    seg.tensor.copy_(torch.arange(10).view(2, 5))
    assert seg.tensor.dtype == torch.int64 and int(seg.tensor.sum()) == 45
    seg.close(unlink=True)


def _child_fills(info: dict[str, object]) -> None:
    seg = Segment.attach(info)
    seg.tensor.fill_(3.0)
    seg.close()


@pytest.mark.slow
def test_a_spawned_process_writes_into_the_segment(prefix: str) -> None:
    seg = Segment(prefix + "s", Layout((8,), "float32"), capacity=2, create=True)
    process = multiprocessing.get_context("spawn").Process(target=_child_fills, args=(seg.describe(),))
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert float(seg.tensor.sum()) == 48.0
    seg.close(unlink=True)


def test_remove_segments_by_prefix(prefix: str) -> None:
    segs = [Segment(f"{prefix}{k}", Layout((1,), "float32"), 1, create=True) for k in range(3)]
    for seg in segs:
        seg.close()
    assert len(leftover_segments(prefix)) == 3
    assert sorted(remove_segments(prefix)) == [f"{prefix}{k}" for k in range(3)]
    assert leftover_segments(prefix) == []


def test_prefixes_differ() -> None:
    assert new_prefix() != new_prefix()


@pytest.mark.parametrize(
    "message",
    [
        Run(7, 32),
        Done(2**40, 1, 0.25),
        Stop(),
        Resize(16),
        RunError(3, "ValueError: bad rows"),
        Ready(WorkerInfo(1, {"name": "x"}, {"name": "y"}, 4, 1.5)),
        StartFailed("ImportError: no module"),
    ],
)
def test_control_messages_round_trip(message: tuple[object, ...]) -> None:
    data = encode_message(message)
    decoded = decode_message(data)
    assert decoded == message and type(decoded) is type(message)
    if isinstance(message, (Run, Done)):  # the per-request ones are packed, not pickled
        assert data[0] < 0x80


def test_closing_a_segment_whose_view_is_still_alive_leaves_no_exit_time_error(prefix: str) -> None:
    """A view held elsewhere used to make SharedMemory.__del__ print 'Exception ignored ... BufferError'."""
    import subprocess
    import sys

    code = f"""
from packrat_lab.serving.transport import Layout, Segment
seg = Segment({prefix + "v"!r}, Layout((4,), "float32"), capacity=2, create=True)
view = seg.tensor[:1]
seg.close(unlink=True)
print(float(view.sum()))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "0.0"
    assert "BufferError" not in done.stderr and "Exception ignored" not in done.stderr


def test_a_direct_record_is_one_pipe_write_even_for_a_long_error() -> None:
    """Direct answers must fit one atomic pipe write; a RunError's text is cut, a Done is a fixed struct."""
    from packrat_lab.serving.transport import DIRECT_RECORD_MAX, encode_direct

    long = RunError(7, "ValueError: " + "é" * 10_000)
    data = encode_direct(long)
    assert len(data) <= DIRECT_RECORD_MAX
    back = decode_message(data)
    assert isinstance(back, RunError) and back.req_id == 7 and back.message.startswith("ValueError: éé")
    assert decode_message(encode_direct(Done(3, 4, 1.5))) == Done(3, 4, 1.5)
    assert decode_message(encode_message(Run(5, 2, True))) == Run(5, 2, True)
    assert decode_message(encode_message(Run(5, 2))) == Run(5, 2, False)
