"""Profile files: JSON round trip, the paper's CSV, malformed files, host warnings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from packrat_lab.errors import ProfileError, ProfileMissingPointError
from packrat_lab.profiling.measurement import Measurement, median_confidence_interval
from packrat_lab.profiling.table import HostMismatchWarning, Profile, load_profile


def make_profile() -> Profile:
    p = Profile("mlp", host={"cpu_model": "x", "usable_cores": 2, "machine": "x86_64", "torch": "0"})
    p.add(Measurement(1, 4, "default", (5.0, 5.1, 4.9, 5.0, 5.2)))
    p.add(Measurement(2, 4, "default", (27.0, 28.0, 27.5, 27.6, 27.7)))
    p.add(Measurement(2, 4, "passive", (4.5, 4.4, 4.6, 4.5, 4.5)))
    return p


def test_grid_takes_best_setting_per_point() -> None:
    grid = make_profile().grid()
    assert grid.threads.tolist() == [1, 2] and grid.batches.tolist() == [4]
    assert grid.lookup(2, 4) == (4.5, "passive")
    assert grid.lookup(1, 4) == (5.0, "default")
    with pytest.raises(ProfileMissingPointError, match="no point threads=1 batch=8"):
        grid.lookup(1, 8)


def test_json_round_trip_keeps_samples(tmp_path: Path) -> None:
    p = make_profile()
    path = p.save(tmp_path / "mlp.packrat.json")
    with pytest.warns(HostMismatchWarning, match="measured on another host"):
        again = load_profile(path)
    assert [m.samples_ms for m in again.measurements] == [m.samples_ms for m in p.measurements]
    assert again.settings["passive"].env_dict == {"OMP_WAIT_POLICY": "PASSIVE"}


def test_paper_csv_loads(reference_dir: Path) -> None:
    p = load_profile(reference_dir / "packrat-paper-bert.csv")
    assert p.model == "bert"
    assert p.threads == list(range(1, 17))
    assert p.batches == [2**k for k in range(11)]
    assert p.grid().lookup(1, 1)[0] == pytest.approx(120.2486)
    assert not p.noisy_points


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "is empty"),
        ('{"format": "packrat-lab-profile/1", "measurements": [', "not valid JSON"),
        ('{"format": "other"}', "is not 'packrat-lab-profile/2'"),
        ("threads,batch\n1,1\n", "lacks columns"),
        ("threads,batch,latency_ms\n1,1,abc\n", "line 2"),
        ("threads,batch,latency_ms\n1,0,3.0\n", "must be positive"),
        ("threads,batch,latency_ms\n", "no rows"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ProfileError, match=match) as info:
        load_profile(path)
    assert "\n" not in str(info.value)


def test_missing_file_names_path(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile(tmp_path / "nope.json")


def test_measurement_statistics_and_noise() -> None:
    steady = Measurement(1, 1, "default", tuple([10.0] * 50 + [10.1] * 50))
    assert steady.median == pytest.approx(10.05)
    assert not steady.noisy
    spread = Measurement(1, 1, "default", tuple(float(x) for x in range(1, 21)))
    assert spread.noisy and spread.warnings
    lo, hi = median_confidence_interval(list(range(1, 101)))
    assert lo < 50.5 < hi
    assert math.isinf(Measurement(1, 1, "d", (0.0,)).relative_precision)


def test_json_measurement_without_samples_is_malformed(tmp_path: Path) -> None:
    data = make_profile().to_dict()
    data["measurements"][0]["samples_ms"] = []
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="malformed measurement"):
        load_profile(path, check_host=False)


def test_a_saved_measurement_without_samples_is_refused_naming_it() -> None:
    from packrat_lab.profiling.corun import CoRunMeasurement

    with pytest.raises(ValueError, match=r"^measurement at threads=2 batch=4 has no samples$"):
        Measurement.from_dict({"threads": 2, "batch": 4, "samples_ms": []})
    with pytest.raises(ValueError, match=r"^co-run measurement of '2x1x4' has no samples$"):
        CoRunMeasurement.from_dict({"config": "1x4", "plan": "2x1x4", "batch": 4, "samples_ms": []})
    again = CoRunMeasurement("1x4", "2x1x4", 4, (1.0, 3.0), 2.0)
    assert CoRunMeasurement.from_dict(again.to_dict()) == again
