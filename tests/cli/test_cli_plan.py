"""`packrat-lab plan` as a user runs it: real subprocess, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "packrat_lab.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,  # `plan --measure` starts real pools: minutes on a busy 2-core host
        check=False,
    )


def write_csv(path: Path, rows: list[tuple[int, int, float]]) -> Path:
    path.write_text("threads,batch,latency_ms\n" + "".join(f"{t},{b},{v}\n" for t, b, v in rows))
    return path


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    rows = [(t, b, 10.0 * b / t + 2.0 * t) for t in (1, 2, 3, 4) for b in (1, 2, 4, 8)]
    return write_csv(tmp_path / "small.csv", rows)


def test_json_output_has_documented_shape(small_csv: Path) -> None:
    result = cli("plan", str(small_csv), "--cores", "4", "--batch", "8", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert sum(g["count"] * g["batch"] for g in data["instances"]) == 8
    assert sum(g["count"] * g["threads"] for g in data["instances"]) <= 4
    assert data["expected_latency_ms"] <= data["baselines"]["fat"]["expected_latency_ms"]


def test_table_output_lists_baselines(small_csv: Path) -> None:
    result = cli("plan", str(small_csv), "--cores", "4", "--batch", "8")
    assert result.returncode == 0, result.stderr
    for name in ("packrat", "fat", "thin", "homogeneous"):
        assert name in result.stdout


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("batch", ["0", "-3", "eight"])
def test_bad_batch(small_csv: Path, batch: str) -> None:
    line = one_line_error(cli("plan", str(small_csv), "--cores", "4", "--batch", batch))
    assert batch in line and "example" in line


def test_truncated_profile(tmp_path: Path) -> None:
    path = tmp_path / "cut.packrat.json"
    path.write_text('{"format": "packrat-lab-profile/1", "measurements": [{"threads": 1,')
    line = one_line_error(cli("plan", str(path), "--cores", "2", "--batch", "4"))
    assert "not valid JSON" in line and str(path) in line


def test_profile_missing_the_points_a_plan_needs(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "only4.csv", [(1, 4, 5.0), (2, 4, 3.0)])
    line = one_line_error(cli("plan", str(path), "--cores", "2", "--batch", "3"))
    assert "3" in line


def test_missing_file(tmp_path: Path) -> None:
    line = one_line_error(cli("plan", str(tmp_path / "none.csv"), "--cores", "2", "--batch", "4"))
    assert "none.csv" in line


def test_help_for_every_command() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("profile", "plan", "validate"):
        sub = cli(command, "--help")
        assert sub.returncode == 0 and "usage:" in sub.stdout


def test_measure_needs_a_profile_that_records_its_model(small_csv: Path) -> None:
    result = cli("plan", str(small_csv), "--cores", "2", "--batch", "4", "--measure", "2")
    assert result.returncode == 2
    assert "--measure needs a profile that records its model" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_measure_runs_the_best_plans_and_caches_them_in_the_profile(tmp_path: Path) -> None:
    import packrat_lab

    path = tmp_path / "mlp.packrat.json"
    packrat_lab.profile("mlp", threads=[1, 2], batches=[1, 2], point_time_s=0.3, warmup=1).save(path)
    result = cli("plan", str(path), "--cores", "2", "--batch", "2", "--measure", "2", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    measured = data["measured"]
    assert 2 <= len(measured) <= 3 and all(row["measured_ms"] > 0 for row in measured)
    assert data["plan"] == min(measured, key=lambda r: r["measured_ms"])["plan"]
    cached = json.loads(path.read_text())["corun"]
    assert {row["config"] for row in measured} == {c["config"] for c in cached}
    again = cli("plan", str(path), "--cores", "2", "--batch", "2", "--format", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["plan"] == data["plan"]  # a later plan uses the cached measurements
