"""The infer fast path (issue 12): an idle worker's answer is read by the caller from its direct pipe.

Real worker processes throughout: the path exists to save a thread wake-up between two processes,
and its failure modes (a worker that stops, dies or raises; a caller that is interrupted or gives up)
are those of real pipes.
"""

from __future__ import annotations

import os
import select
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from proc_utils import wait_for

from packrat_lab import FailurePolicy, Pool, WorkerFailedError
from packrat_lab.workloads.registry import get_workload

pytestmark = pytest.mark.slow

MLP = get_workload("mlp")
CRASHY = get_workload("crashy_model:build", example_input=torch.ones(1, 8))


def served(pool: Pool) -> tuple[int, int]:
    """(answers, answers read by their caller directly) of the pool's first worker."""
    worker = pool.stats()["workers"][0]
    return int(worker["served"]), int(worker["served_direct"])


class _Interrupted(Exception):
    pass


@contextmanager
def interrupt_after(seconds: float) -> Iterator[None]:
    """Deliver SIGINT to this (main) thread after `seconds`, raised as _Interrupted: a Ctrl-C in Jupyter."""

    def handler(signum: int, frame: object) -> None:
        raise _Interrupted

    old = signal.signal(signal.SIGINT, handler)
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, old)


@pytest.mark.parametrize("infer_path", ["direct", "reader"])
def test_infer_answers_are_the_models_on_either_path_and_only_direct_skips_the_reader(
    infer_path: str,
) -> None:
    """One- and four-row batches to a 1x1x4 pool equal the model's output; the direct path counts its answers."""
    xs = [MLP.example_input(4, seed=1), MLP.example_input(1, seed=2), MLP.example_input(9, seed=3)]
    with torch.inference_mode():
        expected = [MLP.build()(x) for x in xs]
    with Pool("mlp", "1x1x4", warmup=1, announce=False, infer_path=infer_path) as pool:  # type: ignore[arg-type]
        before = served(pool)
        for x, want in zip(xs, expected, strict=True):
            torch.testing.assert_close(pool.infer(x, timeout=60), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(pool.submit(xs[1][0]).result(60), expected[1][0], rtol=1e-5, atol=1e-5)
        answers, direct = (a - b for a, b in zip(served(pool), before, strict=True))
    assert answers == 6  # 4 rows, 1 row, 9 rows in 3 pieces, and the submitted sample
    # only a batch that is one piece goes direct; the 9-row batch's pieces and the submit use the reader
    assert direct == (2 if infer_path == "direct" else 0)


def test_an_interrupted_infer_hands_its_answer_over_and_the_worker_serves_on() -> None:
    """A Ctrl-C while the caller waits on the direct pipe: the answer is still read, nothing is killed."""
    policy = FailurePolicy(hang_timeout_s=60.0)
    x = MLP.example_input(4, seed=4)
    with torch.inference_mode():
        expected = MLP.build()(x)
    with Pool("mlp", "1x1x4", warmup=1, announce=False, policy=policy) as pool:
        pid = pool.stats()["workers"][0]["pid"]
        before = served(pool)[0]
        os.kill(pid, signal.SIGSTOP)  # the answer cannot come before the interrupt
        try:
            with interrupt_after(0.3), pytest.raises(_Interrupted):
                pool.infer(x)
        finally:
            os.kill(pid, signal.SIGCONT)
        # the interrupted batch's answer is read by a helper, so the worker is free for the next one
        assert wait_for(lambda: served(pool)[0] == before + 1, 30)
        torch.testing.assert_close(pool.infer(x, timeout=30), expected, rtol=1e-5, atol=1e-5)
        stats = pool.stats()
        assert stats["workers"][0]["pid"] == pid and stats["hung_workers"] == 0
        assert stats["worker_restarts"] == 0


def test_a_stopped_worker_under_a_direct_run_is_killed_and_the_batch_rerun_elsewhere() -> None:
    """The direct pipe reads EOF when the hung worker is killed; the failure policy reruns the batch."""
    policy = FailurePolicy(hang_timeout_s=1.0)
    x = MLP.example_input(1, seed=7)  # one row: one piece, for worker 0 (split [1, 0])
    with torch.inference_mode():
        expected = MLP.build()(x)
    with Pool("mlp", "2x1x4", warmup=1, announce=False, policy=policy) as pool:
        victim = pool.stats()["workers"][0]["pid"]
        os.kill(victim, signal.SIGSTOP)
        out = pool.infer(x, timeout=90)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        assert pool.stats()["hung_workers"] == 1
        hung = next(e for e in pool.events() if e.kind == "worker-hung")
        assert hung.detail["pid"] == victim


def test_a_model_error_on_a_direct_run_fails_that_batch_alone_with_its_message() -> None:
    """A RunError comes back on the direct pipe (a long text cut to one pipe record); the next batch is served."""
    bad, good = torch.full((1, 8), 500.0), torch.ones(2, 8)
    with Pool(CRASHY, "1x1x4", warmup=1, announce=False) as pool:
        pid = pool.stats()["workers"][0]["pid"]
        with pytest.raises(WorkerFailedError, match="ValueError: a first value above 100 is refused") as info:
            pool.infer(bad, timeout=60)
        assert len(str(info.value).encode()) < select.PIPE_BUF
        torch.testing.assert_close(pool.infer(good, timeout=60), good * 2 + 1)
        assert pool.stats()["workers"][0]["pid"] == pid and pool.stats()["worker_restarts"] == 0
        assert served(pool)[1] >= 1
