"""Runtime-setting effect: how much one threading setting (e.g. PASSIVE) changes each point's latency."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from packrat_lab.plots._style import DIVERGING, apply_style, fmt_ms, hover

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from packrat_lab.profiling.table import Profile

__all__ = ["SettingsEffectInfo", "plot_settings_effect", "settings_effect_info"]


@dataclass(frozen=True)
class SettingsEffectInfo:
    """Latency of a baseline and another setting at every point both measured."""

    model: str
    baseline: str
    other: str
    statistic: str
    threads: tuple[int, ...]
    batches: tuple[int, ...]
    baseline_ms: np.ndarray  # (nt, nb), nan where not measured
    other_ms: np.ndarray  # (nt, nb), nan where not measured

    @property
    def speedup(self) -> np.ndarray:
        """baseline / other: above 1 means the other setting is faster."""
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio: np.ndarray = self.baseline_ms / self.other_ms
        return ratio


def settings_effect_info(
    profile: Profile, *, baseline: str = "default", other: str = "passive", statistic: str = "median"
) -> SettingsEffectInfo:
    """Pair up two settings' measurements; raises ValueError naming the settings the profile has."""
    measured = sorted({m.setting for m in profile.measurements})
    for name in (baseline, other):
        if name not in measured:
            msg = f"profile of {profile.model} has no measurements with setting {name!r}; measured: {measured} (example: baseline='default', other='passive')"
            raise ValueError(msg)
    threads, batches = profile.threads, profile.batches
    base = np.full((len(threads), len(batches)), np.nan)
    oth = np.full_like(base, np.nan)
    t_index = {t: i for i, t in enumerate(threads)}
    b_index = {b: j for j, b in enumerate(batches)}
    for m in profile.measurements:
        target = base if m.setting == baseline else oth if m.setting == other else None
        if target is not None:
            target[t_index[m.threads], b_index[m.batch]] = m.statistic(statistic)
    return SettingsEffectInfo(
        profile.model, baseline, other, statistic, tuple(threads), tuple(batches), base, oth
    )


def plot_settings_effect(info: SettingsEffectInfo, *, title: str | None = None) -> go.Figure:
    """Heatmap of the speedup of `other` over `baseline`, centred on 1× (log₂ colour), labelled per cell."""
    import plotly.graph_objects as go

    ratio = info.speedup
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.log2(ratio)
    finite = np.abs(z[np.isfinite(z)])
    reach = max(1.0, float(finite.max())) if finite.size else 1.0
    ticks = [v for v in (-3, -2, -1, 0, 1, 2, 3) if abs(v) <= math.ceil(reach)]
    labels, texts = [], []
    for i, t in enumerate(info.threads):
        label_row, text_row = [], []
        for j, b in enumerate(info.batches):
            r = ratio[i, j]
            if math.isnan(r):
                label_row.append("")
                text_row.append(f"threads {t} · batch {b}<br>not measured with both settings")
                continue
            label_row.append(f"{r:.1f}×")
            text_row.append(
                hover(
                    [
                        f"<b>threads {t} · batch {b}</b>",
                        f"{info.baseline}: {fmt_ms(info.baseline_ms[i, j])}",
                        f"{info.other}: {fmt_ms(info.other_ms[i, j])}",
                        f"{info.other} is {r:.2f}× faster"
                        if r >= 1
                        else f"{info.other} is {1 / r:.2f}× slower",
                    ]
                )
            )
        labels.append(label_row)
        texts.append(text_row)
    fig = go.Figure(
        go.Heatmap(
            x=[str(b) for b in info.batches],
            y=list(info.threads),
            z=[[None if not math.isfinite(v) else float(v) for v in row] for row in z],
            zmid=0,
            zmin=-reach,
            zmax=reach,
            colorscale=DIVERGING,
            text=labels,
            texttemplate="%{text}",
            hovertext=texts,
            hovertemplate="%{hovertext}<extra></extra>",
            xgap=1,
            ygap=1,
            hoverongaps=False,
            colorbar={
                "title": {"text": f"{info.other}<br>speedup"},
                "tickvals": ticks,
                "ticktext": [f"{2.0**v:g}×" for v in ticks],
            },
            name="speedup",
        )
    )
    fig.update_xaxes(title_text="batch size b", type="category")
    fig.update_yaxes(title_text="intra-op threads t", dtick=1 if len(info.threads) <= 16 else None)
    default = f"Runtime setting effect on {info.model}: {info.baseline} ÷ {info.other} latency"
    return apply_style(fig, title or default, height=420, legend=False)
