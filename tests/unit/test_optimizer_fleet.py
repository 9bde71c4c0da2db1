"""optimize_fleet: the DP over models equals exhaustive search; the queue model behaves; bad input."""

from __future__ import annotations

import random
from itertools import product

import numpy as np
import pytest

from packrat_lab.errors import InfeasiblePlanError
from packrat_lab.optimizer.fleet import (
    ModelCurve,
    allocate,
    exhaustive_fleet,
    optimize_fleet,
    rate_capacity,
    simulate_p_latency,
)
from packrat_lab.profiling.table import Profile, profile_from_latencies


def synthetic(
    name: str, base: float, parallel: float, seed: int, cores: int, batches: tuple[int, ...]
) -> Profile:
    """Amdahl-shaped latencies with noise: a serial part plus a parallel part over t threads."""
    rng = random.Random(seed)
    return profile_from_latencies(
        name,
        {
            (t, b): base * b**0.85 * ((1 - parallel) + parallel / t) * (1 + 0.2 * rng.random()) + 0.2
            for t in range(1, cores + 1)
            for b in batches
        },
    )


@pytest.mark.parametrize("seed", range(6))
def test_optimize_fleet_equals_exhaustive_search_on_small_cases(seed: int) -> None:
    rng = random.Random(seed)
    cores = rng.choice([3, 4, 5, 6])
    count = rng.choice([2, 3])
    profiles = {
        f"m{k}": synthetic(
            f"m{k}", rng.uniform(0.5, 8), rng.uniform(0.3, 0.95), seed * 10 + k, cores, (1, 2, 4, 8)
        )
        for k in range(count)
    }
    loads = {n: rng.uniform(20, 400) for n in profiles}
    slo = {n: rng.uniform(20, 80) for n in profiles}
    try:
        best, split = exhaustive_fleet(profiles, cores, loads, slo)
    except InfeasiblePlanError:
        pytest.skip("more models than cores")
    if best == 0:
        with pytest.raises(InfeasiblePlanError, match="cannot keep 95% of queries within"):
            optimize_fleet(profiles, cores, loads, slo)
        return
    plans = optimize_fleet(profiles, cores, loads, slo)
    scales = {p.meta["scale"] for p in plans.values()}
    assert len(scales) == 1
    assert scales.pop() == pytest.approx(best, rel=1e-12)
    assert sum(p.total_threads for p in plans.values()) <= cores
    for name, plan in plans.items():
        assert plan.total_threads <= plan.meta["fleet_cores"]
        assert plan.meta["capacity_rps"] / loads[name] >= best * (1 - 1e-12)
    del split


def test_allocate_is_the_best_split_of_the_curves() -> None:
    rng = np.random.default_rng(3)
    curves = []
    for k in range(3):
        cap = np.concatenate([[0.0], np.maximum.accumulate(rng.uniform(0, 100, 7))])
        curves.append(ModelCurve(f"m{k}", 10.0, cap, [None] * 8))
    loads = [3.0, 5.0, 1.0]
    scale, alloc = allocate(curves, loads, 7)
    brute = max(
        min(c.capacity[n] / load for c, n, load in zip(curves, split, loads, strict=True))
        for split in product(range(1, 8), repeat=3)
        if sum(split) <= 7
    )
    assert scale == brute
    assert sum(alloc) <= 7
    assert min(c.capacity[n] / load for c, n, load in zip(curves, alloc, loads, strict=True)) == scale


def test_queue_model_latency_grows_with_load_and_capacity_is_below_the_batch_bound() -> None:
    service = np.array([0.0, 2.0, 2.5, 3.0, 3.5])  # B = 4
    gaps = np.random.default_rng(0).exponential(1.0, 1500)
    low = simulate_p_latency(gaps, 50.0, service, 1.0)
    high = simulate_p_latency(gaps, 1100.0, service, 1.0)
    assert 2.0 <= low < high
    cap = rate_capacity(service, 20.0, delay_ms=1.0, gaps=gaps)
    assert 0 < cap <= 1000 * 4 / 3.5
    assert simulate_p_latency(gaps, cap, service, 1.0) <= 20.0
    assert rate_capacity(service, 1.0, delay_ms=1.0, gaps=gaps) == 0.0  # one row alone misses the objective


def test_bad_input_is_refused_in_one_line() -> None:
    prof = synthetic("a", 1.0, 0.5, 0, 2, (1, 2))
    with pytest.raises(ValueError, match=r"loads\['a'\] must be a positive number, got None"):
        optimize_fleet({"a": prof}, 2, {}, 10)
    with pytest.raises(ValueError, match=r"slo_ms\['a'\] must be a positive number, got -1"):
        optimize_fleet({"a": prof}, 2, {"a": 1}, -1)
    with pytest.raises(InfeasiblePlanError, match="3 models cannot each get a core of 2"):
        optimize_fleet({"a": prof, "b": prof, "c": prof}, 2, dict.fromkeys("abc", 1.0), 10)


def test_the_plan_picks_the_faster_variant_per_model_and_says_which() -> None:
    slow = synthetic("a", 4.0, 0.6, 1, 4, (1, 2, 4))
    fast = profile_from_latencies("a", {k: v / 2 for k, v in _latencies(slow).items()})
    other = synthetic("b", 2.0, 0.6, 2, 4, (1, 2, 4))
    plans = optimize_fleet({"a": {"eager": slow, "torchscript": fast}, "b": other}, 4, {"a": 50, "b": 50}, 60)
    assert plans["a"].meta["variant"] == "torchscript"
    assert plans["b"].meta["variant"] == ""
    alone = optimize_fleet({"a": fast, "b": other}, 4, {"a": 50, "b": 50}, 60)
    assert plans["a"].meta["scale"] == alone["a"].meta["scale"]


def test_co_run_points_replace_isolated_ones_in_the_view_the_plan_uses() -> None:
    from dataclasses import replace

    from packrat_lab.fleet.corun import corun_view

    isolated = synthetic("a", 2.0, 0.6, 1, 2, (1, 2))
    slower = profile_from_latencies("a", {k: 3 * v for k, v in _latencies(isolated).items()})
    corun = Profile("a", [replace(m, meta={"corun": True, "interference": 0.8}) for m in slower.measurements])
    view = corun_view(isolated, corun)
    assert all(m.meta.get("interference") == 0.8 for m in view.measurements)
    assert len(view.measurements) == len(isolated.measurements)
    loads, slo = {"a": 10.0}, 100.0
    assert (
        optimize_fleet({"a": view}, 2, loads, slo)["a"].meta["scale"]
        < optimize_fleet({"a": isolated}, 2, loads, slo)["a"].meta["scale"]
    )
    assert corun_view(isolated, None) is isolated


def _latencies(profile: Profile) -> dict[tuple[int, int], float]:
    return {(m.threads, m.batch): m.median for m in profile.measurements}
