"""Fakes of the profiler, optimizer and pool for the UI's fast tests (widget state and magics)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from packrat_lab.plan import Plan
from packrat_lab.profiling.measurement import Measurement
from packrat_lab.profiling.table import Profile

__all__ = ["FakeBackend", "FakePool", "latency"]


def latency(t: int, b: int) -> float:
    """A synthetic surface: more threads help a little, batch costs linearly."""
    return float(2.0 * b / t**0.5 + 1.0)


class FakePool:
    """Records what the UI asks of a pool; counts one served request per stats() call."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.reconfigured: list[str] = []
        self.auto: list[bool] = []
        self.closed = False
        self.served = 0
        self._events: list[dict[str, Any]] = []

    def reconfigure(self, plan: Plan) -> None:
        self.reconfigured.append(plan.text)
        for kind in ("passive-start", "switch", "drained"):
            self._events.append({"time": 1000.0 + len(self._events), "kind": kind, "plan": plan.text})
        self.plan = plan

    def stats(self) -> dict[str, Any]:
        self.served += 1
        return {
            "served": self.served,
            "failed": 0,
            "lost": 0,
            "in_flight": 1,
            "queue_depth": 2,
            "p50_ms": 3.0,
            "p99_ms": 9.0,
            "throughput_rps": 50.0,
            "estimated_batch": 4,
        }

    def events(self) -> list[dict[str, Any]]:
        return list(self._events)

    def set_auto(self, enabled: bool) -> None:
        self.auto.append(enabled)

    def close(self) -> None:
        self.closed = True


class FakeBackend:
    """Stands in for the real API; a `gate` makes the profiler wait so tests see it running."""

    def __init__(self, fail_profile: bool = False) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.fail_profile = fail_profile
        self.pools: list[FakePool] = []
        self.loads: list[float] = []
        self.validated: list[list[str]] = []

    def profile(
        self,
        model: Any,
        *,
        cores: int,
        batches: Sequence[int],
        point_time_s: float,
        progress: Callable[[int, int, Measurement], None],
        cancel: threading.Event,
        **_: Any,
    ) -> Profile:
        if self.fail_profile:
            msg = "worker crashed"
            raise RuntimeError(msg)
        points = [(t, b) for b in batches for t in range(1, cores + 1)]
        result = Profile(str(model))
        for done, (t, b) in enumerate(points, start=1):
            if cancel.is_set():
                break
            self.gate.wait(5)
            m = Measurement(t, b, "default", (latency(t, b),) * 5, stop_reason="precision")
            result.add(m)
            progress(done, len(points), m)
        return result

    def plans(self, profile: Profile, *, cores: int, batch: int) -> dict[str, Plan]:
        def named(text: str, name: str) -> Plan:
            plan = Plan.parse(text)
            worst = max(latency(i.threads, i.batch) for i in plan.instances)
            return replace(plan, name=name, expected_latency_ms=worst)

        if batch % cores:
            msg = f"no plan for B={batch} on {cores} cores"
            raise ValueError(msg)
        return {
            "packrat": named(f"{cores}x1x{batch // cores}", "packrat"),
            "fat": named(f"1x{cores}x{batch}", "fat"),
        }

    def validate(
        self, model: Any, plans: Sequence[Plan], *, progress: Callable[[str], None]
    ) -> dict[str, float]:
        self.validated.append([p.name for p in plans])
        progress("validating")
        return {p.name: (p.expected_latency_ms or 1.0) * 1.1 for p in plans}

    def pool(self, model: Any, plan: Plan, profile: Profile | None) -> FakePool:
        pool = FakePool(plan)
        self.pools.append(pool)
        return pool

    def run_load(self, pool: Any, *, rate: float, duration_s: float, poisson: bool) -> None:
        self.loads.append(rate)
        threading.Event().wait(0.01)
