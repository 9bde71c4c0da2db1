"""`packrat-lab export`: TorchServe config.properties and Triton config.pbtxt, parsed back and checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from packrat_lab.cli import main
from packrat_lab.export import export_plan, nearest_homogeneous
from packrat_lab.plan import Plan
from packrat_lab.profiling.table import profile_from_latencies


def _properties(path: Path) -> dict[str, str]:
    """key=value lines of a Java properties file (comments skipped)."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, line
            pairs[key.strip()] = value.strip()
    return pairs


def _pbtxt(path: Path) -> object:
    """config.pbtxt parsed as Triton's own ModelConfig message (fails on any field Triton would reject)."""
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    from google.protobuf import text_format

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_torchserve_properties_carry_workers_threads_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "export",
                "2x1x4@passive",
                "--to",
                "torchserve",
                "--model",
                "mlp",
                "-o",
                str(tmp_path),
                "--max-queue-delay-ms",
                "7",
            ]
        )
        == 0
    )
    props = _properties(tmp_path / "config.properties")
    assert props["default_workers_per_model"] == "2"
    assert props["cpu_launcher_enable"] == "true"
    assert props["cpu_launcher_args"] == "--ncores-per-instance 1"
    assert props["load_models"] == "mlp.mar"
    assert props["inference_address"].startswith("http://127.0.0.1:")
    model = json.loads(props["models"])["mlp"]["1.0"]
    assert (model["minWorkers"], model["maxWorkers"], model["batchSize"], model["maxBatchDelay"]) == (
        2,
        2,
        4,
        7,
    )
    out = capsys.readouterr().out
    assert "OMP_WAIT_POLICY=PASSIVE" in out  # TorchServe has no per-worker environment: said, not dropped
    assert "mixes instance shapes" not in out


def test_triton_pbtxt_is_a_valid_model_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "2x1x4", "--to", "triton", "--model", "tiny-cnn", "-o", str(tmp_path)]) == 0
    config = _pbtxt(tmp_path / "tiny-cnn" / "config.pbtxt")
    assert config.name == "tiny-cnn" and config.backend == "pytorch"  # type: ignore[attr-defined]
    assert config.max_batch_size == 4  # type: ignore[attr-defined]
    (group,) = config.instance_group  # type: ignore[attr-defined]
    assert group.count == 2 and group.kind == group.KIND_CPU
    batching = config.dynamic_batching  # type: ignore[attr-defined]
    assert list(batching.preferred_batch_size) == [4] and batching.max_queue_delay_microseconds == 5000
    params = {k: v.string_value for k, v in config.parameters.items()}  # type: ignore[attr-defined]
    assert params == {"INTRA_OP_THREAD_COUNT": "1", "INTER_OP_THREAD_COUNT": "1"}
    (inp,), (out,) = config.input, config.output  # type: ignore[attr-defined]
    assert (list(inp.dims), list(out.dims)) == ([3, 32, 32], [10])
    assert "not pin" in capsys.readouterr().out


def test_heterogeneous_plan_without_profile_keeps_instance_count_and_says_so() -> None:
    result = export_plan("1x2x8+2x1x4", "triton", model="m")
    assert result.config.text == "3x1x6"
    assert (
        "1x2x8+2x1x4" in result.notes[0]
        and "⟨3,1,6⟩" in result.notes[0]
        and "batch 18 for 16" in result.notes[0]
    )
    assert "no input/output written" in result.notes[-1]
    assert "input [" not in result.files["m/config.pbtxt"]


def test_heterogeneous_plan_with_profile_takes_the_measured_best_homogeneous() -> None:
    latencies = {(t, b): 100.0 for t in (1, 2, 3, 4) for b in (1, 2, 4, 8, 16)}
    latencies[2, 8] = 10.0  # ⟨2,2,8⟩: the only fast homogeneous way to serve 16 on 4 cores
    config, notes = nearest_homogeneous(Plan.parse("1x2x8+2x1x4"), profile_from_latencies("m", latencies))
    assert config.text == "2x2x8"
    assert "profile's best homogeneous plan" in notes[0]


def test_plan_json_file_and_profile_from_the_cli(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(Plan.parse("4x1x2").to_dict()))
    assert (
        main(["export", str(plan_file), "--to", "torchserve", "--model", "my-model", "-o", str(tmp_path)])
        == 0
    )
    assert (
        json.loads(_properties(tmp_path / "config.properties")["models"])["my-model"]["1.0"]["minWorkers"]
        == 4
    )


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["export", "2x0x4", "--to", "triton"], "plan '2x0x4'"),
        (["export", "nope.json", "--to", "triton"], "cannot read plan file 'nope.json'"),
        (["export", "2x1x4", "--to", "triton", "--model", "a/b"], "a/b"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "-o", str(tmp_path)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # a name-only note may precede the error
    assert last.startswith("packrat-lab export: error: ") and needle in last


def test_unknown_target_is_refused() -> None:
    with pytest.raises(ValueError, match="valid: torchserve, triton"):
        export_plan("2x1x4", "kserve")
    done = subprocess.run(
        [sys.executable, "-m", "packrat_lab.cli", "export", "2x1x4", "--to", "kserve"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "invalid choice: 'kserve'" in done.stderr
