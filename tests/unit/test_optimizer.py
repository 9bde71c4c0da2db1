"""The optimizer, exactly: the paper's Table 2, the oracle, the straightforward loop, plan invariants, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import packrat_lab
from packrat_lab import load_profile
from packrat_lab.errors import InfeasiblePlanError
from packrat_lab.optimizer import (
    PlanTable,
    exhaustive_best,
    exhaustive_optimum,
    homogeneous_plan,
    optimize,
    solve_reference_loop,
    solve_table,
)
from packrat_lab.plan import Plan
from packrat_lab.profiling.measurement import Measurement
from packrat_lab.profiling.table import Profile, profile_from_latencies
from packrat_lab.settings import DEFAULT, PASSIVE, builtin_settings

# Table 2 of the paper (BERT, all cores used): B -> groups ⟨i,t,b⟩ at T = 16, and the plan at T = 14
TABLE2_T16 = {
    8: [(2, 8, 4)],
    16: [(4, 4, 4)],
    32: [(4, 4, 8)],
    64: [(4, 4, 16)],
    128: [(4, 4, 32)],
    256: [(8, 2, 32)],
    512: [(8, 2, 64)],
    1024: [(8, 2, 128)],
}
TABLE2_T14 = {
    8: [(2, 7, 4)],
    16: [(1, 6, 8), (2, 4, 4)],
    32: [(1, 6, 16), (2, 4, 8)],
    64: [(1, 6, 32), (2, 4, 16)],
    128: [(2, 7, 64)],
    256: [(2, 3, 64), (4, 2, 32)],
    512: [(2, 3, 128), (4, 2, 64)],
    1024: [(2, 3, 256), (4, 2, 128)],
}


def groups(plan: Plan) -> list[tuple[int, int, int]]:
    """A plan as ⟨i,t,b⟩ triples."""
    return [(count, inst.threads, inst.batch) for count, inst in plan.groups()]


def random_profile(seed: int, max_threads: int = 8, max_batch: int = 24) -> Profile:
    """A synthetic profile with sparse threads and batches, non-monotone latencies and missing points."""
    rng = np.random.default_rng(seed)
    threads = rng.choice(
        np.arange(1, max_threads + 1), size=int(rng.integers(1, max_threads + 1)), replace=False
    )
    batches = rng.choice(np.arange(1, max_batch + 1), size=int(rng.integers(1, 6)), replace=False)
    latencies = {
        (int(t), int(b)): float(rng.integers(1, 40))  # small integers: many ties
        for t in threads
        for b in batches
        if rng.random() < 0.8
    }
    latencies.setdefault((int(threads[0]), int(batches[0])), 5.0)
    return profile_from_latencies(f"random-{seed}", latencies)


def check_plan(profile: Profile, plan: Plan, cores: int, batch: int, all_cores: bool) -> None:
    """Invariants every DP plan keeps: sizes add up, latencies are the profile's, the max is the objective."""
    assert plan.name == "packrat"
    assert plan.total_batch == batch
    assert plan.total_threads == cores if all_cores else plan.total_threads <= cores
    grid = profile.grid()
    for inst in plan.instances:
        lat, setting = grid.lookup(inst.threads, inst.batch)
        assert inst.expected_latency_ms == lat
        assert inst.setting.name == setting
    assert plan.expected_latency_ms == max(i.expected_latency_ms or 0.0 for i in plan.instances)


# ---- the paper ---------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", sorted(TABLE2_T16))
def test_table2_t16_column_exactly(reference_dir: Path, batch: int) -> None:
    profile = load_profile(reference_dir / "packrat-paper-bert.csv")
    plan = optimize(profile, cores=16, batch=batch, all_cores=True)
    assert groups(plan) == TABLE2_T16[batch]


@pytest.mark.parametrize("batch", sorted(TABLE2_T14))
def test_table2_t14_same_objective_as_paper(reference_dir: Path, batch: int) -> None:
    profile = load_profile(reference_dir / "packrat-paper-bert.csv")
    grid = profile.grid()
    paper = max(grid.lookup(t, b)[0] for _, t, b in TABLE2_T14[batch])
    assert sum(i * t for i, t, _ in TABLE2_T14[batch]) == 14  # the table itself uses all cores
    plan = optimize(profile, cores=14, batch=batch, all_cores=True)
    assert plan.expected_latency_ms == paper
    check_plan(profile, plan, 14, batch, all_cores=True)


@pytest.mark.parametrize("model", ["resnet50", "inception_v3", "gpt2", "bert"])
@pytest.mark.parametrize("all_cores", [False, True])
def test_dp_matches_oracle_on_reference_subgrids(reference_dir: Path, model: str, all_cores: bool) -> None:
    profile = load_profile(reference_dir / f"packrat-paper-{model}.csv")
    table = solve_table(profile, cores=6, batch=16, all_cores=all_cores)
    for cores in range(1, 7):
        for batch in range(1, 17):
            best = exhaustive_best(profile, cores, batch, all_cores)
            assert table.latency(cores, batch) == best[0], (cores, batch)
            if best[0] == np.inf:  # e.g. batch 3 on 1 core: no measured batch of 3
                assert not table.feasible(cores, batch)
                continue
            plan = table.plan(cores, batch)
            check_plan(profile, plan, cores, batch, all_cores)
            # ties: fewest total threads, then fewest instances
            assert (plan.expected_latency_ms, plan.total_threads, len(plan.instances)) == best


def test_reference_loop_on_paper_profile_equals_dp(reference_dir: Path) -> None:
    profile = load_profile(reference_dir / "packrat-paper-gpt2.csv")
    for all_cores in (False, True):
        expected = solve_reference_loop(profile, 8, 96, all_cores=all_cores)
        got = solve_table(profile, 8, 96, all_cores=all_cores).latency_ms
        assert np.array_equal(got, expected)


# ---- synthetic profiles ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("all_cores", [False, True])
def test_dp_table_equals_reference_loop(seed: int, all_cores: bool) -> None:
    profile = random_profile(seed)
    cores, batch = 3 + seed % 8, 10 + 7 * (seed % 5)
    expected = solve_reference_loop(profile, cores, batch, all_cores=all_cores)
    table = solve_table(profile, cores, batch, all_cores=all_cores)
    assert table.latency_ms.shape == (cores + 1, batch + 1)
    assert np.array_equal(table.latency_ms, expected)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("all_cores", [False, True])
def test_random_plans_are_optimal_with_the_promised_ties(seed: int, all_cores: bool) -> None:
    profile = random_profile(100 + seed, max_threads=5, max_batch=9)
    table = solve_table(profile, 5, 12, all_cores=all_cores)
    for cores in range(1, 6):
        for batch in range(1, 13):
            best = exhaustive_best(profile, cores, batch, all_cores)
            assert (
                table.latency(cores, batch) == best[0] == exhaustive_optimum(profile, cores, batch, all_cores)
            )
            if best[0] == np.inf:
                assert not table.feasible(cores, batch)
                continue
            plan = table.plan(cores, batch)
            check_plan(profile, plan, cores, batch, all_cores)
            assert (plan.expected_latency_ms, plan.total_threads, len(plan.instances)) == best


def test_envelope_records_the_threads_really_used() -> None:
    # 3 threads are slower than 2 here: given 3 cores, the instance runs 2 threads and says so
    profile = profile_from_latencies("m", {(1, 4): 10.0, (2, 4): 6.0, (3, 4): 8.0})
    plan = optimize(profile, cores=3, batch=4)
    assert groups(plan) == [(1, 2, 4)]
    assert plan.expected_latency_ms == 6.0
    exact = optimize(profile, cores=3, batch=4, all_cores=True)
    assert groups(exact) == [(1, 3, 4)]


def test_heterogeneous_plan_beats_homogeneous() -> None:
    # batch 3 on 3 cores: ⟨1,2,1⟩ + ⟨1,1,2⟩ (4.5 ms) beats every plan of identical instances (>= 5 ms)
    lat = {(1, 1): 5.0, (1, 2): 4.5, (1, 3): 14.0, (2, 1): 4.0, (2, 2): 6.0, (2, 3): 8.0, (3, 3): 7.0}
    profile = profile_from_latencies("m", lat)
    plan = optimize(profile, cores=3, batch=3)
    assert groups(plan) == [(1, 2, 1), (1, 1, 2)]
    assert plan.expected_latency_ms == 4.5
    assert str(plan) == "⟨1,2,1⟩ + ⟨1,1,2⟩"
    assert homogeneous_plan(profile, 3, 3).expected_latency_ms == 5.0


def test_ties_prefer_fewer_threads_then_fewer_instances() -> None:
    lat = {(1, 2): 10.0, (2, 2): 10.0, (3, 4): 10.0, (4, 4): 10.0, (1, 4): 12.0, (2, 4): 12.0}
    profile = profile_from_latencies("m", lat)
    assert groups(optimize(profile, cores=4, batch=4)) == [(2, 1, 2)]  # 2 threads beat ⟨1,3,4⟩ and ⟨1,4,4⟩
    assert groups(optimize(profile, cores=4, batch=4, all_cores=True)) == [(1, 4, 4)]  # one instance, not two


def test_more_cores_than_profiled_is_fine_when_plans_exist() -> None:
    profile = profile_from_latencies("m", {(1, 2): 3.0, (2, 2): 2.0, (2, 4): 3.5})
    plan = optimize(profile, cores=8, batch=8)
    assert groups(plan) == [(4, 2, 2)]
    exact = optimize(profile, cores=5, batch=6, all_cores=True)
    assert groups(exact) == [(2, 2, 2), (1, 1, 2)]


def test_best_setting_per_point_is_recorded() -> None:
    measurements = [
        Measurement(1, 2, "default", (4.0,), stop_reason="summary"),
        Measurement(2, 2, "default", (27.6,), stop_reason="summary"),
        Measurement(2, 2, "passive", (2.5,), stop_reason="summary"),
        Measurement(1, 4, "default", (8.0,), stop_reason="summary"),
        Measurement(2, 4, "passive", (4.9,), stop_reason="summary"),
    ]
    profile = Profile("m", measurements, builtin_settings())
    plan = optimize(profile, cores=2, batch=2)
    assert groups(plan) == [(1, 2, 2)]
    assert plan.instances[0].setting == PASSIVE
    assert plan.text == "1x2x2@passive"
    slow = optimize(profile, cores=1, batch=2)
    assert slow.instances[0].setting == DEFAULT


def test_statistic_changes_the_plan() -> None:
    # one-thread point: fast median, heavy tail; two-thread point: steady
    measurements = [
        Measurement(1, 2, "default", (5.0, 5.0, 5.0, 50.0, 50.0), stop_reason="time cap"),
        Measurement(2, 2, "default", (8.0, 8.0, 8.0, 8.0, 8.0), stop_reason="time cap"),
    ]
    profile = Profile("m", measurements, {"default": DEFAULT})
    assert groups(optimize(profile, cores=2, batch=2, statistic="median")) == [(1, 1, 2)]
    assert groups(optimize(profile, cores=2, batch=2, statistic="mean")) == [(1, 2, 2)]


# ---- the table ---------------------------------------------------------------------------------


def test_one_table_answers_every_smaller_question(reference_dir: Path) -> None:
    profile = load_profile(reference_dir / "packrat-paper-inception_v3.csv")
    table = solve_table(profile, cores=16, batch=256)
    assert isinstance(table, PlanTable)
    for cores, batch in [(16, 256), (12, 64), (3, 7), (1, 1), (9, 100)]:
        alone = optimize(profile, cores=cores, batch=batch)
        assert table.latency(cores, batch) == alone.expected_latency_ms
        assert table.plan(cores, batch) == alone


def test_best_by_batch(reference_dir: Path) -> None:
    profile = load_profile(reference_dir / "packrat-paper-bert.csv")
    table = solve_table(profile, cores=16, batch=1024, all_cores=True)
    plans = table.best_by_batch()
    assert [p.total_batch for p in plans] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    assert [groups(p) for p in plans[3:]] == [TABLE2_T16[b] for b in sorted(TABLE2_T16)]
    some = table.best_by_batch(14, batches=[3, 8, 24])
    assert [p.total_batch for p in some] == [3, 8, 24]
    assert all(p.total_threads == 14 for p in some)


def test_best_by_batch_skips_sizes_no_plan_serves() -> None:
    profile = profile_from_latencies("m", {(1, 2): 1.0, (1, 4): 2.0})
    table = solve_table(profile, cores=2, batch=6)
    assert [p.total_batch for p in table.best_by_batch(batches=range(1, 7))] == [2, 4, 6]
    assert table.latency(2, 3) == np.inf


def test_table_rejects_questions_outside_it() -> None:
    table = solve_table(profile_from_latencies("m", {(1, 1): 1.0}), cores=2, batch=4)
    with pytest.raises(ValueError, match=r"cores=3, batch=4.*cores<=2, batch<=4"):
        table.plan(3, 4)


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cores", "batch", "needle"),
    [
        (4, 0, "batch must be a positive integer, got 0; example"),
        (0, 8, "cores must be a positive integer, got 0"),
        (-2, 8, "got -2"),
        (True, 8, "got True"),
        (4, 2.5, "got 2.5"),
    ],
)
def test_bad_arguments(cores: object, batch: object, needle: str) -> None:
    profile = profile_from_latencies("m", {(1, 1): 1.0})
    with pytest.raises(ValueError, match=needle):
        optimize(profile, cores=cores, batch=batch)  # type: ignore[arg-type]


def test_unreachable_batch_is_infeasible_with_a_useful_message() -> None:
    profile = profile_from_latencies("m", {(1, 2): 1.0, (2, 4): 2.0})
    with pytest.raises(InfeasiblePlanError) as err:
        optimize(profile, cores=4, batch=3)
    text = str(err.value)
    assert "B=3" in text and "T=4" in text and "batches [2, 4]" in text and "threads [1, 2]" in text
    assert "example: batch=2 works on 4 cores" in text
    assert "\n" not in text


def test_all_cores_without_exact_cover_is_infeasible() -> None:
    profile = profile_from_latencies("m", {(2, 1): 1.0, (2, 2): 1.5})
    with pytest.raises(InfeasiblePlanError, match=r"T=3 cores \(threads summing to exactly 3\)"):
        optimize(profile, cores=3, batch=2, all_cores=True)
    assert optimize(profile, cores=3, batch=2).total_threads == 2


def test_oracle_refuses_big_grids_and_reports_infeasible_as_inf() -> None:
    profile = profile_from_latencies("m", {(1, 2): 1.0})
    assert exhaustive_optimum(profile, 2, 3) == np.inf
    with pytest.raises(ValueError, match="cores=100"):
        exhaustive_optimum(profile, 100, 4)


def test_public_entry_point() -> None:
    assert packrat_lab.optimize is optimize
