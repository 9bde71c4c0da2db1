"""The infer fast path (issue 12): an idle worker's answer is read by the caller from its direct pipe.

Real worker processes throughout: the path exists to save a thread wake-up between two processes,
and its failure modes (a worker that stops, dies or raises; a caller that is interrupted or gives up)
are those of real pipes.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from packrat_lab import FailurePolicy, Pool, WorkerFailedError
from packrat_lab.workloads.registry import get_workload

pytestmark = pytest.mark.slow

MLP = get_workload("mlp")
CRASHY = get_workload("crashy_model:build", example_input=torch.ones(1, 8))


def served(pool: Pool) -> tuple[int, int]:
    """(answers, answers read by their caller directly) of the pool's first worker."""
    worker = pool.stats()["workers"][0]
    return int(worker["served"]), int(worker["served_direct"])


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


_INTERRUPTED_INFER = """
import os, signal, threading, time
import torch
from packrat_lab import FailurePolicy, Pool
from packrat_lab.workloads.registry import get_workload

if __name__ == "__main__":
    mlp = get_workload("mlp")
    x = mlp.example_input(4, seed=4)
    with torch.inference_mode():
        expected = mlp.build()(x)
    with Pool("mlp", "1x1x4", warmup=1, announce=False, policy=FailurePolicy(hang_timeout_s=60.0)) as pool:
        pid = pool.stats()["workers"][0]["pid"]
        before = pool.stats()["workers"][0]["served"]
        os.kill(pid, signal.SIGSTOP)  # the answer cannot come before the interrupt
        main = threading.main_thread().ident
        threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT)).start()  # Ctrl-C
        try:
            pool.infer(x)
            raise SystemExit("infer returned although its worker was stopped")
        except KeyboardInterrupt:
            pass
        finally:
            os.kill(pid, signal.SIGCONT)
        until = time.monotonic() + 30  # a helper reads the interrupted batch's answer
        while pool.stats()["workers"][0]["served"] < before + 1 and time.monotonic() < until:
            time.sleep(0.05)
        out = pool.infer(x, timeout=30)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        stats = pool.stats()
        assert stats["workers"][0]["pid"] == pid, "the worker was replaced"
        assert stats["hung_workers"] == 0 and stats["worker_restarts"] == 0, stats
    print("served on after the interrupt")
"""


def test_an_interrupted_infer_hands_its_answer_over_and_the_worker_serves_on(tmp_path: Path) -> None:
    """A Ctrl-C while the caller waits on the direct pipe: the answer is still read, nothing is killed.

    In its own interpreter, so a real SIGINT meets a plain Python process, as in a notebook kernel,
    and not the test runner with every native library the suite has loaded.
    """
    script = tmp_path / "interrupted_infer.py"
    script.write_text(_INTERRUPTED_INFER)
    run = subprocess.run(
        [sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "served on after the interrupt" in run.stdout


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
