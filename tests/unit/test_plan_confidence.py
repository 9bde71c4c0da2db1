"""Plans say how sure they are: noisy points and CI overlap with fat are warned about everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from packrat_lab.comparison import compare_plans
from packrat_lab.plan_confidence import plan_confidence
from packrat_lab.profiling.measurement import Measurement
from packrat_lab.profiling.table import Profile


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "packrat_lab.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def make_profile(spread: float, *, n: int = 40, thin_gain: float = 0.5) -> Profile:
    """Two cores; thin instances look `thin_gain` faster than fat; samples spread by ±spread relative."""
    rng = np.random.default_rng(0)
    profile = Profile("toy")
    for t in (1, 2):
        for b in (1, 2, 4):
            centre = 4.0 * b if t == 1 else 4.0 * b / (2 * thin_gain)  # fat (t=2) barely helps
            samples = centre * (1 + spread * rng.uniform(-1, 1, size=n))
            profile.add(Measurement(t, b, "default", tuple(float(s) for s in samples), stop_reason="cap"))
    return profile


def test_a_clean_profile_gives_no_warning() -> None:
    profile = make_profile(0.001, thin_gain=0.6)
    plans = compare_plans(profile, 2, 4)
    fat = next(p for p in plans if p.name == "fat")
    assert plans[0].text != fat.text
    assert plan_confidence(profile, plans[0], fat).warning() is None


def test_noisy_points_and_ci_overlap_are_named() -> None:
    """Regression (issue 9 #6): every point was noisy and `plan` still promised 3.18× without a word."""
    profile = make_profile(0.2, n=6, thin_gain=0.85)
    plans = compare_plans(profile, 2, 4)
    fat = next(p for p in plans if p.name == "fat")
    assert plans[0].text != fat.text  # thin instances look faster than fat ...
    confidence = plan_confidence(profile, plans[0], fat)
    warning = confidence.warning()
    assert warning is not None
    assert "noisy profile point" in warning and "validate" in warning
    assert confidence.within_ci and "confidence intervals" in warning  # ... by less than the noise


def test_plan_command_prints_the_warning_and_labels_expected(tmp_path: Path) -> None:
    path = make_profile(0.2, n=6, thin_gain=0.85).save(tmp_path / "noisy.packrat.json")
    out = cli("plan", str(path), "--cores", "2", "--batch", "4")
    assert out.returncode == 0, out.stderr
    assert "expected from isolated profile points, not measured" in out.stdout
    assert "expected vs fat" in out.stdout
    assert "warning:" in out.stdout and "validate" in out.stdout
    data = json.loads(cli("plan", str(path), "--cores", "2", "--batch", "4", "--format", "json").stdout)
    assert data["confidence"]["noisy_points"] and "validate" in data["confidence"]["warning"]


def test_cores_beyond_the_profile_are_a_usage_error(tmp_path: Path) -> None:
    """Regression (issue 9 #6): `plan --cores 8` on a 2-core profile returned ⟨4,1,1⟩ with no warning."""
    path = make_profile(0.001).save(tmp_path / "two.packrat.json")
    out = cli("plan", str(path), "--cores", "8", "--batch", "4")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "--cores 8 is more than the 2 cores this profile measured" in out.stderr
    assert "example: --cores 2" in out.stderr


@pytest.mark.parametrize("flag", ["--version"])
def test_version_flag(flag: str) -> None:
    from packrat_lab import __version__

    out = cli(flag)
    assert out.returncode == 0 and out.stdout.strip() == f"packrat-lab {__version__}"
