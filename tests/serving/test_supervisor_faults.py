"""The failure policy on the fake transport: degraded after repeated start failures, recovery, odd faults."""

from __future__ import annotations

import threading

import pytest
import torch
from fake_workers import FakeChannel, FakeWorld, fake_model
from proc_utils import wait_for

from packrat_lab import FailurePolicy, Pool, WorkerFailedError
from packrat_lab.serving.worker import WorkerConfig

POLICY = FailurePolicy(hang_timeout_s=0.2, tick_s=0.01, backoff_s=0.02, max_backoff_s=0.1, degraded_after=3)


def rows(n: int, start: float = 1.0) -> torch.Tensor:
    return torch.arange(start, start + n).repeat_interleave(1024).view(n, 1024)


def test_a_worker_that_keeps_failing_to_start_degrades_the_pool_and_the_rest_serve() -> None:
    world = FakeWorld()
    with Pool("mlp", "2x1x2", channels=world.factory, announce=False, warmup=0, policy=POLICY) as pool:
        world.abrupt_start_failures = 3
        world.alive()[0].kill()
        assert wait_for(lambda: pool.state == "degraded")
        x = rows(4)
        assert torch.equal(pool.infer(x), fake_model(x))  # the healthy worker takes the whole batch
        assert pool.stats()["worker_restarts"] >= 3
        assert wait_for(lambda: pool.state == "serving", 10)  # restarts go on at the capped backoff
        assert [w["state"] for w in pool.stats()["workers"]] == ["ready", "ready"]
        kinds = [e.kind for e in pool.events()]
        assert "worker-restart-scheduled" in kinds and kinds.count("worker-replaced") == 1


def test_a_send_that_raises_fails_only_its_piece_and_the_worker_serves_on() -> None:
    """Item 8: the reader thread died on any exception but OSError/ValueError in sending."""
    world = FakeWorld()
    with Pool("mlp", "1x1x4", channels=world.factory, announce=False, warmup=0, policy=POLICY) as pool:
        channel = world.alive()[0]
        real_send = channel.send_run
        calls = {"n": 0}

        def flaky(req_id: int, src: torch.Tensor, *, direct: bool = False) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("copy failed")
            real_send(req_id, src, direct=direct)

        channel.send_run = flaky  # type: ignore[method-assign]
        with pytest.raises(WorkerFailedError, match="could not send: RuntimeError: copy failed"):
            pool.infer(rows(2), timeout=5)
        x = rows(3, 10.0)
        assert torch.equal(pool.infer(x, timeout=5), fake_model(x))
        assert pool.stats()["worker_restarts"] == 0


def test_a_slow_replacement_start_does_not_hold_up_dispatch() -> None:
    """Item 8: a replacement process was started while holding the pool lock, so every dispatch waited."""
    world = FakeWorld()
    release = threading.Event()

    class SlowStart(FakeChannel):
        def start(self) -> None:
            release.wait(10)
            super().start()

    def factory(config: WorkerConfig) -> FakeChannel:
        if config.worker_id < 2:
            return world.factory(config)
        channel = SlowStart(world, config)
        world.channels.append(channel)
        return channel

    with Pool("mlp", "2x1x2", channels=factory, announce=False, warmup=0, policy=POLICY) as pool:
        world.alive()[0].kill()
        assert wait_for(lambda: pool.stats()["worker_restarts"] == 1)
        x = rows(1)
        done = threading.Event()
        result: dict[str, torch.Tensor] = {}

        def call() -> None:
            result["out"] = pool.infer(rows(2, 5.0), timeout=10)  # one row waits for the restarting slot
            done.set()

        thread = threading.Thread(target=call)
        thread.start()
        assert wait_for(lambda: world.alive()[0].pid is not None)
        assert pool.stats()["plan"] == "2x1x2"  # takes the dispatch lock: must not wait for the slow start
        release.set()
        thread.join(10)
        assert done.is_set() and torch.equal(result["out"], fake_model(rows(2, 5.0)))
        assert torch.equal(pool.infer(x), fake_model(x))


def test_a_dead_worker_is_logged_not_only_recorded(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 13: a worker's death showed only in the pool's event list; `serve` printed nothing."""
    world = FakeWorld()
    policy = POLICY
    with (
        caplog.at_level("INFO", logger="packrat_lab.pool"),
        Pool("mlp", "1x1x4", channels=world.factory, announce=False, warmup=0, policy=policy) as pool,
    ):
        world.alive()[0].kill()
        assert wait_for(lambda: pool.stats()["worker_restarts"] == 1 and pool.state == "serving")
        assert wait_for(lambda: any("worker-replaced" in r.message for r in caplog.records))
    died = [r for r in caplog.records if "worker-failed" in r.message]
    assert died and died[0].levelname == "WARNING" and "[1x1x4]" in died[0].message
