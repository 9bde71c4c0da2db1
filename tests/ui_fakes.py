"""Fakes of the profiler, optimizer and pool for the UI's fast tests (widget state and magics)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from packrat_lab.plan import Plan
from packrat_lab.profiling.measurement import Measurement
from packrat_lab.profiling.table import Profile

__all__ = ["FakeBackend", "FakeLoad", "FakePool", "latency"]


def latency(t: int, b: int) -> float:
    """A synthetic surface: more threads help a little, batch costs linearly."""
    return float(2.0 * b / t**0.5 + 1.0)


class FakePool:
    """Records what the UI asks of a pool; counts one served request per stats() call."""

    def __init__(self, plan: Plan, slo_ms: float | None = None) -> None:
        self.plan = plan
        self.slo_ms = slo_ms
        self.slo_calls: list[float | None] = []
        self.refuse_slo: str | None = None  # set: set_slo fails with this, as a server's 400 would
        self.rejected = self.dropped = self.late = 0  # the SLO counters, as a test sets them
        self.reconfigured: list[str] = []
        self.auto: list[bool] = []
        self.closed = False
        self.served = 0
        self.auto_on = False
        self.state = "serving"
        self.gone = False  # stopped by someone else: stats() then fails like a closed port
        self._events: list[dict[str, Any]] = []

    def reconfigure(self, plan: Plan) -> None:
        self.reconfigured.append(plan.text)
        for kind in ("passive-start", "switch", "drained"):
            self._events.append({"time": 1000.0 + len(self._events), "kind": kind, "plan": plan.text})
        self.plan = plan

    def stats(self) -> dict[str, Any]:
        if self.gone:
            msg = "[Errno 111] Connection refused"
            raise ConnectionRefusedError(msg)
        self.served += 1
        return {
            "plan": self.plan.text,
            "auto": self.auto_on,
            "state": self.state,
            "served": self.served,
            "failed": 0,
            "lost": 0,
            "in_flight": 1,
            "queue_depth": 2,
            "p50_ms": 3.0,
            "p99_ms": 9.0,
            "throughput_rps": 50.0,
            "estimated_batch": 4,
            "slo_ms": self.slo_ms,
            "rejected": self.rejected,
            "dropped": self.dropped,
            "late": self.late,
            "slo_attainment": None if self.slo_ms is None else 0.75,
            "goodput_rps": 40.0,
        }

    def events(self) -> list[dict[str, Any]]:
        return list(self._events)

    def set_auto(self, enabled: bool) -> None:
        self.auto.append(enabled)
        self.auto_on = enabled

    def set_slo(self, slo_ms: float | None) -> None:
        if self.refuse_slo is not None:
            raise RuntimeError(self.refuse_slo)
        self.slo_calls.append(slo_ms)
        self.slo_ms = slo_ms

    def close(self) -> None:
        self.closed = True


class FakeLoad:
    """A load generator that only records the rates it was asked for."""

    def __init__(self, rate: float, poisson: bool, seed: int) -> None:
        self.rates = [rate]
        self.poisson, self.seed = poisson, seed
        self.alive = True
        self.died = False
        self.error: str | None = None

    def set_rate(self, rate: float) -> None:
        self.rates.append(rate)

    def counts(self) -> dict[str, float]:
        return {"released": 10, "sent": 10, "completed": 10, "failed": 0, "achieved_rps": self.rates[-1]}

    def stop(self, timeout: float = 10.0) -> None:
        self.alive = False


class FakeBackend:
    """Stands in for the real API; a `gate` makes the profiler wait so tests see it running."""

    def __init__(self, fail_profile: bool = False) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.fail_profile = fail_profile
        self.pools: list[FakePool] = []
        self.loads: list[FakeLoad] = []
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

    def pool(self, model: Any, plan: Plan, profile: Profile | None, slo_ms: float | None = None) -> FakePool:
        pool = FakePool(plan, slo_ms)
        self.pools.append(pool)
        return pool

    def serve(
        self, model: Any, plan: Plan, profile: Profile | None, *, slo_ms: float | None = None
    ) -> FakePool:
        return self.pool(model, plan, profile, slo_ms)

    def start_load(self, pool: Any, *, rate: float, poisson: bool, seed: int) -> FakeLoad:
        load = FakeLoad(rate, poisson, seed)
        self.loads.append(load)
        return load
