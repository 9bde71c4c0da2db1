"""Real processes under other backends: a profile over two runtimes, a pool serving ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from packrat_lab import Pool
from packrat_lab.optimizer import optimize
from packrat_lab.profiling.profiler import profile
from packrat_lab.workloads.backends.accuracy import DEFAULT_ACCURACY_TOL, compare_outputs
from packrat_lab.workloads.registry import get_workload

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test converts into its own cache folder (workers read $PACKRAT_LAB_CACHE)."""
    monkeypatch.setenv("PACKRAT_LAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.slow
def test_profile_over_two_backends_records_both_and_plans_the_faster(own_cache: Path) -> None:
    result = profile(
        "tiny-cnn",
        threads=[1],
        batches=[1, 4],
        settings=["default"],
        backends=["eager", "onnxruntime"],
        point_time_s=0.5,
        max_samples=20,
        warmup=2,
        progress_bar=False,
    )
    assert result.backends == ["eager", "onnxruntime"]
    ort = [m for m in result.measurements if m.backend == "onnxruntime"]
    assert len(ort) == 2 and all(
        m.accuracy is not None and m.accuracy.within(DEFAULT_ACCURACY_TOL) for m in ort
    )
    assert all(m.meta["backend_options"]["intra_op_num_threads"] == 1 for m in ort)
    assert all(m.meta["peak_rss_mb"] > 0 and m.meta["convert_s"] > 0 for m in ort)
    assert all(  # conversion's memory is recorded beside its time
        m.meta["peak_rss_mb"] >= m.meta["convert_peak_rss_mb"] >= m.meta["rss_before_convert_mb"] > 0
        for m in ort
    )
    assert len(list((own_cache / "backends").glob("onnxruntime-*/model.onnx"))) == 1
    plan = optimize(result, cores=1, batch=4)
    fastest = min(result.points(1, 4), key=lambda m: m.median)
    assert plan.instances[0].backend.key == fastest.backend_key  # whichever measured faster here


@pytest.mark.slow
def test_a_failing_runtime_is_reported_and_the_rest_is_measured() -> None:
    result = profile(
        "mlp",
        threads=[1],
        batches=[1],
        backends=["eager", "onnxruntime"],
        precisions=["fp32", "bf16"],
        settings=["default"],
        point_time_s=0.3,
        max_samples=10,
        warmup=1,
        progress_bar=False,
    )
    assert "onnxruntime-bf16" in result.meta["backend_failures"]
    assert {"eager", "onnxruntime"} <= set(result.backends)
    assert "onnxruntime-bf16" not in result.backends


@pytest.mark.slow
def test_pool_serving_onnxruntime_answers_within_tolerance_of_eager() -> None:
    workload = get_workload("tiny-cnn")
    batch = workload.example_input(4, seed=7)
    with torch.inference_mode():
        expected = workload.build()(batch)
    with Pool(workload, "1x1x4:onnxruntime", announce=False, warmup=1) as pool:
        got = pool.infer(batch)
        rows = pool.stats()["workers"]
        assert pool.plan.text == "1x1x4:onnxruntime"
    assert compare_outputs(expected, got).within(DEFAULT_ACCURACY_TOL)
    assert [r["backend"] for r in rows] == ["onnxruntime"]


@pytest.mark.slow
def test_a_conversion_failure_in_a_worker_is_a_start_failure() -> None:
    from packrat_lab import FailurePolicy

    workload = get_workload("tiny-cnn")
    policy = FailurePolicy(degraded_after=1, backoff_s=0.1, max_backoff_s=0.2)
    with (
        pytest.raises(Exception, match="onnxruntime runs fp32 only"),
        Pool(workload, "1x1x2:onnxruntime-bf16", announce=False, warmup=1, policy=policy) as pool,
    ):
        pool.infer(workload.example_input(2), timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("key", ["torchscript", "onnxruntime", "openvino", "compile"])
def test_each_backend_converts_once_and_matches_eager(key: str, tmp_path: Path) -> None:
    """In this process: convert, answer within tolerance at a batch size other than the example's, hit the cache."""
    from packrat_lab.child_env import backend_options
    from packrat_lab.settings import DEFAULT
    from packrat_lab.workloads.backends.base import Prepared
    from packrat_lab.workloads.backends.build import prepare_backend
    from packrat_lab.workloads.backends.names import parse_backend_key

    if key == "openvino":
        pytest.importorskip("openvino")
    if key == "compile":
        import shutil

        if shutil.which("g++") is None and shutil.which("c++") is None:
            pytest.skip("torch.compile needs a C++ compiler")
    workload = get_workload("mlp", width=64, layers=2)
    choice = parse_backend_key(key)
    x = workload.example_input(5, seed=3)
    with torch.inference_mode():
        expected = workload.build()(x)

    def prepared() -> Prepared:
        return prepare_backend(
            workload.build(),
            workload.example_input(2),
            choice,
            threads=1,
            options=backend_options(choice, 1, DEFAULT),
            sample_shape=workload.sample_shape,
            dtype=workload.dtype,
            cache_dir=str(tmp_path),
        )

    first, second = prepared(), prepared()
    with torch.inference_mode():
        got = second.run(x)
    assert compare_outputs(expected, got).within(1e-4)
    if key != "compile":  # compile keeps no artifact of ours: inductor caches its own kernels
        assert not first.cache_hit and second.cache_hit
    assert first.fixed_batch is (key == "compile")  # inductor compiled one shape: workers run whole slices
