"""The standalone HTML report and the `report` / `demo` commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from packrat_lab.cli import main
from packrat_lab.profiling.measurement import Measurement
from packrat_lab.profiling.table import Profile, profile_from_latencies
from packrat_lab.report import report_html, report_sections, write_report


def _synthetic() -> Profile:
    """A 4-core profile where two 2-thread instances beat one 4-thread instance at B=8."""
    lat = {
        (1, 1): 4.0,
        (1, 2): 7.0,
        (1, 4): 13.0,
        (1, 8): 25.0,
        (2, 1): 2.5,
        (2, 2): 4.0,
        (2, 4): 7.0,
        (2, 8): 13.0,
    }
    lat.update(
        {
            (3, 1): 2.2,
            (3, 2): 3.5,
            (3, 4): 6.0,
            (3, 8): 11.0,
            (4, 1): 2.0,
            (4, 2): 3.2,
            (4, 4): 5.5,
            (4, 8): 10.0,
        }
    )
    return profile_from_latencies("toy", lat)


def _titles(profile: Profile, **kwargs: object) -> list[str]:
    return [s.title for s in report_sections(profile, **kwargs)]  # type: ignore[arg-type]


def test_sections_for_a_one_setting_profile_skip_the_settings_effect() -> None:
    assert _titles(_synthetic(), cores=4, batch=8) == [
        "Latency surface",
        "Plan vs baselines at B=8 on 4 cores",
        "Core map",
        "Plan map on 4 cores",
        "Noisy points",
    ]


def test_plan_section_compares_the_dp_plan_with_baselines_and_measured_values() -> None:
    sections = report_sections(_synthetic(), cores=4, batch=8, measured={"packrat": 8.0, "fat": 10.5})
    plans = sections[1]
    bars = plans.figure.data  # type: ignore[union-attr]
    assert [t.name for t in bars] == ["expected (from profile)", "measured (validate)"]
    # expected and measured each with their own speedup column (issue 9 #6: the report showed the expected
    # 1.43× beside measured values while the CLI printed the measured speedup)
    assert (
        '<td class="l">packrat</td><td class="l">⟨2,2,4⟩</td><td class="">7.00</td><td class="">1.43×</td>'
        '<td class="">8.00</td><td class="">1.31×</td>' in plans.table_html
    )  # expected 10 ms fat / 7 ms plan; measured 10.5 / 8.0
    assert "expected vs fat" in plans.table_html and "measured vs fat" in plans.table_html
    assert "⟨1,4,8⟩" in plans.table_html


def test_defaults_are_the_largest_thread_count_and_batch() -> None:
    assert "Plan vs baselines at B=8 on 4 cores" in _titles(_synthetic())


def test_a_summary_only_profile_does_not_claim_its_points_are_precise() -> None:
    assert report_sections(_synthetic(), cores=4, batch=8)[-1].note.startswith(
        "Unknown: this profile holds one summary"
    )


def test_an_unservable_batch_says_why_instead_of_failing() -> None:
    prof = profile_from_latencies("toy", {(1, 4): 2.0, (2, 4): 1.5})
    sections = report_sections(prof, cores=2, batch=3)
    plans = next(s for s in sections if s.title == "Plans")
    assert plans.note.startswith("No plan for B=3 on 2 cores:") and plans.figure is None


def test_two_settings_add_the_settings_effect_and_noisy_points_are_tabled() -> None:
    steady = tuple([5.0] * 30)
    prof = Profile(
        "mlp",
        [
            Measurement(1, 1, "default", steady, stop_reason="precision"),
            Measurement(1, 1, "passive", (4.0, 9.0, 2.0, 12.0, 6.0), stop_reason="time-cap"),
        ],
    )
    sections = report_sections(prof, cores=1, batch=1)
    assert [s.title for s in sections][:2] == ["Latency surface", "Runtime setting effect"]
    noisy = sections[-1]
    assert noisy.title == "Noisy points (1)"
    assert '<td class="l">passive</td>' in noisy.table_html and "wider than ±2%" in noisy.table_html


def test_html_is_standalone_with_plotly_inline_and_one_div_per_figure(tmp_path: Path) -> None:
    text = report_html(_synthetic(), cores=4, batch=8, title="My <report>")
    assert text.startswith("<!DOCTYPE html>") and "<title>My &lt;report&gt;</title>" in text
    assert re.search(r"<script[^>]*\bsrc=", text) is None  # nothing fetched: works offline
    assert len(text) > 1_000_000  # plotly.js itself is embedded
    assert len(re.findall(r'<div id="fig\d+"', text)) == 4  # surface, comparison, core map, plan map
    path = write_report(_synthetic(), tmp_path / "r.html")
    assert path.read_text(encoding="utf-8").count("Plotly.newPlot") == 4


def test_write_report_rejects_a_non_html_path_and_an_empty_profile(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"should end in \.html; example: report\.html"):
        write_report(_synthetic(), tmp_path / "r.txt")
    with pytest.raises(ValueError, match="has no measurements"):
        report_html(Profile("empty"))


def test_report_of_the_paper_bert_profile_shows_its_table_2_plan(reference_dir: Path) -> None:
    from packrat_lab.profiling.table import load_profile

    sections = report_sections(load_profile(reference_dir / "packrat-paper-bert.csv"), cores=16, batch=64)
    assert '<td class="l">packrat</td><td class="l">⟨4,4,16⟩</td>' in sections[1].table_html


def test_report_command_writes_the_file_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _synthetic().save(tmp_path / "toy.json")
    out = tmp_path / "toy.html"
    assert main(["report", str(src), "--cores", "4", "--batch", "8", "-o", str(out)]) == 0
    assert out.exists() and f"wrote {out}" in capsys.readouterr().out


def test_report_command_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "missing.json"), "-o", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("packrat-lab report: error: cannot read profile") and "\n" not in err


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_demo_profiles_plans_validates_and_writes_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "demo",
            "--out",
            str(tmp_path),
            "--cores",
            "1",
            "--batch",
            "2",
            "--plan-batch",
            "2,4",
            "--point-time",
            "0.3",
            "--settings",
            "passive",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert (tmp_path / "profile.packrat.json").exists() and (tmp_path / "report.html").exists()
    assert "T=1 cores, B=2" in out and "B=4: no plan" in out  # one core cannot serve 4 with b=2 measured
    assert "| packrat | ⟨1,1,2⟩ |" in out  # validated for real
    assert f"wrote {(tmp_path / 'report.html').resolve()}" in out
