"""Fleet auto mode: rates from counters, hysteresis and minimum interval; cores follow load on fakes."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import torch
from fake_workers import FakeWorld

from packrat_lab.fleet import Fleet
from packrat_lab.fleet.auto import FleetAutoPolicy
from packrat_lab.host import HostInfo
from packrat_lab.plan import Plan
from packrat_lab.profiling.table import profile_from_latencies
from packrat_lab.serving.lifecycle import FailurePolicy


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_new_split_is_returned_only_after_it_held_for_the_hysteresis() -> None:
    current = {"a": Plan.parse("1x1x4"), "b": Plan.parse("1x1x4")}
    fleet = SimpleNamespace(plans=current)
    proposals: list[dict[str, float]] = []

    def planner(rates: Any) -> dict[str, Plan]:
        proposals.append(dict(rates))
        if rates["a"] > 50:
            return {"a": Plan.parse("1x3x4"), "b": Plan.parse("1x1x4")}
        return dict(current)

    clock = Clock()
    policy = FleetAutoPolicy(
        fleet, 50, hysteresis_s=2.0, min_interval_s=10.0, smoothing=1.0, planner=planner, clock=clock
    )
    assert policy.step({"a": 0, "b": 0}) is None  # baseline
    clock.now = 1.0
    assert policy.step({"a": 10, "b": 10}) is None  # 10 req/s each: the same split
    assert proposals[-1] == {"a": 10.0, "b": 10.0}
    clock.now = 2.0
    assert policy.step({"a": 110, "b": 20}) is None  # a jumps to 100 req/s: a new split, timer starts
    clock.now = 3.0
    assert policy.step({"a": 210, "b": 30}) is None  # held 1 s < 2 s
    clock.now = 4.5
    target = policy.step({"a": 360, "b": 40})
    assert target is not None and target["a"].text == "1x3x4"
    clock.now = 5.0
    assert policy.step({"a": 410, "b": 45}) is None  # the same proposal restarts its timer
    clock.now = 8.0
    assert policy.step({"a": 710, "b": 60}) is None  # held 3 s but only 3.5 s since the change (< 10)
    clock.now = 4.5 + 10.5
    assert policy.step({"a": 1410, "b": 130}) is not None


def _profile(name: str) -> Any:
    # batch b on t threads: 4 ms per sample on one thread, splitting perfectly
    return profile_from_latencies(name, {(t, b): 4.0 * b / t for t in range(1, 5) for b in (1, 2, 4, 8)})


def test_auto_moves_cores_to_the_loaded_model_on_fake_workers() -> None:
    world = FakeWorld(run_s=0.001)
    host = HostInfo("fake 4-core", (0, 1, 2, 3), None)
    models = {"a": ("mlp", "1x1x8"), "b": ("mlp", "1x1x8")}
    profiles = {"a": _profile("a"), "b": _profile("b")}
    stop = threading.Event()
    with Fleet(
        models,
        host=host,
        channels=world.factory,
        announce=False,
        warmup=0,
        policy=FailurePolicy(tick_s=0.01, backoff_s=0.02),
        profiles=profiles,
        slo_ms=100,
        auto=True,
        auto_interval_s=0.1,
        auto_hysteresis_s=0.3,
        auto_min_interval_s=0.5,
    ) as fleet:

        def load() -> None:
            x = torch.ones(1024)
            while not stop.is_set():
                fleet.submit("a", x).result(5)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(fleet.shares["a"]) <= len(fleet.shares["b"]):
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        shares = fleet.shares
        kinds = [e.kind for e in fleet.events()]
        stats = fleet.stats()
    assert len(shares["a"]) > len(shares["b"]), (shares, kinds)
    assert "auto-reconfigure" in kinds
    assert stats["a"]["lost"] == 0 and stats["a"]["failed"] == 0
