"""Regression tests for the serving core's failure policy, with real worker processes (issue 8, items 1–8)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable

import pytest
import torch
from proc_utils import alive, wait_for

from packrat_lab import FailurePolicy, Pool, PoolClosedError, RequestTimeoutError, WorkerFailedError
from packrat_lab.serving.transport import leftover_segments
from packrat_lab.workloads.registry import get_workload

pytestmark = pytest.mark.slow

MLP = get_workload("mlp")
CRASHY = get_workload("crashy_model:build", example_input=torch.ones(1, 8))


@pytest.mark.parametrize("dispatch", ["work-conserving", "lockstep"])
def test_a_cancelled_submit_does_not_wedge_the_batcher(dispatch: str) -> None:
    """Item 1: fut.cancel() and an asyncio.wait_for timeout, then later submits are still answered."""
    x = MLP.example_input(7, seed=1)
    with torch.inference_mode():
        expected = MLP.build()(x)
    with Pool("mlp", "1x1x4", warmup=1, announce=False, dispatch=dispatch) as pool:  # type: ignore[arg-type]
        pid = pool.stats()["workers"][0]["pid"]
        os.kill(pid, signal.SIGSTOP)  # the worker holds the next batch: what follows stays queued
        try:
            blocker = pool.submit(x[0])
            assert wait_for(lambda: pool.stats()["workers"][0]["queued"] > 0, timeout=10)
            doomed = pool.submit(x[1])
            assert doomed.cancel()  # still queued in the batcher

            async def impatient() -> None:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.wrap_future(pool.submit(x[2])), timeout=0.01)

            asyncio.run(impatient())
        finally:
            os.kill(pid, signal.SIGCONT)
        later = [pool.submit(row) for row in x[3:]]
        out = torch.stack([f.result(timeout=30) for f in [blocker, *later]])
        torch.testing.assert_close(out, torch.cat([expected[:1], expected[3:]]), rtol=1e-5, atol=1e-5)
        stats = pool.stats()
        assert stats["cancelled"] >= 2 and stats["lost"] == 0


def test_a_request_that_kills_its_worker_fails_alone_after_one_rerun() -> None:
    """Item 2: the poison request is rerun once, then fails with a named error; the good one behind it is answered."""
    good = torch.ones(3, 8)
    poison = torch.ones(2, 8)
    poison[1, 0] = -1000.0
    with Pool(CRASHY, "1x1x4", warmup=1, announce=False) as pool:
        bad = threading.Thread(target=lambda: results.update(bad=_outcome(pool.infer, poison)))
        results: dict[str, object] = {}
        bad.start()
        time.sleep(0.05)
        answer = pool.infer(good, timeout=120)
        bad.join(120)
        torch.testing.assert_close(answer, good * 2 + 1)
        assert isinstance(results["bad"], WorkerFailedError)
        assert "died 2 times" in str(results["bad"]) and "not rerun again" in str(results["bad"])
        kinds = [e.kind for e in pool.events()]
        assert kinds.count("worker-failed") == 2 and kinds.count("piece-failed") == 1
        assert wait_for(lambda: pool.state == "serving", 60)
        torch.testing.assert_close(pool.infer(good), good * 2 + 1)  # still serving


def _outcome(call: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> object:
    try:
        return call(x)
    except Exception as exc:  # noqa: BLE001 - returned for the assertion
        return exc


def test_a_replacement_killed_while_starting_is_replaced_again() -> None:
    """Item 3: kill a worker, then its replacement while it starts: the pool comes back by itself."""
    policy = FailurePolicy(backoff_s=0.2)
    with Pool("mlp", "2x1x4", warmup=1, announce=False, policy=policy) as pool:
        first = pool.stats()["workers"][0]["pid"]
        os.kill(first, signal.SIGKILL)
        assert wait_for(lambda: pool.stats()["workers"][0]["pid"] not in (first, None), 30)
        second = pool.stats()["workers"][0]["pid"]
        assert pool.stats()["workers"][0]["state"] == "starting"
        os.kill(second, signal.SIGKILL)
        assert wait_for(lambda: pool.stats()["workers"][0]["state"] == "ready", 90), pool.events()[-5:]
        x = MLP.example_input(8, seed=3)
        with torch.inference_mode():
            torch.testing.assert_close(pool.infer(x, timeout=60), MLP.build()(x), rtol=1e-5, atol=1e-5)
        assert pool.state == "serving" and pool.stats()["worker_restarts"] == 2


def test_a_reused_worker_that_dies_during_a_switch_is_replaced_in_the_new_plan() -> None:
    """Item 4: the kept worker dies while the new plan's passive worker warms; the new plan still serves."""
    with Pool("mlp", "1x1x4", warmup=1, announce=False) as pool:
        kept = pool.stats()["workers"][0]["pid"]
        switch = pool.reconfigure("2x1x2", wait=False)  # keeps the core-0 worker, starts one on core 1
        os.kill(kept, signal.SIGKILL)
        switch.result(timeout=120)
        x = MLP.example_input(8, seed=4)
        with torch.inference_mode():
            torch.testing.assert_close(pool.infer(x, timeout=60), MLP.build()(x), rtol=1e-5, atol=1e-5)
        workers = pool.stats()["workers"]
        assert pool.plan.text == "2x1x2" and kept not in [w["pid"] for w in workers]
        assert wait_for(lambda: [w["state"] for w in pool.stats()["workers"]] == ["ready", "ready"], 60)


def test_close_during_a_background_switch_leaves_nothing_and_says_so() -> None:
    """Item 5: close() racing reconfigure(wait=False): the switch fails with PoolClosedError, nothing is left."""
    pool = Pool("mlp", "1x1x2", warmup=1, announce=False)
    pids = [w["pid"] for w in pool.stats()["workers"]]
    switch = pool.reconfigure("1x2x4", wait=False)  # a new 2-thread worker: takes a while to start
    pool.close()
    with pytest.raises(PoolClosedError):
        switch.result(timeout=5)
    assert pool.state == "closed"
    assert leftover_segments(pool._prefix) == []
    started = [e.detail.get("pid") for e in pool.events() if e.kind == "worker-failed"]
    assert all(not alive(pid) for pid in pids + [p for p in started if p])
    assert not [t.name for t in threading.enumerate() if t.name.startswith("packrat-supervisor")]
    with pytest.raises(PoolClosedError):
        pool.reconfigure("1x1x2")


def test_a_stopped_worker_is_killed_as_hung_and_its_batch_rerun() -> None:
    """Item 7: SIGSTOP a worker: past its deadline it is killed, replaced, and the request still answered."""
    policy = FailurePolicy(hang_timeout_s=1.0)
    x = MLP.example_input(8, seed=7)
    with Pool("mlp", "2x1x4", warmup=1, announce=False, policy=policy) as pool:
        victim = pool.stats()["workers"][0]["pid"]
        os.kill(victim, signal.SIGSTOP)
        try:
            out = pool.infer(x, timeout=90)
        finally:
            if alive(victim):
                os.kill(victim, signal.SIGCONT)
        with torch.inference_mode():
            torch.testing.assert_close(out, MLP.build()(x), rtol=1e-5, atol=1e-5)
        assert pool.stats()["hung_workers"] == 1
        hung = next(e for e in pool.events() if e.kind == "worker-hung")
        assert hung.detail["pid"] == victim and "within 1 s" in hung.detail["why"]


def test_infer_timeout_withdraws_the_batch() -> None:
    """`infer(timeout=)` raises RequestTimeoutError and the pool serves on."""
    policy = FailurePolicy(hang_timeout_s=30.0)
    with Pool("mlp", "1x1x4", warmup=1, announce=False, policy=policy) as pool:
        victim = pool.stats()["workers"][0]["pid"]
        os.kill(victim, signal.SIGSTOP)
        try:
            with pytest.raises(RequestTimeoutError, match="within 0.3 s"):
                pool.infer(MLP.example_input(4), timeout=0.3)
        finally:
            os.kill(victim, signal.SIGCONT)
        x = MLP.example_input(4, seed=2)
        with torch.inference_mode():
            torch.testing.assert_close(pool.infer(x, timeout=60), MLP.build()(x), rtol=1e-5, atol=1e-5)
        assert pool.stats()["failed"] == 1


def test_plans_with_unknown_settings_or_absurd_batches_are_refused() -> None:
    """Item 8: '@nosuch' / '@PASSIVE' and huge batches fail with one-line errors before any worker starts."""
    with pytest.raises(
        ValueError, match=r"unknown runtime setting .nosuch. in plan .*valid: default, (.*, )?passive"
    ):
        Pool("mlp", "1x1x4@nosuch", announce=False)
    with pytest.raises(ValueError, match="unknown runtime setting 'PASSIVE'"):
        Pool("mlp", "1x1x4@PASSIVE", announce=False)
    with pytest.raises(ValueError, match="above 65536"):
        Pool("mlp", "1x1x1000000000", announce=False)
    with pytest.raises(ValueError, match="above this pool's bound 4096"):
        Pool("mlp", "1x1x10000", announce=False)
    with Pool("mlp", "1x1x4", warmup=1, announce=False, max_instance_batch=8) as pool:
        with pytest.raises(ValueError, match="above this pool's bound 8"):
            pool.reconfigure("1x1x16")
        assert pool.plan.text == "1x1x4" and pool.state == "serving"
