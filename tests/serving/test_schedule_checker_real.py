"""The schedule checker against real worker processes: SIGKILL, SIGSTOP/SIGCONT, switches, close."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest
import torch
from proc_utils import alive
from schedule import check_seeds

from packrat_lab import FailurePolicy, Pool
from packrat_lab.serving.transport import leftover_segments
from packrat_lab.workloads.registry import get_workload

pytestmark = pytest.mark.slow

MLP = get_workload("mlp")
POLICY = FailurePolicy(hang_timeout_s=2.0, backoff_s=0.2, drain_timeout_s=5.0)


class RealTarget:
    """Real `mlp` pools; faults are real signals to the worker processes."""

    settle_s = 90.0

    def __init__(self) -> None:
        self.model = MLP.build()
        self.pids: set[int] = set()
        self.stopped: set[int] = set()

    def make_pool(self, plan: str) -> Pool:
        self.pids.clear()
        self.stopped.clear()
        return Pool("mlp", plan, announce=False, warmup=1, policy=POLICY)

    def oracle(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(x if x.dim() == 2 else x[None])[0 if x.dim() == 1 else slice(None)]

    def same(self, got: torch.Tensor, want: torch.Tensor) -> bool:
        return bool(torch.allclose(got, want, rtol=1e-4, atol=1e-5))

    def row(self, uid: float) -> torch.Tensor:
        return torch.linspace(-1.0, 1.0, 1024) * (uid % 997) / 997.0 + uid / 1e7

    def hurt(self, pool: Pool, how: str, pick: int) -> None:
        if how in ("cont", "cont-all"):
            for pid in list(self.stopped)[: None if how == "cont-all" else 1]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
                self.stopped.discard(pid)
            return
        stats = pool.stats()
        pids = [w["pid"] for w in stats["workers"] + stats["retiring_workers"] if w["pid"]]
        self.pids.update(pids)
        if not pids:
            return
        pid = pids[pick % len(pids)]
        with contextlib.suppress(ProcessLookupError):
            if how == "kill":
                os.kill(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGSTOP)
                self.stopped.add(pid)

    def ran(self, uid: float) -> int | None:
        return None  # a real worker keeps no per-row count

    def leftovers(self, pool: Pool) -> list[str]:
        running = [pid for pid in self.pids if alive(pid)]
        return leftover_segments(pool._prefix) + [f"worker pid {pid}" for pid in running]


def test_real_workers_keep_every_promise_under_random_schedules() -> None:
    check_seeds(RealTarget(), [101, 202, 303], length=10, poison=False)
