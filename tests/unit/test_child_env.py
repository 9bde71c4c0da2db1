"""One environment for profiling points and pool workers: built by one function, really seen by the child."""

from __future__ import annotations

from pathlib import Path

import pytest

from packrat_lab.child_env import child_environment
from packrat_lab.host import assign_cores
from packrat_lab.plan import Plan
from packrat_lab.profiling.runner import run_point
from packrat_lab.profiling.spec import PointGroup, PointSpec
from packrat_lab.profiling.stopping import StoppingRule
from packrat_lab.settings import PASSIVE, RuntimeSetting, known_settings, resolve_settings
from packrat_lab.workloads.registry import get_workload


def test_a_profile_point_and_a_plan_instance_get_equal_environments() -> None:
    plan = Plan.parse("1x1x4@passive")
    (cores,) = assign_cores([1])
    (instance,) = plan.with_cores([cores]).instances
    spec = PointSpec(get_workload("mlp").spec, 1, 4, PASSIVE, cores)
    built = child_environment(instance.threads, instance.cores, instance.setting)
    assert spec.environment == built == PointGroup.of(spec).environment
    assert built.env_dict == {"MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    assert child_environment(1, list(cores), PASSIVE) == built  # a list of cores builds the same


def test_launch_env_adds_ours_to_the_base() -> None:
    env = child_environment(2, (0, 1), PASSIVE).launch_env({"PATH": "/bin", "OMP_NUM_THREADS": "8"})
    assert env == {
        "PATH": "/bin",
        "OMP_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
        "OMP_WAIT_POLICY": "PASSIVE",
    }


@pytest.mark.parametrize(
    ("threads", "cores", "match"),
    [(0, (), "threads must be a positive integer, got 0"), (2, (0,), r"2 threads need 2 cores, got \(0,\)")],
)
def test_bad_environment_requests_are_refused(threads: int, cores: tuple[int, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        child_environment(threads, cores, PASSIVE)


def test_an_allocator_missing_from_the_process_is_refused_not_ignored() -> None:
    setting = RuntimeSetting.from_env("fake-alloc", {"LD_PRELOAD": "/nonexistent/libfake.so"})
    with pytest.raises(RuntimeError, match="needs LD_PRELOAD=/nonexistent/libfake.so at process start"):
        child_environment(1, (), setting).apply_in_child()


def test_missing_allocator_library_is_reported_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("packrat_lab.settings._library_dirs", lambda: [str(tmp_path)])
    assert "jemalloc" not in known_settings()
    with pytest.raises(
        ValueError, match=r"'jemalloc' is unavailable on this host: .*apt-get install -y libjemalloc2"
    ):
        resolve_settings(["jemalloc"])
    with pytest.raises(ValueError, match="'tcmalloc' is unavailable"):
        Plan.parse("1x1x2@tcmalloc")
    (tmp_path / "libjemalloc.so.2").write_bytes(b"")
    assert resolve_settings(["jemalloc"])["jemalloc"].env_dict == {
        "LD_PRELOAD": str(tmp_path / "libjemalloc.so.2")
    }
    assert Plan.parse("1x1x2@jemalloc").instances[0].setting == known_settings()["jemalloc"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["passive", "jemalloc", "tcmalloc"])
def test_a_profiling_child_really_runs_in_the_environment(name: str) -> None:
    available = known_settings()
    if name not in available:
        pytest.skip(f"{name} is not installed here (apt-get install -y libjemalloc2 libtcmalloc-minimal4)")
    setting = available[name]
    spec = PointSpec(get_workload("mlp").spec, 1, 1, setting, (0,), StoppingRule(time_cap_s=0.3), 1, 1)
    measurement = run_point(spec)
    expected = spec.environment
    assert measurement.meta["env"] == expected.env_dict
    assert measurement.meta["torch_threads"] == 1 and measurement.meta["interop_threads"] == 1
    assert measurement.meta["affinity"] == [0]
    if "LD_PRELOAD" in setting.env_dict:
        assert measurement.meta["preloaded"] is True


@pytest.mark.slow
def test_a_pool_worker_runs_in_the_environment_its_profile_point_ran_in() -> None:
    """Issue 12: workers inherited the parent's environment while profiling children got t threads."""
    from packrat_lab import Pool

    with Pool("mlp", "2x1x2@passive", warmup=1, announce=False) as pool:
        for worker, instance in zip(pool.stats()["workers"], pool.plan.instances, strict=True):
            spec = PointSpec(
                get_workload("mlp").spec, instance.threads, instance.batch, PASSIVE, instance.cores
            )
            raw = Path(f"/proc/{worker['pid']}/environ").read_bytes().split(b"\0")
            seen = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
            assert {k: seen.get(k) for k in spec.environment.env_dict} == spec.environment.env_dict
            affinity = (
                Path(f"/proc/{worker['pid']}/status").read_text().split("Cpus_allowed_list:")[1].split()[0]
            )
            assert affinity == ",".join(map(str, instance.cores))
