"""An in-process stand-in for Pool (same interface, real torch model) for fast HTTP unit tests."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from packrat_lab.errors import InfeasiblePlanError
from packrat_lab.plan import Plan
from packrat_lab.workloads.registry import get_workload


@dataclass(frozen=True)
class FakeEvent:
    time: float
    kind: str
    plan: Plan
    detail: str = ""


class FakePool:
    """Runs the model in this process; refuses plans wider than `max_threads` like a small host would."""

    def __init__(self, model: str = "mlp", plan: str = "2x1x4", max_threads: int = 2, **options: Any) -> None:
        self.workload = get_workload(model, **options)
        self.module = self.workload.build()
        self.plan = Plan.coerce(plan)
        self.state = "serving"
        self.max_threads = max_threads
        self.profile = None
        self.auto = False
        self._served = 0
        self._reconfigurations = 0
        self._events = [FakeEvent(time.time(), "started", self.plan)]
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(2)

    def _check(self, batch: torch.Tensor) -> None:
        want = (self.workload.sample_shape, getattr(torch, self.workload.dtype))
        if tuple(batch.shape[1:]) != want[0] or batch.dtype != want[1] or batch.ndim < 1:
            msg = f"batch of shape {tuple(batch.shape)} {batch.dtype}; example: {want}"
            raise ValueError(msg)

    def infer(self, batch: torch.Tensor) -> torch.Tensor:
        self._check(batch)
        if self.state != "serving":
            raise RuntimeError("pool is closed")
        with torch.no_grad():
            out = self.module(batch)
        with self._lock:
            self._served += batch.shape[0]
        return out

    def submit(self, sample: torch.Tensor) -> Future[torch.Tensor]:
        return self._executor.submit(lambda: self.infer(sample[None])[0])

    def reconfigure(self, plan: Plan | str) -> None:
        new = Plan.coerce(plan)
        if new.total_threads > self.max_threads:
            msg = f"plan {new.text} needs {new.total_threads} cores; this host has {self.max_threads}"
            raise InfeasiblePlanError(msg)
        self.plan = new
        self._reconfigurations += 1
        self._events.append(FakeEvent(time.time(), "switch", new))

    def set_auto(self, on: bool) -> None:
        self.auto = on

    def stats(self) -> dict[str, Any]:
        return {
            "served": self._served,
            "failed": 0,
            "lost": 0,
            "in_flight": 0,
            "queue_depth": 0,
            "p50_ms": 1.0,
            "p99_ms": float("inf"),
            "throughput_rps": 0.0,
            "batch_sizes": {1: self._served},
            "estimated_batch": 1,
            "reconfigurations": self._reconfigurations,
            "workers": [{"pid": 1, "state": "ready"}],
        }

    def events(self) -> list[FakeEvent]:
        return list(self._events)

    def close(self) -> None:
        self.state = "closed"
        self._executor.shutdown(wait=False)


class BlockingPool(FakePool):
    """A FakePool whose inference waits for `release` (a stuck worker), counting callers that wait."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)
        self.submitted: list[Future[torch.Tensor]] = []

    def infer(self, batch: torch.Tensor) -> torch.Tensor:
        self.entered.release()
        self.release.wait(60)
        return super().infer(batch)

    def submit(self, sample: torch.Tensor) -> Future[torch.Tensor]:
        """A pending future, like the dynamic batcher's while the batch waits for a stuck worker."""
        future: Future[torch.Tensor] = Future()
        self.submitted.append(future)
        self.entered.release()
        return future


class RecordingPool(FakePool):
    """A FakePool that keeps every plan it was asked to switch to (to inspect settings and env)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[Plan] = []

    def reconfigure(self, plan: Plan | str) -> None:
        self.asked.append(Plan.coerce(plan))
        super().reconfigure(plan)
