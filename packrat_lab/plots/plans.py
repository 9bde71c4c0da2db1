"""The DP plan against fat, thin and homogeneous baselines, and which ⟨i,t,b⟩ wins at each B."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packrat_lab.plan import Plan
from packrat_lab.plots._style import apply_style, colour, fmt_ms, hover

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "PlanBar",
    "PlanComparisonInfo",
    "PlanMapInfo",
    "PlanMapRow",
    "plan_comparison_info",
    "plan_map_info",
    "plot_plan_comparison",
    "plot_plan_map",
]

PlansArg = Mapping[str, Plan] | Sequence[Plan]
# {label or plan text or Plan: ms}, or a ValidationReport from packrat_lab.validate
MeasuredArg = Mapping[str, float] | Mapping[Plan, float] | Any | None


@dataclass(frozen=True)
class PlanBar:
    """One plan's bar: its label, ⟨i,t,b⟩ form, expected and (optionally) measured latency."""

    label: str
    config: str
    expected_ms: float | None
    measured_ms: float | None = None
    speedup: float | None = None  # reference expected / this expected


@dataclass(frozen=True)
class PlanComparisonInfo:
    """Plans that serve the same batch B on the same T cores, side by side."""

    batch: int
    cores: int
    reference: str
    bars: tuple[PlanBar, ...]

    @property
    def has_measured(self) -> bool:
        """True when at least one plan was measured for real (draw expected vs actual)."""
        return any(b.measured_ms is not None for b in self.bars)


def _labelled(plans: PlansArg) -> list[tuple[str, Plan]]:
    """(label, plan) pairs: mapping keys, else each plan's name (made unique)."""
    pairs = list(plans.items()) if isinstance(plans, Mapping) else [(p.name, p) for p in plans]
    seen: dict[str, int] = {}
    out = []
    for label, plan in pairs:
        seen[label] = seen.get(label, 0) + 1
        out.append((label if seen[label] == 1 else f"{label} {seen[label]}", Plan.coerce(plan)))
    return out


def _measured_map(measured: Any) -> Mapping[Any, float] | None:
    """A validation report (anything with `.results` of plan + median_ms) becomes {plan name and text: median}."""
    results = getattr(measured, "results", None)
    if results is not None:
        found = {r.plan.text: float(r.median_ms) for r in results}
        found.update({r.plan.name: float(r.median_ms) for r in results})
        return found
    return measured  # type: ignore[no-any-return]


def _measured_for(label: str, plan: Plan, measured: Mapping[Any, float] | None) -> float | None:
    """Look a measured latency up by label, by plan text, or by the plan itself."""
    if not measured:
        return None
    for key in (label, plan.text, plan):
        value = measured.get(key)
        if value is not None:
            return float(value)
    return None


def plan_comparison_info(
    plans: PlansArg, measured: MeasuredArg = None, *, reference: str = "fat"
) -> PlanComparisonInfo:
    """Bars for plans serving one B; speedups are against the `reference` label (e.g. 'fat')."""
    pairs = _labelled(plans)
    if not pairs:
        msg = "plan_comparison_info needs at least one plan; example: {'packrat': plan, 'fat': fat}"
        raise ValueError(msg)
    batches = {p.total_batch for _, p in pairs}
    if len(batches) != 1:
        msg = f"plans serve different batches {sorted(batches)}; compare plans for one B, e.g. all with total batch {max(batches)}"
        raise ValueError(msg)
    found = _measured_map(measured)
    ref = dict(pairs).get(reference)
    ref_ms = ref.expected_latency_ms if ref is not None else None
    bars = []
    for label, plan in pairs:
        exp = plan.expected_latency_ms
        speedup = ref_ms / exp if ref_ms and exp else None
        bars.append(PlanBar(label, str(plan), exp, _measured_for(label, plan, found), speedup))
    cores = max(p.total_threads for _, p in pairs)
    return PlanComparisonInfo(batches.pop(), cores, reference, tuple(bars))


def plot_plan_comparison(info: PlanComparisonInfo, *, title: str | None = None) -> go.Figure:
    """Bars of expected latency per plan; measured bars beside them when validated (expected vs actual)."""
    import plotly.graph_objects as go

    xs = [f"<b>{b.label}</b><br>{b.config}" for b in info.bars]
    hovers = [
        hover(
            [
                f"<b>{b.label}</b> {b.config}",
                f"expected {fmt_ms(b.expected_ms)}",
                f"measured {fmt_ms(b.measured_ms)}" if b.measured_ms is not None else "",
                f"{b.speedup:.2f}× vs {info.reference}" if b.speedup is not None else "",
            ]
        )
        for b in info.bars
    ]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=xs,
            y=[b.expected_ms for b in info.bars],
            name="expected (from profile)",
            marker={"color": colour(0)},
            text=[fmt_ms(b.expected_ms) for b in info.bars],
            textposition="outside",
            hovertext=hovers,
            hoverinfo="text",
            cliponaxis=False,
        )
    )
    if info.has_measured:
        fig.add_trace(
            go.Bar(
                x=xs,
                y=[b.measured_ms for b in info.bars],
                name="measured (validate)",
                marker={"color": colour(1), "pattern": {"shape": "/", "fgcolor": "white"}},
                text=[fmt_ms(b.measured_ms) if b.measured_ms is not None else "" for b in info.bars],
                textposition="outside",
                hovertext=hovers,
                hoverinfo="text",
                cliponaxis=False,
            )
        )
    fig.update_layout(barmode="group", bargap=0.3)
    fig.update_yaxes(title_text="batch latency (ms), lower is better", rangemode="tozero")
    default = f"Plan vs baselines: B={info.batch} on {info.cores} cores"
    return apply_style(fig, title or default, height=420)


@dataclass(frozen=True)
class PlanMapRow:
    """The winning plan at one B, and its speedup over the fat instance."""

    batch: int
    config: str
    plan_text: str
    instances: int
    expected_ms: float | None
    fat_ms: float | None
    speedup: float | None


@dataclass(frozen=True)
class PlanMapInfo:
    """Which ⟨i,t,b⟩ the optimizer picks at each total batch B on T cores."""

    cores: int
    rows: tuple[PlanMapRow, ...]


def plan_map_info(
    plans: Sequence[Plan], fat: Mapping[int, float] | Sequence[Plan] | None = None
) -> PlanMapInfo:
    """Rows sorted by B from one plan per B (e.g. PlanTable.best_by_batch(T)); fat gives latency per B."""
    if not plans:
        msg = "plan_map_info needs at least one plan; example: table.best_by_batch(16)"
        raise ValueError(msg)
    if fat is None:
        fat_ms: dict[int, float] = {}
    elif isinstance(fat, Mapping):
        fat_ms = {int(b): float(v) for b, v in fat.items()}
    else:
        fat_ms = {p.total_batch: p.expected_latency_ms for p in fat if p.expected_latency_ms is not None}
    rows = []
    for plan in sorted(plans, key=lambda p: p.total_batch):
        exp, ref = plan.expected_latency_ms, fat_ms.get(plan.total_batch)
        speedup = ref / exp if ref and exp and math.isfinite(ref) else None
        rows.append(
            PlanMapRow(plan.total_batch, str(plan), plan.text, len(plan.instances), exp, ref, speedup)
        )
    return PlanMapInfo(max(p.total_threads for p in plans), tuple(rows))


def plot_plan_map(info: PlanMapInfo, *, title: str | None = None) -> go.Figure:
    """Speedup over fat per B (bars coloured by instance count, labelled ⟨i,t,b⟩); latency if no fat given."""
    import plotly.graph_objects as go

    use_speedup = any(r.speedup is not None for r in info.rows)
    fig = go.Figure()
    for k, count in enumerate(sorted({r.instances for r in info.rows})):
        rows = [r for r in info.rows if r.instances == count]
        fig.add_trace(
            go.Bar(
                x=[str(r.batch) for r in rows],
                y=[r.speedup if use_speedup else r.expected_ms for r in rows],
                name=f"{count} instance{'s' if count > 1 else ''}",
                marker={"color": colour(k)},
                text=[r.config for r in rows],
                textposition="outside",
                cliponaxis=False,
                hovertext=[
                    hover(
                        [
                            f"<b>B={r.batch}</b>: {r.config}",
                            f"expected {fmt_ms(r.expected_ms)}",
                            f"fat ⟨1,{info.cores},{r.batch}⟩ {fmt_ms(r.fat_ms)}"
                            if r.fat_ms is not None
                            else "",
                            f"speedup {r.speedup:.2f}×" if r.speedup is not None else "",
                        ]
                    )
                    for r in rows
                ],
                hoverinfo="text",
            )
        )
    order = [str(r.batch) for r in info.rows]
    fig.update_xaxes(title_text="total batch B", type="category", categoryorder="array", categoryarray=order)
    if use_speedup:
        fig.add_hline(
            y=1.0,
            line={"dash": "dot", "color": "#555"},
            annotation_text="fat instance = 1×",
            annotation_position="bottom right",
            annotation_font={"size": 11, "color": "#555"},
            annotation_bgcolor="rgba(255,255,255,0.8)",
        )
        fig.update_yaxes(title_text="speedup over fat instance (×)", rangemode="tozero")
    else:
        fig.update_yaxes(title_text="expected latency (ms)", type="log")
    default = f"Plan map: the optimizer's ⟨i,t,b⟩ at each B on {info.cores} cores"
    return apply_style(fig, title or default, height=440)
