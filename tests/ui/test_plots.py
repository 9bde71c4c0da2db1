"""Plot builders: exact data from synthetic profiles, plans and pool samples; figures have the expected traces."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest

from packrat_lab.plan import Instance, Plan
from packrat_lab.plots import (
    core_map_info,
    plan_comparison_info,
    plan_map_info,
    plot_core_map,
    plot_plan_comparison,
    plot_plan_map,
    plot_settings_effect,
    plot_surface,
    plot_timeline,
    settings_effect_info,
    surface_info,
    timeline_info,
)
from packrat_lab.plots._style import log_ticks, tick_text
from packrat_lab.profiling.measurement import Measurement
from packrat_lab.profiling.table import Profile, profile_from_latencies

STEADY = tuple([10.0] * 20)  # n=20, IQR 0, not noisy
SPREAD = (5.0, 9.0, 13.0, 2.0, 20.0, 7.0)  # median 8 known only to about ±50 %: noisy at ±2 %


def _m(t: int, b: int, setting: str, samples: tuple[float, ...], precision: float = 0.5) -> Measurement:
    return Measurement(t, b, setting, samples, stop_reason="precision", target_precision=precision)


@pytest.fixture
def two_setting_profile() -> Profile:
    """2 threads × 2 batches; passive wins at (2,4) like the field notes' 27.6 ms vs 4.5 ms; (1,8) missing."""
    return Profile(
        "mlp",
        [
            _m(1, 4, "default", (4.0, 4.5, 4.5, 5.0, 5.5, 5.5, 6.0)),  # n ≥ 6: a 95 % median CI exists
            _m(1, 4, "passive", (6.0, 6.0, 6.0, 6.0, 6.0)),
            _m(2, 4, "default", (27.6,) * 8),
            _m(2, 4, "passive", (4.0, 4.5, 5.0, 4.5, 4.5, 4.5)),
            _m(2, 8, "default", SPREAD, precision=0.02),
        ],
    )


# ---- surface ---------------------------------------------------------------------------------
def test_surface_info_takes_the_fastest_setting_with_its_spread_and_n(two_setting_profile: Profile) -> None:
    info = surface_info(two_setting_profile)
    assert info.threads == (1, 2) and info.batches == (4, 8)
    assert info.latency_ms[0, 0] == pytest.approx(5.0) and info.setting[0, 0] == "default"
    assert info.latency_ms[1, 0] == pytest.approx(4.5) and info.setting[1, 0] == "passive"
    assert info.n[1, 0] == 6 and info.iqr_ms[1, 0] == pytest.approx(0.0)
    assert info.iqr_ms[0, 0] == pytest.approx(1.0)
    assert math.isnan(info.latency_ms[0, 1]) and info.n[0, 1] == 0 and info.setting[0, 1] == ""
    assert info.latency_ms[1, 1] == pytest.approx(8.0)
    assert info.noisy_points == [(2, 8)]


def test_surface_per_batch_normalisation_divides_by_the_best_thread_count(
    two_setting_profile: Profile,
) -> None:
    norm = surface_info(two_setting_profile).per_batch_normalised
    assert norm[0, 0] == pytest.approx(5.0 / 4.5) and norm[1, 0] == pytest.approx(1.0)
    assert math.isnan(norm[0, 1]) and norm[1, 1] == pytest.approx(1.0)


def test_surface_mean_statistic_is_used_when_asked() -> None:
    prof = Profile("m", [_m(1, 1, "default", (1.0, 1.0, 7.0))])
    assert surface_info(prof, statistic="mean").latency_ms[0, 0] == pytest.approx(3.0)
    assert surface_info(prof).latency_ms[0, 0] == pytest.approx(1.0)


def test_surface_heatmap_has_log_colour_hover_and_noisy_overlay(two_setting_profile: Profile) -> None:
    fig = plot_surface(surface_info(two_setting_profile))
    assert [t.type for t in fig.data] == ["heatmap", "scatter"]
    heat, noisy = fig.data
    assert heat.z[1][0] == pytest.approx(math.log10(4.5))
    assert heat.z[0][1] is None
    assert (
        "4.50 ms" in heat.text[1][0]
        and "IQR 0.00 ms · n=6" in heat.text[1][0]
        and "passive" in heat.text[1][0]
    )
    assert "noisy" in heat.text[1][1] and "not measured" in heat.text[0][1]
    assert list(noisy.x) == ["8"] and list(noisy.y) == [2]
    assert heat.colorbar.ticktext  # ms labels on a log scale
    assert "mlp" in fig.layout.title.text


def test_surface_without_noisy_points_has_no_overlay_and_linear_colour_is_raw_ms() -> None:
    prof = profile_from_latencies("toy", {(1, 1): 2.0, (1, 2): 3.0, (2, 1): 1.5, (2, 2): 2.5})
    fig = plot_surface(surface_info(prof), colour="linear")
    assert [t.type for t in fig.data] == ["heatmap"]
    assert fig.data[0].z[1][1] == pytest.approx(2.5)


def test_surface_3d_variant_and_per_batch_colour(two_setting_profile: Profile) -> None:
    fig = plot_surface(surface_info(two_setting_profile), kind="3d", colour="per-batch")
    assert [t.type for t in fig.data] == ["surface", "scatter3d"]
    assert fig.data[0].z[0][0] == pytest.approx(5.0 / 4.5)
    assert list(fig.data[1].z) == [pytest.approx(1.0)]
    assert "normalised per batch" in fig.layout.title.text
    log3d = plot_surface(surface_info(two_setting_profile), kind="3d")
    assert log3d.layout.scene.zaxis.ticktext == log3d.data[0].colorbar.ticktext  # ms labels, not log10 values


@pytest.mark.parametrize("kwargs", [{"kind": "contour"}, {"colour": "rainbow"}])
def test_surface_rejects_unknown_options(two_setting_profile: Profile, kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="valid"):
        plot_surface(surface_info(two_setting_profile), **kwargs)


def test_log_ticks_cover_the_range_with_1_2_5_steps() -> None:
    assert log_ticks(3.0, 60.0) == [5.0, 10.0, 20.0, 50.0]
    assert log_ticks(4.0, 4.5) == [4.0, 4.5]


# ---- runtime settings ------------------------------------------------------------------------
def test_settings_effect_ratio_matches_the_field_notes_example(two_setting_profile: Profile) -> None:
    info = settings_effect_info(two_setting_profile)
    assert info.baseline_ms[1, 0] == pytest.approx(27.6) and info.other_ms[1, 0] == pytest.approx(4.5)
    assert info.speedup[1, 0] == pytest.approx(27.6 / 4.5)
    assert info.speedup[0, 0] == pytest.approx(5.0 / 6.0)
    assert math.isnan(info.speedup[1, 1])  # passive never measured at (2, 8)
    fig = plot_settings_effect(info)
    assert [t.type for t in fig.data] == ["heatmap"]
    assert fig.data[0].text[1][0] == "6.1×" and fig.data[0].text[1][1] == ""
    assert "27.6 ms" in fig.data[0].hovertext[1][0] and "6.13× faster" in fig.data[0].hovertext[1][0]
    assert "1.20× slower" in fig.data[0].hovertext[0][0]
    assert fig.data[0].zmid == 0


def test_settings_effect_names_the_settings_a_profile_has() -> None:
    prof = profile_from_latencies("toy", {(1, 1): 2.0})
    with pytest.raises(ValueError, match=r"no measurements with setting 'passive'; measured: \['default'\]"):
        settings_effect_info(prof)


# ---- plan vs baselines -------------------------------------------------------------------------
def _plan(text: str, ms: float, name: str) -> Plan:
    return replace(Plan.parse(text), expected_latency_ms=ms, name=name)


@pytest.fixture
def plans_b8() -> list[Plan]:
    return [_plan("2x8x4", 100.0, "packrat"), _plan("1x16x8", 150.0, "fat"), _plan("8x1x1", 300.0, "thin")]


def test_plan_comparison_speedups_are_against_fat(plans_b8: list[Plan]) -> None:
    info = plan_comparison_info(plans_b8)
    assert (info.batch, info.cores, info.reference) == (8, 16, "fat")
    assert [b.label for b in info.bars] == ["packrat", "fat", "thin"]
    assert [b.config for b in info.bars] == ["⟨2,8,4⟩", "⟨1,16,8⟩", "⟨8,1,1⟩"]
    assert [b.speedup for b in info.bars] == [pytest.approx(1.5), pytest.approx(1.0), pytest.approx(0.5)]
    assert not info.has_measured
    fig = plot_plan_comparison(info)
    assert [t.type for t in fig.data] == ["bar"]
    assert list(fig.data[0].y) == [100.0, 150.0, 300.0]
    assert "⟨2,8,4⟩" in fig.data[0].x[0] and "1.50× vs fat" in fig.data[0].hovertext[0]


def test_plan_comparison_overlays_measured_bars_found_by_label_or_text(plans_b8: list[Plan]) -> None:
    info = plan_comparison_info(plans_b8, {"packrat": 120.0, "1x16x8": 160.0})
    assert [b.measured_ms for b in info.bars] == [120.0, 160.0, None]
    fig = plot_plan_comparison(info)
    assert [t.name for t in fig.data] == ["expected (from profile)", "measured (validate)"]
    assert list(fig.data[1].y) == [120.0, 160.0, None]


def test_plan_comparison_reads_a_validation_report(plans_b8: list[Plan]) -> None:
    @dataclass
    class Result:
        plan: Plan
        median_ms: float

    @dataclass
    class Report:
        results: list[Result]

    info = plan_comparison_info(plans_b8, Report([Result(plans_b8[2], 310.0)]))
    assert [b.measured_ms for b in info.bars] == [None, None, 310.0]


def test_plan_comparison_takes_a_mapping_and_rejects_mixed_batches() -> None:
    info = plan_comparison_info({"dp": _plan("2x1x4", 5.0, "x"), "fat": _plan("1x2x8", 10.0, "y")})
    assert [b.label for b in info.bars] == ["dp", "fat"] and info.bars[0].speedup == pytest.approx(2.0)
    with pytest.raises(ValueError, match=r"different batches \[4, 8\]"):
        plan_comparison_info([_plan("1x1x4", 1.0, "a"), _plan("1x1x8", 1.0, "b")])


# ---- plan map ----------------------------------------------------------------------------------
def test_plan_map_rows_sorted_by_batch_with_speedup_over_fat() -> None:
    best = [_plan("4x4x4", 50.0, "p16"), _plan("2x8x4", 40.0, "p8")]
    fat = [_plan("1x16x8", 60.0, "fat"), _plan("1x16x16", 100.0, "fat")]
    info = plan_map_info(best, fat)
    assert info.cores == 16
    assert [(r.batch, r.config, r.instances) for r in info.rows] == [(8, "⟨2,8,4⟩", 2), (16, "⟨4,4,4⟩", 4)]
    assert [r.speedup for r in info.rows] == [pytest.approx(1.5), pytest.approx(2.0)]
    fig = plot_plan_map(info)
    assert [t.name for t in fig.data] == ["2 instances", "4 instances"]
    assert list(fig.data[0].text) == ["⟨2,8,4⟩"] and list(fig.data[1].y) == [pytest.approx(2.0)]
    assert any(s.type == "line" and s.y0 == 1.0 for s in fig.layout.shapes)


def test_plan_map_without_fat_plots_latency() -> None:
    info = plan_map_info([_plan("1x2x1", 3.0, "a")], {1: float("inf")})
    assert info.rows[0].speedup is None
    fig = plot_plan_map(info)
    assert list(fig.data[0].y) == [3.0] and fig.layout.yaxis.type == "log"


# ---- core map ----------------------------------------------------------------------------------
def test_core_map_lays_unpinned_instances_out_contiguously_and_marks_idle() -> None:
    info = core_map_info("1x2x8+2x1x4", cores=6)
    assert [(c.core, c.instance) for c in info.cells] == [
        (0, 0),
        (1, 0),
        (2, 1),
        (3, 2),
        (4, None),
        (5, None),
    ]
    assert info.cells[0].label == "#1 ⟨t=2,b=8⟩" and info.idle == (4, 5)
    fig = plot_core_map(info)
    assert [t.name for t in fig.data] == ["#1 ⟨t=2,b=8⟩", "#2 ⟨t=1,b=4⟩", "#3 ⟨t=1,b=4⟩", "idle"]
    assert list(fig.data[0].x) == ["0", "1"] and list(fig.data[3].x) == ["4", "5"]


def test_core_map_uses_pinned_cores() -> None:
    plan = Plan((Instance(2, 4, cores=(5, 7)), Instance(1, 4, cores=(2,))))
    info = core_map_info(plan)
    assert [(c.core, c.instance) for c in info.cells] == [(2, 1), (5, 0), (7, 0)]
    assert core_map_info(plan, cores=[2, 3, 5, 7]).idle == (3,)


def test_core_map_rejects_a_plan_larger_than_the_cores() -> None:
    with pytest.raises(ValueError, match="needs 4 cores but only 2"):
        core_map_info("2x2x1", cores=2)


# ---- timeline ----------------------------------------------------------------------------------
@dataclass
class Sample:
    time: float
    p50_ms: float
    p99_ms: float
    throughput: float
    queue_depth: int
    estimated_batch: int


@dataclass
class Ev:
    time: float
    kind: str
    plan: str
    detail: dict[str, Any]


def _samples(n: int) -> list[Sample]:
    return [Sample(1000.0 + k, 4.0 + k, 9.0 + k, 50.0, k % 3, 4) for k in range(n)]


def test_timeline_series_are_relative_to_the_first_sample() -> None:
    events = [
        Ev(1003.5, "passive-start", "2x1x4", {}),
        Ev(1004.0, "switch", "2x1x4", {}),
        Ev(1006.0, "drained", "1x2x8", {}),
    ]
    info = timeline_info(_samples(8), events)
    assert info.t0 == 1000.0 and info.time == tuple(float(k) for k in range(8))
    assert info.p50_ms[:3] == (4.0, 5.0, 6.0) and info.queue_depth[:4] == (0.0, 1.0, 2.0, 0.0)
    assert [(m.time, m.kind, m.label) for m in info.markers] == [
        (3.5, "passive-start", "passive-start 2x1x4"),
        (4.0, "switch", "switch 2x1x4"),
        (6.0, "drained", "drained 1x2x8"),
    ]


def test_timeline_window_keeps_the_last_seconds_and_kinds_filter_events() -> None:
    events = [Ev(1001.0, "switch", "a", {}), Ev(1008.0, "warm", "b", {}), Ev(1009.0, "drained", "b", {})]
    info = timeline_info(_samples(10), events, window_s=3.0, kinds=("passive-start", "switch", "drained"))
    assert info.t0 == 1006.0 and info.time == (0.0, 1.0, 2.0, 3.0)
    assert [m.kind for m in info.markers] == ["drained"]


def test_timeline_reads_dict_samples_with_alias_names_and_gaps() -> None:
    rows = [{"timestamp": 5.0, "p50": 1.0, "rps": 10.0}, {"t": 6.0, "p50_ms": float("nan"), "queue": 2}]
    info = timeline_info(rows)
    assert info.p50_ms == (1.0, None) and info.throughput == (10.0, None) and info.queue_depth == (None, 2.0)
    with pytest.raises(ValueError, match="has no time"):
        timeline_info([{"p50_ms": 1.0}])


def test_timeline_figure_has_five_series_and_a_marker_per_event() -> None:
    events = [
        Ev(1002.0, "passive-start", "x", {}),
        Ev(1003.0, "switch", "x", {}),
        Ev(1004.0, "drained", "y", {}),
    ]
    fig = plot_timeline(timeline_info(_samples(6), events))
    names = [t.name for t in fig.data]
    assert names[:5] == ["p50", "p99", "throughput", "queue depth", "estimated B"]
    assert names[5:8] == ["passive-start", "switch", "drained"]
    vlines = [s for s in fig.layout.shapes if s.x0 == s.x1]
    assert sorted({s.x0 for s in vlines}) == [2.0, 3.0, 4.0]
    assert len(vlines) == 9  # each marker crosses all three panels
    assert list(fig.data[-1].hovertext) == [
        "t=2.0 s: passive-start x",
        "t=3.0 s: switch x",
        "t=4.0 s: drained y",
    ]


def test_empty_timeline_draws_without_markers() -> None:
    fig = plot_timeline(timeline_info([]))
    assert len(fig.data) == 5 and not fig.layout.shapes
    assert np.asarray(fig.data[0].x).size == 0


def test_timeline_default_markers_skip_bookkeeping_events_and_none_keeps_all() -> None:
    events = [Ev(1001.0, "start", "a", {}), Ev(1002.0, "auto-off", "a", {}), Ev(1003.0, "switch", "b", {})]
    assert [m.kind for m in timeline_info(_samples(5), events).markers] == ["switch"]
    assert len(timeline_info(_samples(5), events, kinds=None).markers) == 3


def test_plot_ticks_are_measured_values_with_few_digits() -> None:
    """Regression (issue 9 #8): threads 1.2/1.4 in 3-D, colour bar '9.45634', one-cell tick '2.07147'."""
    prof = profile_from_latencies("toy", {(1, 1): 2.07147, (1, 2): 3.0, (2, 1): 1.5, (2, 2): 9.45634})
    fig3d = plot_surface(surface_info(prof), kind="3d")
    assert list(fig3d.layout.scene.yaxis.tickvals) == [1, 2]
    assert list(fig3d.layout.scene.xaxis.tickvals) == ["1", "2"]
    one = plot_surface(surface_info(profile_from_latencies("one", {(1, 1): 2.07147})))
    assert list(one.data[0].colorbar.ticktext) == ["2.07"]
    assert plot_surface(surface_info(prof), colour="linear").data[0].colorbar.tickformat == ".3g"
    assert tick_text([9.45634, 1500.0]) == ["9.46", "1.5k"]


def test_timeline_hover_names_units() -> None:
    info = timeline_info([{"time": 0.0, "p50_ms": 1.0, "p99_ms": 121.0, "throughput": 9.0}])
    fig = plot_timeline(info)
    assert " ms" in fig.data[1].hovertemplate and "req/s" in fig.data[2].hovertemplate


def test_show_figure_clears_keys_the_new_trace_lacks() -> None:
    """Regression (issue 9 #8): the core map kept a stale '#2' label after B changed."""
    from packrat_lab.ui.figures import new_widget, show_figure

    widget = new_widget()
    show_figure(widget, plot_core_map(core_map_info("2x1x1", cores=2)))
    assert list(widget.data[1].text) == ["#2"]
    show_figure(widget, plot_core_map(core_map_info("1x1x2", cores=2)))  # one instance + an idle core
    assert widget.data[1].name == "idle" and widget.data[1].text is None
