"""One look for every figure: clean template, Okabe-Ito colours, readable titles and hover labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "DIVERGING",
    "IDLE",
    "PALETTE",
    "SEQUENTIAL",
    "apply_style",
    "colour",
    "fmt_ms",
    "hover",
    "log_ticks",
    "tick_text",
]

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
SEQUENTIAL = "Viridis"  # perceptually uniform and colourblind-safe
DIVERGING = "PuOr"  # purple/orange stays apart for red-green deficiencies
IDLE = "#D9D9D9"


def colour(index: int) -> str:
    """The palette colour for the index-th series (wraps around)."""
    return PALETTE[index % len(PALETTE)]


def apply_style(fig: go.Figure, title: str, *, height: int | None = None, legend: bool = True) -> go.Figure:
    """Shared layout: white template, left-aligned title, compact margins, unified font."""
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 16}},
        font={"family": "Inter, Segoe UI, Helvetica, Arial, sans-serif", "size": 12, "color": "#222"},
        colorway=list(PALETTE),
        margin={"l": 64, "r": 24, "t": 64, "b": 56},
        hoverlabel={"bgcolor": "white", "font_size": 12},
        showlegend=legend,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
    )
    if height is not None:
        fig.update_layout(height=height)
    return fig


def fmt_ms(value: float | None) -> str:
    """Latency for labels: 3 significant digits, 'n/a' when missing."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 tick values covering [low, high] for a log-scaled colour bar (ms)."""
    if not (math.isfinite(low) and math.isfinite(high)) or low <= 0 or high <= 0:
        return []
    ticks: list[float] = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0**exponent
            if low <= value <= high:
                ticks.append(value)
    if len(ticks) < 2:
        ticks = sorted({low, high})
    return ticks


def tick_text(values: Sequence[float]) -> list[str]:
    """Compact ms labels for tick values ('0.5', '20', '1k', '2.07'), three significant digits at most."""
    out = []
    for v in values:
        out.append(f"{v / 1000:.3g}k" if v >= 1000 else f"{v:.3g}")
    return out


def hover(lines: Sequence[Any]) -> str:
    """Join hover lines with <br> (skipping empty ones)."""
    return "<br>".join(str(line) for line in lines if line)
