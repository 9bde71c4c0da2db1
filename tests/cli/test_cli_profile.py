"""`packrat-lab profile`: real command runs, one-line errors with exit code 2, the summary table."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from packrat_lab.cli.profile_cmd import summary_table
from packrat_lab.host import detect_host
from packrat_lab.profiling.measurement import Measurement
from packrat_lab.profiling.table import Profile, load_profile


def packrat_lab(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script (or the module when the script is not on PATH)."""
    script = shutil.which("packrat-lab") or str(Path(sys.executable).with_name("packrat-lab"))
    command = [script] if Path(script).exists() else [sys.executable, "-m", "packrat_lab.cli"]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    return subprocess.run(
        [*command, "profile", *args], check=False, capture_output=True, text=True, env=env, timeout=120
    )


def test_summary_table_shows_best_setting_and_noise_marks() -> None:
    p = Profile("mlp", meta={"points": 3, "wall_s": 4.2})
    p.add(Measurement(1, 4, "default", (5.0,) * 10, stop_reason="precision"))
    p.add(Measurement(2, 4, "default", (27.6,) * 10, stop_reason="precision"))
    p.add(Measurement(2, 4, "passive", (4.5, 9.0, 4.5), stop_reason="time-cap"))
    text = summary_table(p)
    lines = text.splitlines()
    assert lines[1].split() == ["threads", "\\", "batch", "4"]
    assert lines[2].split() == ["1", "5.00", "default"]
    assert lines[3].split() == ["2", "4.50", "passive*"]
    assert "3 points in 4.2 s" in text
    assert summary_table(Profile("mlp")) == "mlp: no points measured"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["resnet51"], "unknown model 'resnet51'"),
        (["mlp", "--cores", "999"], "cores=999 is more than the"),
        (["mlp", "--threads", "999"], "threads=999 needs 999 cores"),
        (["mlp", "--settings", "turbo"], "unknown runtime setting 'turbo'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], needle: str) -> None:
    out = subprocess_result = packrat_lab(*args)
    assert subprocess_result.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("packrat-lab profile: error: ") and needle in lines[0]
    assert ("example" in lines[0] or "valid" in lines[0]) and "Traceback" not in out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("batch", ["0", "-2", "x"])
def test_bad_batch_is_an_argparse_error(batch: str) -> None:
    out = packrat_lab("mlp", f"--batch={batch}")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "argument --batch" in out.stderr and "example: 8" in out.stderr


@pytest.mark.slow
def test_profile_command_measures_prints_and_saves(tmp_path: Path) -> None:
    target = tmp_path / "mlp.json"
    out = packrat_lab(
        "mlp",
        "--threads",
        "1",
        "--batch",
        "1,2",
        "--settings",
        "passive",
        "--point-time",
        "0.5",
        "-o",
        str(target),
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stdout.splitlines()
    assert lines[1].split() == ["threads", "\\", "batch", "1", "2"]
    assert lines[2].split()[0] == "1" and lines[2].count("passive") == 2
    assert f"saved {target}" in out.stdout
    loaded = load_profile(target)
    assert sorted((m.threads, m.batch, m.setting) for m in loaded.measurements) == [
        (1, 1, "passive"),
        (1, 2, "passive"),
    ]
    assert loaded.host is not None and loaded.host["usable_cores"] == detect_host().usable_cores


@pytest.mark.slow
def test_profile_without_output_saves_model_packrat_json_here_and_says_where(tmp_path: Path) -> None:
    """Regression (issue 9 #7): `profile mlp` measured for minutes and wrote no file, with no hint."""
    env = {**os.environ, "TQDM_DISABLE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "packrat_lab.cli", "profile", "mlp", "--threads", "1", "--batch", "1"]
        + ["--settings", "passive", "--point-time", "0.3"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    saved = tmp_path / "mlp.packrat.json"
    assert saved.is_file() and load_profile(saved).measurements
    assert f"saved {saved}" in out.stdout and "next: packrat-lab plan" in out.stdout


def test_default_output_name_is_file_safe() -> None:
    from packrat_lab.cli.profile_cmd import default_output

    assert default_output("mlp") == Path("mlp.packrat.json")
    assert default_output("/models/my net.pt") == Path("my-net.packrat.json")
    assert default_output("pkg.mod:build") == Path("pkg.mod-build.packrat.json")


@pytest.mark.slow
def test_a_torchscript_file_works_from_the_cli_with_sample_shape(tmp_path: Path) -> None:
    """Regression (issue 9 #9): `profile model.pt` failed with no flag to give the input shape."""
    import torch

    path = tmp_path / "lin.pt"
    module = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU())
    torch.jit.save(torch.jit.trace(module, torch.randn(2, 16)), str(path))
    base = [str(path), "--threads", "1", "--batch", "1", "--settings", "passive", "--point-time", "0.3"]
    missing = packrat_lab(*base, "-o", str(tmp_path / "x.packrat.json"))
    assert missing.returncode == 2 and "--sample-shape 3,224,224" in missing.stderr
    out = packrat_lab(*base, "--sample-shape", "16", "-o", str(tmp_path / "lin.packrat.json"))
    assert out.returncode == 0, out.stderr
    assert load_profile(tmp_path / "lin.packrat.json").measurements
