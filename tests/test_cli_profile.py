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
