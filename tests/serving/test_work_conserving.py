"""Work-conserving dispatch (issue 12): each instance takes its next slice as soon as it is free.

Batcher tests use fake lanes and a frozen clock; pool tests use the in-process fake workers.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest
import torch
from fake_workers import FakeWorld, fake_model
from proc_utils import wait_for

from packrat_lab import FailurePolicy, Pool
from packrat_lab.errors import WorkerFailedError
from packrat_lab.serving.admission import SlotLoad, predict_conserving_ms
from packrat_lab.serving.batcher import DynamicBatcher, Lane
from packrat_lab.serving.dispatcher import lane_capacity

POLICY = FailurePolicy(
    tick_s=0.01, backoff_s=0.01, max_backoff_s=0.05, drain_timeout_s=2.0, hang_timeout_s=30.0
)


class FakeLane:
    """A worker the test finishes by hand: records the batches sent to it."""

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.batches: list[torch.Tensor] = []
        self.futures: list[Future[torch.Tensor]] = []
        self.senders: list[str] = []  # the thread that sent each batch

    def send(self, batch: torch.Tensor, deadline: float | None) -> Future[torch.Tensor]:
        future: Future[torch.Tensor] = Future()
        self.batches.append(batch)
        self.futures.append(future)
        self.senders.append(threading.current_thread().name)
        return future

    def finish(self) -> None:
        """Answer the oldest open batch (output = input * 10)."""
        for batch, future in zip(self.batches, self.futures, strict=True):
            if not future.done():
                future.set_result(batch * 10)
                return

    @property
    def lane(self) -> Lane:
        return Lane(self.name, self.capacity, self.send)


def frozen_batcher(lanes: list[FakeLane], **kwargs: object) -> DynamicBatcher:
    """A work-conserving batcher whose clock never moves: nothing may wait for a delay to run out."""

    def whole_plan(batch: torch.Tensor, **_: object) -> Future[torch.Tensor]:
        future: Future[torch.Tensor] = Future()
        future.set_exception(WorkerFailedError("no worker serves"))
        return future

    return DynamicBatcher(
        whole_plan,
        lambda: sum(lane.capacity for lane in lanes),
        max_delay_s=0.005,
        lanes=lambda: [lane.lane for lane in lanes],
        clock=lambda: 100.0,
        **kwargs,  # type: ignore[arg-type]
    )


def sample(value: float) -> torch.Tensor:
    return torch.full((3,), value)


def test_a_lone_request_leaves_at_once_when_an_instance_is_free() -> None:
    lane = FakeLane("a", 4)
    batcher = frozen_batcher([lane])
    try:
        future = batcher.submit(sample(1.0))
        assert wait_for(lambda: len(lane.batches) == 1)  # the frozen clock never reaches the delay
        assert lane.batches[0].shape[0] == 1
        lane.finish()
        assert torch.equal(future.result(timeout=5), sample(10.0))
    finally:
        batcher.close()


def test_a_sample_that_finds_an_instance_free_is_sent_on_the_callers_thread() -> None:
    """The fast path: no wake-up of the batcher thread; queued samples still leave from it."""
    lane = FakeLane("a", 4)
    batcher = frozen_batcher([lane])
    try:
        first = batcher.submit(sample(1.0))
        assert lane.senders == [threading.current_thread().name]  # sent before submit returned
        queued = [batcher.submit(sample(float(v))) for v in (2.0, 3.0)]
        assert batcher.depth() == 2  # the instance is busy: these wait in the queue
        lane.finish()
        assert wait_for(lambda: len(lane.batches) == 2)
        assert lane.senders[1] == "packrat-batcher"
        lane.finish()
        assert [float(f.result(timeout=5)[0]) for f in [first, *queued]] == [10.0, 20.0, 30.0]
    finally:
        batcher.close()


def test_lone_requests_spread_over_the_free_instances() -> None:
    lanes = [FakeLane("a", 2), FakeLane("b", 2)]
    batcher = frozen_batcher(lanes)
    try:
        for value in range(4):  # one at a time, each answered before the next arrives
            future = batcher.submit(sample(float(value)))
            assert wait_for(lambda: any(not f.done() for lane in lanes for f in lane.futures))
            for lane in lanes:
                lane.finish()
            future.result(timeout=5)
        assert [len(lane.batches) for lane in lanes] == [2, 2]  # idle longest goes first: a, b, a, b
    finally:
        batcher.close()


def test_each_instance_takes_at_most_its_slice_and_one_batch_at_a_time() -> None:
    lanes = [FakeLane("a", 2), FakeLane("b", 3)]
    batcher = frozen_batcher(lanes)
    try:
        first = batcher.submit(sample(0.0))  # goes to a at once
        assert wait_for(lambda: len(lanes[0].batches) == 1)
        futures = [batcher.submit(sample(float(v))) for v in range(1, 9)]
        assert wait_for(lambda: len(lanes[1].batches) == 1)  # b was free: the next sample went at once
        assert lanes[1].batches[0].shape[0] == 1
        time.sleep(0.05)
        assert [len(lane.batches) for lane in lanes] == [1, 1]  # both busy: nothing more went out
        assert batcher.depth() == 7
        lanes[0].finish()  # a frees up: it takes its next slice (2) at once
        assert wait_for(lambda: len(lanes[0].batches) == 2)
        assert lanes[0].batches[1].shape[0] == 2
        lanes[1].finish()  # b frees up: its slice is 3
        assert wait_for(lambda: len(lanes[1].batches) == 2)
        assert lanes[1].batches[1].shape[0] == 3
        for _ in range(3):
            for lane in lanes:
                lane.finish()
            time.sleep(0.02)
        answers = [f.result(timeout=5) for f in [first, *futures]]
        assert [float(a[0]) for a in answers] == [10.0 * v for v in range(9)]  # every answer its own
    finally:
        batcher.close()


def test_with_no_serving_instance_requests_fail_with_the_reason_instead_of_waiting() -> None:
    batcher = frozen_batcher([])
    try:
        with pytest.raises(WorkerFailedError, match="no worker serves"):
            batcher.submit(sample(1.0)).result(timeout=5)
    finally:
        batcher.close()


def test_lane_capacity_scales_with_the_limit_but_never_beyond_the_slice() -> None:
    assert lane_capacity(4, 8, 8) == 4
    assert lane_capacity(4, 16, 8) == 4  # a worker's buffers hold b_k rows
    assert lane_capacity(4, 4, 8) == 2
    assert lane_capacity(1, 1, 8) == 1


# -- prediction ----------------------------------------------------------------------------------


def replay(waits: list[float], per_row_ms: float, capacities: list[int], ahead: int) -> float:
    """The queue drained step by step, slowly and obviously: what predict_conserving_ms must match."""
    free = list(waits)
    left = ahead + 1
    while True:
        k = min(range(len(free)), key=lambda i: (free[i], i))
        rows = min(capacities[k], left)
        free[k] += 1.0 + per_row_ms * rows
        left -= rows
        if left == 0:
            return free[k]


@pytest.mark.parametrize("ahead", [0, 1, 2, 5, 17, 40])
def test_conserving_prediction_follows_the_queue_draining_over_every_worker(ahead: int) -> None:
    waits, capacities = [3.0, 0.0], [2, 3]
    slots = [SlotLoad(c, w, lambda rows: 1.0 + 0.5 * rows) for c, w in zip(capacities, waits, strict=True)]
    predicted = predict_conserving_ms(slots, ahead=ahead, capacities=capacities)
    exact = replay(waits, 0.5, capacities, ahead)
    # exact on short queues; a long queue is fast-forwarded at the combined rate
    assert predicted == pytest.approx(exact, rel=0.0 if ahead <= 20 else 0.15)


def test_conserving_prediction_is_infinite_when_no_worker_serves() -> None:
    slots = [SlotLoad(2, float("inf"), lambda rows: 1.0)]
    assert predict_conserving_ms(slots, ahead=0, capacities=[2]) == float("inf")


# -- a pool on fake workers ----------------------------------------------------------------------


def fake_pool(world: FakeWorld, plan: str, **kwargs: object) -> Pool:
    return Pool("mlp", plan, channels=world.factory, announce=False, warmup=0, policy=POLICY, **kwargs)  # type: ignore[arg-type]


def row(value: float) -> torch.Tensor:
    return torch.full((1024,), value)


def test_lone_requests_run_on_every_instance_not_only_the_first() -> None:
    """Lockstep sends a lone request to instance 0 every time (the split of 1 over [2, 2])."""
    world = FakeWorld(run_s=0.005)
    with fake_pool(world, "2x1x2") as pool:
        for value in range(8):
            answer = pool.submit(row(float(value))).result(timeout=5)
            assert torch.equal(answer, fake_model(row(float(value))))
        served = [w["served"] for w in pool.stats()["workers"]]
    assert all(n >= 2 for n in served), served


def test_a_stalled_instance_does_not_hold_up_what_another_can_run() -> None:
    """With one worker stopped, the other answers the queue (lockstep would wait on the stopped one)."""
    world = FakeWorld(run_s=0.005)
    with fake_pool(world, "2x1x2") as pool:
        world.channels[0].pause()
        futures = [pool.submit(row(float(v))) for v in range(12)]
        # at most one slice (2 rows) is stuck on the stopped worker; the rest gets answered
        assert wait_for(lambda: sum(f.done() for f in futures) >= 10, timeout=10.0)
        world.channels[0].resume()
        for value, future in enumerate(futures):
            assert torch.equal(future.result(timeout=5), fake_model(row(float(value))))


def test_lockstep_stays_available_and_splits_like_the_plan() -> None:
    world = FakeWorld(run_s=0.0)
    with fake_pool(world, "2x1x2", dispatch="lockstep") as pool:
        futures = [pool.submit(row(float(v))) for v in range(4)]
        for value, future in enumerate(futures):
            assert torch.equal(future.result(timeout=5), fake_model(row(float(value))))
        assert pool.dispatch == "lockstep"
    with pytest.raises(ValueError, match=r"dispatch must be .*example: Pool"):
        fake_pool(world, "2x1x2", dispatch="greedy")


def test_requests_keep_their_answers_across_a_live_switch() -> None:
    world = FakeWorld(run_s=0.002)
    with fake_pool(world, "2x1x2") as pool:
        futures: list[Future[torch.Tensor]] = []
        stop = threading.Event()

        def load() -> None:
            value = 0.0
            while not stop.is_set():
                futures.append(pool.submit(row(value)))
                value += 1.0
                time.sleep(0.001)

        sender = threading.Thread(target=load)
        sender.start()
        try:
            pool.reconfigure("1x2x4")
            pool.reconfigure("2x1x1")
        finally:
            stop.set()
            sender.join()
        for value, future in enumerate(futures):
            assert torch.equal(future.result(timeout=10), fake_model(row(float(value))))


def test_aimd_grows_when_every_instance_fills_its_share() -> None:
    """Each instance takes only its share of AIMD's B, so 'full' must mean a full share, not rows ≥ B."""
    from packrat_lab.serving.aimd import AIMDBatchSize

    world = FakeWorld(run_s=0.002)
    aimd = AIMDBatchSize(100.0, start=2, max_batch=8)
    with fake_pool(world, "2x1x4", batching="aimd", aimd=aimd) as pool:
        futures = [pool.submit(row(float(v))) for v in range(400)]
        for value, future in enumerate(futures):
            assert torch.equal(future.result(timeout=10), fake_model(row(float(value))))
        assert aimd.batch == 8, (aimd.batch, aimd.increases, aimd.decreases)


def test_requests_flow_to_the_serving_worker_while_another_is_being_replaced() -> None:
    """A killed worker's replacement is starting (slowly): it gets no slice, the other answers everything."""
    world = FakeWorld(run_s=0.002)
    with fake_pool(world, "2x1x2") as pool:
        world.start_s = 3.0  # the replacement will not be ready during this test (about 0.1 s of work)
        world.channels[0].kill()
        assert wait_for(lambda: len(world.channels) == 3)  # the supervisor started a successor
        futures = [pool.submit(row(float(v))) for v in range(20)]
        assert wait_for(lambda: all(f.done() for f in futures), timeout=10.0)
        for value, future in enumerate(futures):
            assert torch.equal(future.result(), fake_model(row(float(value))))
        assert pool.stats()["workers"][0]["state"] == "starting"
        world.start_s = 0.0
