"""The DP proposes, measurement disposes: candidates by expected latency, the measured fastest wins, cached."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from packrat_lab.optimizer import optimize
from packrat_lab.optimizer.candidates import candidate_plans, setting_variants
from packrat_lab.plan import Plan
from packrat_lab.profiling.measurement import Measurement
from packrat_lab.profiling.table import Profile, profile_from_latencies
from packrat_lab.settings import PASSIVE, builtin_settings
from packrat_lab.validation import config_key, measure_plans

# T=2, B=4: the DP picks 2x1x2 (10 ms expected); fat 1x2x4 is expected at 11 ms
LATENCIES = {(1, 1): 5.0, (1, 2): 10.0, (1, 4): 30.0, (2, 1): 4.0, (2, 2): 7.0, (2, 4): 11.0}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakePools:
    """Pools whose infer takes a fixed time per configuration on the fake clock; records the order."""

    def __init__(self, clock: FakeClock, ms: dict[str, float]) -> None:
        self.clock, self.ms = clock, ms
        self.opened: list[str] = []

    @contextmanager
    def __call__(self, workload: Any, plan: Plan) -> Iterator[Any]:
        self.opened.append(plan.text)
        cost = self.ms[plan.text] / 1000.0
        clock = self.clock

        class Pool:
            def infer(self, batch: Any) -> None:
                clock.now += cost

        yield Pool()


def measured_by(pools: FakePools, clock: FakeClock) -> Any:
    def measure(plans: Sequence[Plan]) -> dict[str, tuple[float, ...]]:
        return measure_plans("mlp", plans, repeats=3, warmup=1, rounds=2, clock=clock, pool_factory=pools)

    return measure


def test_measured_choice_picks_the_faster_of_two_plans_on_a_fake_clock() -> None:
    profile = profile_from_latencies("m", LATENCIES)
    assert optimize(profile, 2, 4).text == "2x1x2"
    clock = FakeClock()
    pools = FakePools(clock, {"2x1x2": 15.0, "1x2x4": 12.0})  # running together, the thin pair is slower
    plan = optimize(profile, 2, 4, measure_top=1, measure=measured_by(pools, clock))
    assert plan.text == "1x2x4" and plan.name == "packrat"
    assert plan.meta["expected_ms"] == 11.0 and plan.meta["measured_ms"] == pytest.approx(12.0)
    assert plan.meta["dp_plan"] == "2x1x2" and plan.meta["chosen_by"] == "measurement"
    assert [r["plan"] for r in plan.meta["candidates"]] == ["1x2x4", "2x1x2"]
    assert sorted(pools.opened[:2]) == sorted(pools.opened[2:]) == ["1x2x4", "2x1x2"]  # rounds alternate

    other = profile_from_latencies("m", LATENCIES)
    clock = FakeClock()
    faster_thin = FakePools(clock, {"2x1x2": 9.0, "1x2x4": 12.0})
    assert optimize(other, 2, 4, measure_top=1, measure=measured_by(faster_thin, clock)).text == "2x1x2"


def test_measured_configurations_are_cached_in_the_profile_and_reused() -> None:
    profile = profile_from_latencies("m", LATENCIES)
    clock = FakeClock()
    pools = FakePools(clock, {"2x1x2": 15.0, "1x2x4": 12.0})
    optimize(profile, 2, 4, measure_top=1, measure=measured_by(pools, clock))
    assert set(profile.corun) == {config_key(Plan.parse("2x1x2")), config_key(Plan.parse("1x2x4"))}

    def must_not_measure(plans: Sequence[Plan]) -> dict[str, tuple[float, ...]]:
        raise AssertionError(f"measured again: {[p.text for p in plans]}")

    assert optimize(profile, 2, 4, measure_top=1, measure=must_not_measure).text == "1x2x4"
    reloaded = Profile.from_dict(profile.to_dict())
    later = optimize(reloaded, 2, 4)  # a later plain plan uses the cached co-run measurements
    assert later.text == "1x2x4" and later.meta["chosen_by"] == "cached co-run measurement"
    assert optimize(reloaded, 2, 4, use_measured=False).text == "2x1x2"
    assert optimize(reloaded, 2, 2).text == optimize(profile_from_latencies("m", LATENCIES), 2, 2).text


def brute_force(latencies: dict[tuple[int, int], float], cores: int, batch: int) -> list[float]:
    """Expected latency of every distinct multiset with Σt <= cores and Σb == batch, sorted."""
    items = list(latencies)
    out = []
    for n in range(1, batch + 1):
        for combo in itertools.combinations_with_replacement(items, n):
            if sum(t for t, _ in combo) <= cores and sum(b for _, b in combo) == batch:
                out.append(max(latencies[i] for i in combo))
    return sorted(out)


@pytest.mark.parametrize(("cores", "batch", "limit"), [(2, 4, 10), (3, 4, 3), (4, 6, 5), (4, 8, 50)])
def test_candidates_are_the_best_distinct_configurations_by_expected_latency(
    cores: int, batch: int, limit: int
) -> None:
    latencies = {(t, b): 100.0 * b / (t**0.8) + 3 * t + b for t in range(1, 5) for b in (1, 2, 4, 8)}
    profile = profile_from_latencies("m", latencies)
    dp = optimize(profile, cores, batch)
    found = candidate_plans(profile, cores, batch, dp_plan=dp, limit=limit)
    expected = brute_force(latencies, cores, batch)[:limit]
    assert [p.expected_latency_ms for p in found] == pytest.approx(expected)
    assert found[0] is dp and len({config_key(p) for p in found}) == len(found)
    for p in found:
        assert p.total_batch == batch and p.total_threads <= cores
        assert p.expected_latency_ms == max(latencies[(i.threads, i.batch)] for i in p.instances)


def test_bad_measure_top_is_refused() -> None:
    with pytest.raises(ValueError, match="measure_top must be at least 1 candidate, got -1"):
        optimize(profile_from_latencies("m", LATENCIES), 2, 4, measure_top=-1)


def test_the_dp_plan_is_also_measured_under_the_other_runtime_setting() -> None:
    # isolated, spinning OpenMP (default) is a little faster; served together, PASSIVE wins by far
    points = [
        (t, b, s, v) for (t, b), v in LATENCIES.items() for s, v in (("default", v), ("passive", v * 1.2))
    ]
    profile = Profile(
        "m", [Measurement(t, b, s, (v,), stop_reason="summary") for t, b, s, v in points], builtin_settings()
    )
    assert optimize(profile, 2, 4).text == "2x1x2"
    variants = setting_variants(profile, optimize(profile, 2, 4))
    assert [(p.text, p.expected_latency_ms) for p in variants] == [("2x1x2@passive", pytest.approx(12.0))]
    clock = FakeClock()
    pools = FakePools(clock, {"2x1x2": 40.0, "2x1x2@passive": 14.0, "1x2x4": 30.0})
    plan = optimize(profile, 2, 4, measure_top=1, measure=measured_by(pools, clock))
    assert plan.text == "2x1x2@passive" and plan.instances[0].setting == PASSIVE
    assert sorted(set(pools.opened)) == ["1x2x4", "2x1x2", "2x1x2@passive"]
