"""Baselines as Plans: fat ⟨1,T,B⟩, thin (one-thread instances), best homogeneous; missing points."""

from __future__ import annotations

from pathlib import Path

import pytest

from packrat_lab import load_profile
from packrat_lab.errors import ProfileMissingPointError
from packrat_lab.optimizer import baselines, fat_plan, homogeneous_plan, optimize, thin_plan
from packrat_lab.plan import Plan
from packrat_lab.profiling.measurement import Measurement
from packrat_lab.profiling.table import Profile, profile_from_latencies
from packrat_lab.settings import PASSIVE, builtin_settings


def groups(plan: Plan) -> list[tuple[int, int, int]]:
    """A plan as ⟨i,t,b⟩ triples."""
    return [(count, inst.threads, inst.batch) for count, inst in plan.groups()]


def grid_profile() -> Profile:
    """threads 1..4, batches 1..8 (powers of two), L = b * (1 + 3/t) ms: more threads help, sublinearly."""
    return profile_from_latencies("m", {(t, b): b * (1 + 3 / t) for t in range(1, 5) for b in (1, 2, 4, 8)})


def test_fat_is_one_instance_with_everything() -> None:
    plan = fat_plan(grid_profile(), cores=4, batch=8)
    assert plan.name == "fat"
    assert groups(plan) == [(1, 4, 8)]
    assert plan.expected_latency_ms == 8 * (1 + 3 / 4)


@pytest.mark.parametrize(
    ("cores", "batch", "expected"),
    [
        (4, 8, [(4, 1, 2)]),
        (4, 6, [(2, 1, 2), (2, 1, 1)]),  # as even as powers of two allow
        (4, 12, [(2, 1, 4), (2, 1, 2)]),
        (4, 3, [(3, 1, 1)]),  # B < T: B instances of batch 1
        (1, 8, [(1, 1, 8)]),
    ],
)
def test_thin_splits_the_batch_evenly(cores: int, batch: int, expected: list[tuple[int, int, int]]) -> None:
    plan = thin_plan(grid_profile(), cores=cores, batch=batch)
    assert plan.name == "thin"
    assert groups(plan) == expected
    assert plan.total_batch == batch
    assert plan.expected_latency_ms == max(b * 4.0 for _, _, b in expected)


def test_homogeneous_picks_the_best_identical_instances() -> None:
    lat = {(1, 8): 20.0, (4, 8): 12.0, (2, 4): 9.0, (1, 4): 11.0, (1, 2): 9.0, (2, 2): 7.0, (3, 8): 12.0}
    profile = profile_from_latencies("m", lat)
    plan = homogeneous_plan(profile, cores=4, batch=8)
    assert plan.name == "homogeneous"
    # ⟨2,2,4⟩ and ⟨4,1,2⟩ tie at 9 ms on 4 threads; ⟨2,2,4⟩ has fewer instances; ⟨4,2,2⟩ needs 8 cores
    assert groups(plan) == [(2, 2, 4)]
    assert plan.expected_latency_ms == 9.0
    assert groups(homogeneous_plan(profile, cores=3, batch=8)) == [(2, 1, 4)]  # 11 ms beats ⟨1,3,8⟩ at 12 ms


def test_baselines_use_the_best_setting_per_point() -> None:
    measurements = [
        Measurement(2, 4, "default", (27.6,), stop_reason="summary"),
        Measurement(2, 4, "passive", (4.5,), stop_reason="summary"),
        Measurement(1, 2, "default", (2.4,), stop_reason="summary"),
        Measurement(1, 4, "default", (4.9,), stop_reason="summary"),
    ]
    plan = fat_plan(Profile("mlp", measurements, builtin_settings()), cores=2, batch=4)
    assert plan.instances[0].setting == PASSIVE
    assert plan.expected_latency_ms == 4.5


def test_missing_points_name_the_point_and_the_fix() -> None:
    profile = profile_from_latencies("mlp", {(1, 2): 1.0, (2, 2): 0.8, (2, 4): 1.5})
    with pytest.raises(
        ProfileMissingPointError, match=r"fat baseline ⟨1,4,8⟩ needs the point threads=4 batch=8"
    ) as err:
        fat_plan(profile, cores=4, batch=8)
    assert "example fix: packrat-lab profile mlp --cores 4 --batch 8" in str(err.value)
    with pytest.raises(ProfileMissingPointError, match=r"threads=1 batch=1"):
        thin_plan(profile, cores=4, batch=3)
    with pytest.raises(ProfileMissingPointError, match=r"homogeneous baseline for batch 3 on 4 cores"):
        homogeneous_plan(profile, cores=4, batch=3)


def test_baselines_mapping_and_skip_missing() -> None:
    profile = grid_profile()
    found = baselines(profile, cores=4, batch=8)
    assert list(found) == ["fat", "thin", "homogeneous"]
    partial = profile_from_latencies("m", {(1, 2): 1.0, (1, 4): 1.5})  # no (2, 4): no fat plan
    with pytest.raises(ProfileMissingPointError):
        baselines(partial, cores=2, batch=4)
    assert list(baselines(partial, cores=2, batch=4, skip_missing=True)) == ["thin", "homogeneous"]


@pytest.mark.parametrize("model", ["resnet50", "inception_v3", "gpt2", "bert"])
def test_dp_never_loses_to_a_baseline(reference_dir: Path, model: str) -> None:
    profile = load_profile(reference_dir / f"packrat-paper-{model}.csv")
    for cores in (2, 5, 8, 16):
        for batch in (1, 4, 16, 64, 1024):
            best = optimize(profile, cores=cores, batch=batch).expected_latency_ms
            for plan in baselines(profile, cores=cores, batch=batch).values():
                assert best is not None and plan.expected_latency_ms is not None
                assert best <= plan.expected_latency_ms, (cores, batch, plan.name)
