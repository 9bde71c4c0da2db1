"""Backends as a profile dimension: plan text, accuracy guard, optimizer choice, cache, failures."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
from backend_profiles import EXACT, point, three_backend_profile

from packrat_lab.child_env import child_environment
from packrat_lab.optimizer import fat_plan, optimize
from packrat_lab.plan import Instance, Plan, parse_plan
from packrat_lab.profiling.measurement import Measurement
from packrat_lab.profiling.profiler import profile
from packrat_lab.profiling.runner import PointFailedError
from packrat_lab.profiling.spec import PointGroup
from packrat_lab.profiling.table import Profile
from packrat_lab.serving.reuse import match_reuse
from packrat_lab.settings import DEFAULT, PASSIVE
from packrat_lab.workloads.backends import BackendChoice, parse_backend_key, resolve_choices
from packrat_lab.workloads.backends.cache import convert_once


def test_plan_text_carries_the_backend_and_old_text_keeps_its_meaning() -> None:
    plan = parse_plan("2x1x4:onnxruntime@passive+1x2x8:openvino-bf16+1x1x1")
    assert [i.backend.key for i in plan.instances] == ["onnxruntime", "onnxruntime", "openvino-bf16", "eager"]
    assert plan.instances[0].setting == PASSIVE
    assert parse_plan(plan.text) == plan and Plan.from_dict(plan.to_dict()) == plan
    assert plan.backends == ["onnxruntime", "openvino-bf16", "eager"]
    old = parse_plan("1x2x8+2x1x4@passive")
    assert old.text == "1x2x8+2x1x4@passive" and all(i.backend.is_reference for i in old.instances)


@pytest.mark.parametrize(
    ("bad", "named"),
    [("2x1x4:tensorrt", "'tensorrt'"), ("2x1x4:openvino-fp16", "'fp16'"), ("2x1x4:@passive", "")],
)
def test_bad_backend_in_plan_text_is_one_line_with_an_example(bad: str, named: str) -> None:
    with pytest.raises(ValueError, match="example") as info:
        parse_plan(bad)
    assert named in str(info.value) and "\n" not in str(info.value)


def test_choices_put_eager_fp32_first_and_reject_unknown_names() -> None:
    choices = resolve_choices("onnxruntime,eager", "fp32,bf16")
    assert choices[0] == BackendChoice() and {c.key for c in choices} == {
        "eager",
        "eager-bf16",
        "onnxruntime",
        "onnxruntime-bf16",
    }
    with pytest.raises(ValueError, match="valid: eager, torchscript, compile, onnxruntime, openvino"):
        resolve_choices(["tvm"], None)


def test_optimizer_picks_the_faster_backend_within_tolerance() -> None:
    prof = three_backend_profile()
    plan = optimize(prof, cores=2, batch=8)
    assert {i.backend.key for i in plan.instances} == {"onnxruntime"}
    # with a looser tolerance the bf16 runtime is admitted and, being faster, chosen
    prof.accuracy_tol = 0.1
    assert {i.backend.key for i in optimize(prof, cores=2, batch=8).instances} == {"openvino-bf16"}
    eager_fat = fat_plan(prof.only_backend("eager"), cores=2, batch=8)
    assert eager_fat.instances[0].backend.is_reference


def test_a_precision_beyond_tolerance_is_excluded_and_says_why() -> None:
    prof = three_backend_profile()
    excluded = prof.excluded_backends()
    assert set(excluded) == {"openvino-bf16"} and "beyond accuracy_tol 0.01" in excluded["openvino-bf16"]
    assert "rel 5.00%" in excluded["openvino-bf16"]
    assert all(m.backend_key != "openvino-bf16" for m in prof.usable_measurements)
    assert set(prof.grid().backend.ravel()) == {"onnxruntime"}


def test_an_unchecked_backend_is_never_chosen_silently() -> None:
    prof = Profile("p", [point(1, 1, 10.0), point(1, 1, 1.0, "onnxruntime")], {"default": DEFAULT})
    assert prof.excluded_backends() == {"onnxruntime": "no accuracy check against eager fp32"}
    assert optimize(prof, cores=1, batch=1).instances[0].backend.is_reference


def test_profile_file_keeps_backends_and_reads_the_older_format(tmp_path: Path) -> None:
    prof = three_backend_profile()
    prof.meta["backend_failures"] = {"compile": "no compiler"}
    again = Profile.from_dict(prof.to_dict())
    assert sorted(m.key for m in again.measurements) == sorted(m.key for m in prof.measurements)
    assert again.excluded_backends()["compile"] == "failed: no compiler"
    old = prof.to_dict() | {"format": "packrat-lab-profile/1"}
    old["measurements"] = [
        {k: v for k, v in m.items() if k not in ("backend", "precision")} for m in old["measurements"][:1]
    ]
    assert Profile.from_dict(old).backends == ["eager"]


def failing_runner(fail: str, calls: list[str]) -> Callable[..., list[Measurement]]:
    """Measures eagerly-fake points, except that runtime `fail`'s process dies converting."""

    def run(
        group: PointGroup, cancelled: Callable[[], bool], on_point: Callable[[Measurement], object]
    ) -> list[Measurement]:
        calls.append(group.backend.key)
        if group.backend.key == fail:
            msg = f"profiling point {group.label} failed (BackendUnavailableError: no exporter); child stderr: ..."
            raise PointFailedError(msg)
        out = []
        for b in group.batches:
            meta = {} if group.backend.is_reference else {"accuracy": EXACT}
            m = Measurement(
                group.threads,
                b,
                group.setting.name,
                (1.0 * b,),
                meta=meta,
                backend=group.backend.backend,
                precision=group.backend.precision,
            )
            on_point(m)
            out.append(m)
        return out

    return run


def test_a_backend_that_fails_to_convert_is_reported_and_skipped() -> None:
    calls: list[str] = []
    result = profile(
        "mlp",
        threads=[1],
        batches=[1, 2],
        settings=["default", "passive"],
        backends=["eager", "onnxruntime", "openvino"],
        runner=failing_runner("onnxruntime", calls),
        progress_bar=False,
    )
    assert result.backends == ["eager", "openvino"]
    assert calls.count("onnxruntime") == 1  # not retried for the next setting
    assert "BackendUnavailableError: no exporter" in result.meta["backend_failures"]["onnxruntime"]
    assert "child stderr" not in result.meta["backend_failures"]["onnxruntime"]
    assert "failed" in result.excluded_backends()["onnxruntime"]


def test_a_failing_eager_reference_still_fails_the_profile() -> None:
    with pytest.raises(PointFailedError):
        profile("mlp", threads=[1], batches=[1], runner=failing_runner("eager", []), progress_bar=False)


def test_accuracy_tol_is_checked() -> None:
    with pytest.raises(ValueError, match="example: accuracy_tol=0.01"):
        profile("mlp", threads=[1], batches=[1], accuracy_tol=-1, progress_bar=False)


def test_workers_are_never_reused_across_backends() -> None:
    class Running:
        def __init__(self, inst: Instance) -> None:
            self.instance, self.cores = inst, inst.cores

    running = [Running(i) for i in parse_plan("2x1x4").with_cores([(0,), (1,)]).instances]
    same = parse_plan("2x1x4").with_cores([(0,), (1,)]).instances
    other = parse_plan("2x1x4:onnxruntime").with_cores([(0,), (1,)]).instances
    assert match_reuse(running, same) == [0, 1]
    assert match_reuse(running, other) == [None, None]


def test_each_backend_gets_its_thread_knobs_from_the_instance() -> None:
    ort = child_environment(2, (0, 1), PASSIVE, parse_backend_key("onnxruntime"))
    assert ort.backend_options == {
        "intra_op_num_threads": 2,
        "inter_op_num_threads": 1,
        "execution_mode": "sequential",
        "allow_spinning": "0",
    }
    assert (
        child_environment(1, (0,), DEFAULT, parse_backend_key("onnxruntime")).backend_options[
            "allow_spinning"
        ]
        == "1"
    )
    ov = child_environment(1, (0,), DEFAULT, parse_backend_key("openvino-bf16")).backend_options
    assert ov["INFERENCE_NUM_THREADS"] == 1 and ov["NUM_STREAMS"] == 1 and ov["PERFORMANCE_HINT"] == "LATENCY"
    assert ov["INFERENCE_PRECISION_HINT"] == "bf16"
    compiled = child_environment(2, (0, 1), DEFAULT, parse_backend_key("compile"))
    assert (
        compiled.env_dict["TORCHINDUCTOR_COMPILE_THREADS"] == "2"
        and compiled.backend_options["cpp_threads"] == 2
    )
    assert child_environment(1, (0,), DEFAULT).backend_options == {}


def test_conversion_runs_once_per_content_and_failures_leave_nothing(tmp_path: Path) -> None:
    made: list[Path] = []

    def convert(folder: Path) -> None:
        made.append(folder)
        (folder / "model.onnx").write_text("x")

    choice = parse_backend_key("onnxruntime")
    first = convert_once(tmp_path, choice, "abc", convert)
    second = convert_once(tmp_path, choice, "abc", convert)
    assert len(made) == 1 and not first.hit and second.hit and second.path == first.path
    assert (second.path / "model.onnx").read_text() == "x" and second.convert_s == pytest.approx(
        first.convert_s, abs=1e-3
    )
    convert_once(tmp_path, choice, "def", convert)
    assert len(made) == 2

    def broken(folder: Path) -> None:
        raise RuntimeError("exporter crashed")

    with pytest.raises(RuntimeError, match="exporter crashed"):
        convert_once(tmp_path, choice, "ghi", broken)
    assert not any(
        p.name.startswith("onnxruntime-ghi") or p.name.endswith(".tmp")
        for p in (tmp_path / "backends").iterdir()
        if p.is_dir()
    )


def test_model_digest_follows_the_weights() -> None:
    import torch

    from packrat_lab.workloads.backends.cache import model_digest

    model = torch.nn.Linear(4, 2)
    before = model_digest(model, (4,), "float32")
    assert model_digest(model, (4,), "float32") == before
    with torch.no_grad():
        model.weight[0, 0] += 1.0
    assert model_digest(model, (4,), "float32") != before
    assert model_digest(model, (5,), "float32") != model_digest(model, (4,), "float32")


def test_accuracy_numbers() -> None:
    import torch

    from packrat_lab.workloads.backends.accuracy import compare_outputs

    ref = torch.tensor([[1.0, 2.0, 4.0], [3.0, 0.0, 1.0]])
    out = ref.clone()
    out[1, 1] = 3.5  # row 1's arg-max moves
    acc = compare_outputs(ref, out)
    assert acc.max_abs == pytest.approx(3.5) and acc.max_rel == pytest.approx(3.5 / 4.0)
    assert acc.top1 == 0.5 and not acc.within(0.01) and compare_outputs(ref, ref).within(0.0)
    assert math.isinf(compare_outputs(torch.zeros(2, 2), torch.ones(2, 2)).max_rel)


def test_cli_takes_backends_and_precisions_and_keeps_a_numeric_precision() -> None:
    import argparse

    from packrat_lab.cli import profile_cmd

    parser = argparse.ArgumentParser()
    profile_cmd.register(parser.add_subparsers())
    args = parser.parse_args(
        ["profile", "mlp", "--backends", "eager,onnxruntime", "--precision", "fp32,bf16"]
    )
    assert args.backends == ["eager", "onnxruntime"] and args.precision == ["fp32", "bf16"]
    assert parser.parse_args(["profile", "mlp", "--precision", "0.05"]).precision == 0.05  # the old meaning
    for bad in (["--backends", "tvm"], ["--precision", "fp16"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["profile", "mlp", *bad])


def test_cli_summary_shows_the_backend_and_each_runtimes_error() -> None:
    from packrat_lab.cli.profile_cmd import summary_table

    prof = three_backend_profile()
    prof.meta["backend_failures"] = {"compile": "no C++ compiler"}
    text = summary_table(prof)
    assert "onnxruntime" in text.splitlines()[2]  # the winning runtime in the table
    assert "onnxruntime: max abs 1e-07, rel 0.00%, top-1 100%; admitted" in text
    assert "openvino-bf16: max abs 0.3, rel 5.00%, top-1 50%; EXCLUDED (beyond accuracy_tol 0.01" in text
    assert "compile: EXCLUDED (failed: no C++ compiler)" in text


def test_surface_is_best_of_with_the_winning_backend_in_hover_or_one_backend() -> None:
    from packrat_lab.plots.surface import surface_info

    prof = three_backend_profile()
    best = surface_info(prof)
    assert best.backend is not None and set(best.backend.ravel()) == {"onnxruntime"}
    assert "backend: onnxruntime" in best.hover_text()[0][0]
    eager = surface_info(prof, backend="eager")
    assert eager.backend is None and eager.latency_ms[0, 0] == pytest.approx(2 * best.latency_ms[0, 0])
    with pytest.raises(ValueError, match="measured: eager, onnxruntime, openvino-bf16"):
        surface_info(prof, backend="compile")


def test_surface_shows_each_points_error_and_an_excluded_backend_with_why() -> None:
    from packrat_lab.plots.surface import surface_info

    prof = three_backend_profile()
    assert "vs eager fp32: max abs 1e-07, rel 0.00%, top-1 100%" in surface_info(prof).hover_text()[0][0]
    rough = surface_info(prof, backend="openvino-bf16")  # beyond tolerance: shown, never planned silently
    eager = surface_info(prof, backend="eager")
    assert rough.latency_ms[0, 0] == pytest.approx(eager.latency_ms[0, 0] / 4)
    hover = rough.hover_text()[0][0]
    assert "rel 5.00%" in hover and "excluded from planning: beyond accuracy_tol 0.01" in hover
    assert eager.excluded == "" and "excluded" not in eager.hover_text()[0][0]


def test_sidebar_rows_carry_the_backend_of_each_instance() -> None:
    from packrat_lab.jupyter_server.views import _instances

    plan = parse_plan("1x1x4:onnxruntime+1x1x4")
    rows = _instances(plan.to_dict())
    assert [r["backend"] for r in rows] == ["onnxruntime", "eager"]
    grouped = {k: v for k, v in plan.to_dict().items() if k != "all_instances"}
    assert [r["backend"] for r in _instances(grouped)] == ["onnxruntime", "eager"]
