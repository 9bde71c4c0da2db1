"""Latency objectives with real worker processes (issue 10): refusals, drops counted in the worker, the cache."""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from packrat_lab import Pool, Rejected
from packrat_lab.errors import DeadlineDropped
from packrat_lab.workloads.registry import get_workload

pytestmark = pytest.mark.slow

COUNTING = get_workload("counting_model:build", example_input=torch.ones(1, 8))
MLP = get_workload("mlp")


def ran(log: Path) -> Counter[float]:
    """How many times the worker's model ran each row (by its first value)."""
    if not log.exists():
        return Counter()
    return Counter(float(line) for line in log.read_text().split())


def row(uid: float) -> torch.Tensor:
    return torch.full((8,), uid)


@pytest.fixture
def run_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "runs.log"
    monkeypatch.setenv("PACKRAT_TEST_RUN_LOG", str(log))
    return log


def test_an_overloaded_pool_refuses_and_never_runs_refused_or_dropped_requests(run_log: Path) -> None:
    with Pool(COUNTING, "1x1x1", warmup=1, announce=False, slo_ms=100.0, max_queue_delay_ms=0.0) as pool:
        for k in range(3):  # learn the 20 ms (plus transport) per call
            pool.infer(row(float(k + 1))[None])
        assert 15.0 < pool.predict_ms(1) < math.inf
        futures = [pool.submit(row(1000.0 + k)) for k in range(30)]
        refused = [k for k, f in enumerate(futures) if f.done() and isinstance(f.exception(), Rejected)]
        outcomes = {}
        for k, f in enumerate(futures):
            exc = f.exception(30)
            outcomes[k] = "ok" if exc is None else type(exc).__name__
            if exc is None:
                assert torch.equal(f.result(), row(1000.0 + k) * 2 + 1)
        stats = pool.stats()
    runs = ran(run_log)
    assert refused, "30 requests of 20 ms against a 100 ms objective on one worker: most must be refused"
    never = [k for k, o in outcomes.items() if o in ("Rejected", "DeadlineDropped")]
    assert all(runs[1000.0 + k] == 0 for k in never)
    assert all(runs[1000.0 + k] == 1 for k, o in outcomes.items() if o == "ok")
    assert stats["rejected"] + stats["dropped"] == len(never) and stats["lost"] == 0
    assert stats["served"] == 3 + sum(1 for o in outcomes.values() if o == "ok")


def test_a_dropped_request_never_reaches_a_real_worker(run_log: Path) -> None:
    with Pool(COUNTING, "1x1x1", warmup=1, announce=False, max_queue_delay_ms=0.0) as pool:
        for k in range(3):  # learn the 20 ms per call: admission then lets the requests below in
            pool.infer(row(float(k + 100))[None])
        pid = pool.stats()["workers"][0]["pid"]
        os.kill(pid, signal.SIGSTOP)  # the worker holds the next batch and answers nothing
        try:
            blocker = pool.submit(row(2.0))
            time.sleep(0.05)
            doomed = [pool.submit(row(10.0 + k), deadline_ms=300.0) for k in range(3)]
            time.sleep(0.45)  # their deadlines pass while they wait behind the stopped worker
        finally:
            os.kill(pid, signal.SIGCONT)
        assert torch.equal(blocker.result(10), row(2.0) * 2 + 1)
        for f in doomed:
            assert isinstance(f.exception(10), DeadlineDropped)
        served_before = pool.stats()["workers"][0]["served"]
        os.kill(pid, signal.SIGSTOP)
        try:
            outcome: list[BaseException] = []
            blocker2 = threading.Thread(target=pool.infer, args=(row(3.0)[None],))
            blocker2.start()
            time.sleep(0.05)

            def late() -> None:
                try:
                    pool.infer(row(20.0)[None], deadline_ms=300.0)
                except DeadlineDropped as exc:
                    outcome.append(exc)

            caller = threading.Thread(target=late)
            caller.start()
            time.sleep(0.45)
        finally:
            os.kill(pid, signal.SIGCONT)
        caller.join(10)
        blocker2.join(10)
        assert len(outcome) == 1
        stats = pool.stats()
    runs = ran(run_log)
    assert [runs[10.0 + k] for k in range(3)] == [0, 0, 0] and runs[20.0] == 0
    assert runs[2.0] == 1 and runs[3.0] == 1
    assert stats["workers"][0]["served"] == served_before + 1  # only the blocker of the second round ran
    assert stats["dropped"] == 4 and stats["lost"] == 0


def test_a_cache_hit_equals_the_models_answer_without_running_it() -> None:
    x = MLP.example_input(3, seed=7)
    with torch.inference_mode():
        expected = MLP.build()(x)
    with Pool("mlp", "1x1x2", warmup=1, announce=False, cache_size=16) as pool:
        first = [pool.submit(r).result(30) for r in x]
        served = pool.stats()["workers"][0]["served"]
        again = pool.submit(x[1].clone()).result(30)
        batch = pool.infer(x.clone())
        stats = pool.stats()
    torch.testing.assert_close(torch.stack(first), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(again, first[1])
    assert torch.equal(batch, torch.stack(first))
    assert stats["workers"][0]["served"] == served  # neither the repeat nor the batch ran
    assert stats["cache_hits"] == 4 and stats["cache_hit_rate"] is not None
