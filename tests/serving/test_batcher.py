"""Dynamic batcher with a fake dispatch function: batch formation, routing, closing."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest
import torch

from packrat_lab.errors import WorkerFailedError
from packrat_lab.serving.batcher import DynamicBatcher, should_flush


@pytest.mark.parametrize(
    ("queued", "oldest", "now", "expected"),
    [
        (0, None, 5.0, False),
        (3, 1.0, 1.001, False),
        (4, 1.0, 1.001, True),
        (9, 1.0, 1.0, True),
        (1, 1.0, 1.006, True),
        (1, 1.0, 1.004, False),
    ],
)
def test_should_flush(queued: int, oldest: float | None, now: float, expected: bool) -> None:
    assert should_flush(queued, oldest, now, max_batch=4, max_delay_s=0.005) is expected


class FakeDispatch:
    """Records batches; the test decides when each finishes (output = input * 10)."""

    def __init__(self) -> None:
        self.batches: list[torch.Tensor] = []
        self.futures: list[Future[torch.Tensor]] = []
        self.arrived = threading.Semaphore(0)

    def __call__(self, batch: torch.Tensor) -> Future[torch.Tensor]:
        future: Future[torch.Tensor] = Future()
        self.batches.append(batch)
        self.futures.append(future)
        self.arrived.release()
        return future

    def finish(self, k: int) -> None:
        self.futures[k].set_result(self.batches[k] * 10)


def test_forms_full_batches_and_routes_rows_back() -> None:
    dispatch = FakeDispatch()
    batcher = DynamicBatcher(dispatch, lambda: 4, max_delay_s=60.0)  # only a full batch can leave
    futures = [batcher.submit(torch.full((3,), float(i))) for i in range(8)]
    assert dispatch.arrived.acquire(timeout=5)
    assert dispatch.batches[0].shape == (4, 3)
    assert batcher.depth() == 4  # the second batch waits: one batch in flight at a time
    dispatch.finish(0)
    assert dispatch.arrived.acquire(timeout=5)
    dispatch.finish(1)
    for i, future in enumerate(futures):
        assert torch.equal(future.result(timeout=5), torch.full((3,), float(i) * 10))
    assert batcher.histogram == {4: 2}
    batcher.close()


def test_a_lone_request_leaves_after_the_delay() -> None:
    dispatch = FakeDispatch()
    batcher = DynamicBatcher(dispatch, lambda: 64, max_delay_s=0.01)
    future = batcher.submit(torch.ones(2))
    assert dispatch.arrived.acquire(timeout=5)
    assert dispatch.batches[0].shape == (1, 2)
    dispatch.finish(0)
    assert torch.equal(future.result(timeout=5), torch.full((2,), 10.0))
    batcher.close()


def test_max_batch_is_read_live() -> None:
    dispatch = FakeDispatch()
    limit = [2]
    batcher = DynamicBatcher(dispatch, lambda: limit[0], max_delay_s=60.0)
    for i in range(2):
        batcher.submit(torch.tensor([float(i)]))
    assert dispatch.arrived.acquire(timeout=5)
    limit[0] = 3
    futures = [batcher.submit(torch.tensor([float(i)])) for i in range(3)]
    dispatch.finish(0)
    assert dispatch.arrived.acquire(timeout=5)
    assert dispatch.batches[1].shape == (3, 1)
    dispatch.finish(1)
    assert [f.result(timeout=5).item() for f in futures] == [0.0, 10.0, 20.0]
    batcher.close()


def test_a_failed_batch_fails_each_of_its_requests() -> None:
    dispatch = FakeDispatch()
    batcher = DynamicBatcher(dispatch, lambda: 2, max_delay_s=60.0)
    first = [batcher.submit(torch.zeros(1)) for _ in range(2)]
    assert dispatch.arrived.acquire(timeout=5)
    dispatch.futures[0].set_exception(WorkerFailedError("worker 3 died"))
    for future in first:
        with pytest.raises(WorkerFailedError, match="worker 3"):
            future.result(timeout=5)
    batcher.close()


def test_close_sends_what_is_queued_without_waiting_for_the_delay() -> None:
    dispatch = FakeDispatch()
    batcher = DynamicBatcher(dispatch, lambda: 2, max_delay_s=60.0)
    futures = [batcher.submit(torch.full((1,), float(i))) for i in range(3)]
    assert dispatch.arrived.acquire(timeout=5)
    closer = threading.Thread(target=batcher.close)
    closer.start()
    dispatch.finish(0)
    assert dispatch.arrived.acquire(timeout=5)  # the lone third request leaves now, not in 60 s
    dispatch.finish(1)
    closer.join(10)
    assert not closer.is_alive()
    assert [f.result(timeout=5).item() for f in futures] == [0.0, 10.0, 20.0]
    with pytest.raises(WorkerFailedError, match="closed"):
        batcher.submit(torch.zeros(1)).result(timeout=5)


def test_close_gives_up_after_its_timeout_and_fails_the_rest() -> None:
    dispatch = FakeDispatch()
    batcher = DynamicBatcher(dispatch, lambda: 1, max_delay_s=0.0)
    stuck = batcher.submit(torch.zeros(1))
    assert dispatch.arrived.acquire(timeout=5)
    waiting = batcher.submit(torch.zeros(1))  # behind a batch that never finishes
    batcher.close(timeout_s=0.2)
    with pytest.raises(WorkerFailedError, match="closed before"):
        waiting.result(timeout=5)
    assert not stuck.done()


def test_a_raising_dispatch_fails_its_batch_only() -> None:
    calls = []

    def dispatch(batch: torch.Tensor) -> Future[torch.Tensor]:
        calls.append(batch.shape[0])
        if len(calls) == 1:
            msg = "bad batch"
            raise ValueError(msg)
        future: Future[torch.Tensor] = Future()
        future.set_result(batch + 1)
        return future

    batcher = DynamicBatcher(dispatch, lambda: 1, max_delay_s=0.0)
    bad = batcher.submit(torch.zeros(1))
    with pytest.raises(ValueError, match="bad batch"):
        bad.result(timeout=5)
    good = batcher.submit(torch.zeros(1))
    assert good.result(timeout=5).item() == 1.0
    batcher.close()


def test_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="max_queue_delay_ms"):
        DynamicBatcher(FakeDispatch(), lambda: 1, max_delay_s=-1)
