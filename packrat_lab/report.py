"""Standalone HTML report of a profile: surface, settings effect, plan vs baselines, plan map, noisy points.

plotly.js is embedded inline from the installed plotly package, so the file opens offline.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packrat_lab.errors import PackratError

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from packrat_lab.plan import Plan
    from packrat_lab.profiling.table import Profile

__all__ = ["ReportSection", "report_html", "report_sections", "write_report"]

_CSS = """
body{font-family:Inter,Segoe UI,Helvetica,Arial,sans-serif;color:#222;max-width:1100px;margin:24px auto;padding:0 16px}
h1{font-size:24px;margin-bottom:4px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;font-size:13px} .note{color:#555;font-size:13px;margin:4px 0 8px}
table{border-collapse:collapse;font-size:13px;margin:8px 0} th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left} .warn{color:#8a4b00}
"""


@dataclass(frozen=True)
class ReportSection:
    """One part of the report: a heading, a note saying what to look at, a figure and/or an HTML table."""

    title: str
    note: str
    figure: go.Figure | None = None
    table_html: str = ""


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A small HTML table; the first `left` columns are left-aligned text."""
    head = "".join(
        f'<th class="{"l" if k < left else ""}">{html.escape(h)}</th>' for k, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"l" if k < left else ""}">{html.escape(c)}</td>' for k, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _ms(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.2f}"


def _plan_sections(profile: Profile, cores: int, batch: int, measured: Any) -> list[ReportSection]:
    """Plan vs baselines at B, core map of the plan, and the plan map over B (needs the optimizer)."""
    from packrat_lab.comparison import compare_plans
    from packrat_lab.optimizer import baselines, solve_table
    from packrat_lab.plots import (
        core_map_info,
        plan_comparison_info,
        plan_map_info,
        plot_core_map,
        plot_plan_comparison,
        plot_plan_map,
    )

    compared = compare_plans(profile, cores, batch)
    plan = compared[0]
    plans: dict[str, Plan] = {p.name: p for p in compared}
    from packrat_lab.plan_confidence import plan_confidence

    info = plan_comparison_info(plans, measured)
    fat_measured = next((b.measured_ms for b in info.bars if b.label == "fat"), None)
    rows = [
        [
            b.label,
            b.config,
            _ms(b.expected_ms),
            "—" if b.speedup is None else f"{b.speedup:.2f}×",
            _ms(b.measured_ms),
            "—" if not (fat_measured and b.measured_ms) else f"{fat_measured / b.measured_ms:.2f}×",
        ]
        for b in info.bars
    ]
    warning = plan_confidence(profile, plan, plans.get("fat")).warning()
    caution = f" ⚠ The {plan.name} plan is {warning}." if warning else ""
    sections = [
        ReportSection(
            f"Plan vs baselines at B={batch} on {cores} cores",
            "Expected batch latency of the optimizer's plan against one fat instance, thin instances and the best "
            "homogeneous split. Expected values come from isolated profile points; measured ones from running the "
            "plan (validate). Instances that run together share caches and memory bandwidth, so validate before "
            "trusting small gaps." + caution,
            plot_plan_comparison(info),
            _table(
                ["plan", "⟨i,t,b⟩", "expected ms", "expected vs fat", "measured ms", "measured vs fat"],
                rows,
                left=2,
            ),
        ),
        ReportSection(
            "Core map",
            f"Which cores each instance of {plan} would hold (contiguous layout; the pool pins real core ids).",
            plot_core_map(core_map_info(plan, cores=cores)),
        ),
    ]
    best = solve_table(profile, cores, batch).best_by_batch(cores)
    fat: dict[int, float] = {}
    for p in best:
        found = baselines(profile, cores, p.total_batch, skip_missing=True).get("fat")
        if found is not None and found.expected_latency_ms is not None:
            fat[p.total_batch] = found.expected_latency_ms
    sections.append(
        ReportSection(
            f"Plan map on {cores} cores",
            "The ⟨instances, threads, batch⟩ the optimizer picks at each total batch B, as speedup over one fat "
            "instance (bars above the dotted line beat it). Hover for latencies.",
            plot_plan_map(plan_map_info(best, fat)),
        )
    )
    return sections


def report_sections(
    profile: Profile,
    *,
    cores: int | None = None,
    batch: int | None = None,
    measured: Mapping[str, float] | Any = None,
) -> list[ReportSection]:
    """Every section of the report, in order; plan sections say why when no plan can be made."""
    from packrat_lab.plots import plot_settings_effect, plot_surface, settings_effect_info, surface_info

    if not profile.measurements:
        msg = f"profile of {profile.model} has no measurements; example: packrat-lab profile mlp -o mlp.json"
        raise ValueError(msg)
    cores = cores or profile.max_threads
    batch = batch or max(profile.batches)
    sections = [
        ReportSection(
            "Latency surface",
            "Median latency of one isolated instance per (threads, batch), best runtime setting per point "
            "(log colour). Look for where adding threads stops helping: that is where several thinner instances win. "
            "× marks noisy points.",
            plot_surface(surface_info(profile)),
        )
    ]
    measured_settings = sorted({m.setting for m in profile.measurements})
    if "default" in measured_settings and len(measured_settings) > 1:
        other = (
            "passive"
            if "passive" in measured_settings
            else next(s for s in measured_settings if s != "default")
        )
        sections.append(
            ReportSection(
                "Runtime setting effect",
                f"Default latency divided by {other} latency at each point: above 1× the {other} setting is faster. "
                "The threading runtime's wait policy can matter more than the thread count.",
                plot_settings_effect(settings_effect_info(profile, other=other)),
            )
        )
    try:
        sections.extend(_plan_sections(profile, cores, batch, measured))
    except (PackratError, ValueError) as exc:
        sections.append(ReportSection("Plans", f"No plan for B={batch} on {cores} cores: {exc}"))
    sections.append(_noisy_section(profile))
    return sections


def _noisy_section(profile: Profile) -> ReportSection:
    """A table of points whose median is not known to the target precision."""
    noisy = sorted(profile.noisy_points, key=lambda m: (m.threads, m.batch, m.setting))
    if all(m.stop_reason == "summary" for m in profile.measurements):
        return ReportSection(
            "Noisy points", "Unknown: this profile holds one summary latency per point, no raw samples."
        )
    if not noisy:
        return ReportSection("Noisy points", "None: every point's median is known to its target precision.")
    rows = [
        [m.setting, str(m.threads), str(m.batch), _ms(m.median), _ms(m.iqr), str(m.n), "; ".join(m.warnings)]
        for m in noisy
    ]
    return ReportSection(
        f"Noisy points ({len(noisy)})",
        "Re-profile these with a longer point time, or on a quieter machine, before trusting plans that use them.",
        None,
        _table(["setting", "threads", "batch", "median ms", "IQR ms", "n", "warning"], rows),
    )


def _header(profile: Profile, title: str) -> str:
    """Title and what was measured where."""
    host = profile.host or {}
    where = ", ".join(
        f"{k} {host[k]}" for k in ("cpu_model", "usable_cores", "torch") if host.get(k) is not None
    ) or str(profile.meta.get("source", "host unknown"))
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    points = len(profile.measurements)
    return (
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="meta">{points} measured points · threads {profile.threads[0]}–{profile.threads[-1]} · '
        f"batches {', '.join(str(b) for b in profile.batches)} · {html.escape(where)} · generated {stamp}</p>"
    )


def report_html(
    profile: Profile,
    *,
    cores: int | None = None,
    batch: int | None = None,
    measured: Mapping[str, float] | Any = None,
    title: str | None = None,
) -> str:
    """The whole report as one self-contained HTML page (plotly.js inline, works offline)."""
    from plotly.offline import get_plotlyjs

    title = title or f"packrat_lab report: {profile.model}"
    sections = report_sections(profile, cores=cores, batch=batch, measured=measured)
    parts = [_header(profile, title)]
    for k, section in enumerate(sections):
        parts.append(f'<h2>{html.escape(section.title)}</h2><p class="note">{html.escape(section.note)}</p>')
        if section.figure is not None:
            parts.append(
                section.figure.to_html(
                    full_html=False,
                    include_plotlyjs=False,
                    div_id=f"fig{k}",
                    config={"displaylogo": False, "responsive": True},
                )
            )
        parts.append(section.table_html)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        + "\n".join(parts)
        + "</body></html>"
    )


def write_report(
    profile: Profile,
    path: str | Path,
    *,
    cores: int | None = None,
    batch: int | None = None,
    measured: Mapping[str, float] | Any = None,
    title: str | None = None,
) -> Path:
    """Write report_html(...) to `path` and return it."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        msg = f"report path {str(path)!r} should end in .html; example: report.html"
        raise ValueError(msg)
    text = report_html(profile, cores=cores, batch=batch, measured=measured, title=title)
    path.write_text(text, encoding="utf-8")
    return path
