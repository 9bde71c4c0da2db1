"""Latency surface L[t][b]: the profile at a glance, as a heatmap or a 3-D surface."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from packrat_lab.plots._style import SEQUENTIAL, apply_style, fmt_ms, hover, log_ticks, tick_text

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from packrat_lab.profiling.table import Profile

__all__ = ["SurfaceInfo", "plot_surface", "surface_info"]


@dataclass(frozen=True)
class SurfaceInfo:
    """Best-over-settings latency per (threads, batch), with spread, sample count and noise flags."""

    model: str
    statistic: str
    threads: tuple[int, ...]
    batches: tuple[int, ...]
    latency_ms: np.ndarray  # (nt, nb), nan where not measured
    iqr_ms: np.ndarray  # (nt, nb), nan where not measured
    n: np.ndarray  # (nt, nb) int, 0 where not measured
    setting: np.ndarray  # (nt, nb) object: winning runtime setting name, '' where not measured
    noisy: np.ndarray  # (nt, nb) bool
    backend: np.ndarray | None = None  # (nt, nb) object: winning backend key ('' where not measured)
    error: np.ndarray | None = None  # (nt, nb) object: the shown point's error vs eager fp32 ('' for eager)
    excluded: str = ""  # why the one backend shown is left out of planning ('' when it is not)

    @property
    def per_batch_normalised(self) -> np.ndarray:
        """Latency divided by the best thread count's latency at the same batch (1.0 = best)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            best = np.nanmin(np.where(np.isnan(self.latency_ms), np.inf, self.latency_ms), axis=0)
            return self.latency_ms / np.where(np.isfinite(best), best, np.nan)

    @property
    def noisy_points(self) -> list[tuple[int, int]]:
        """(threads, batch) of every noisy point."""
        return [(self.threads[i], self.batches[j]) for i, j in zip(*np.nonzero(self.noisy), strict=True)]

    def hover_text(self) -> list[list[str]]:
        """Per-cell hover: latency, spread, n, winning setting and backend, its error, noise warning."""
        rows = []
        for i, t in enumerate(self.threads):
            row = []
            for j, b in enumerate(self.batches):
                lat = self.latency_ms[i, j]
                if math.isnan(lat):
                    row.append(f"threads {t} · batch {b}<br>not measured")
                    continue
                row.append(
                    hover(
                        [
                            f"<b>threads {t} · batch {b}</b>",
                            f"{self.statistic} latency {fmt_ms(lat)}",
                            f"IQR {fmt_ms(self.iqr_ms[i, j])} · n={int(self.n[i, j])}",
                            f"setting: {self.setting[i, j]}",
                            f"backend: {self.backend[i, j]}" if self.backend is not None else "",
                            f"vs eager fp32: {self.error[i, j]}"
                            if self.error is not None and self.error[i, j]
                            else "",
                            f"excluded from planning: {self.excluded}" if self.excluded else "",
                            "⚠ noisy: median not known to target precision" if self.noisy[i, j] else "",
                        ]
                    )
                )
            rows.append(row)
        return rows


def surface_info(profile: Profile, *, statistic: str = "median", backend: str | None = None) -> SurfaceInfo:
    """The surface of a profile: best of all admissible runtimes (winner in hover), or of one `backend`.

    One backend is shown even when the accuracy guard excludes it (its hover says why), so the
    speed a tolerance gives up stays visible; the best-of surface uses admissible points only.
    """
    excluded = ""
    if backend is not None:
        if backend not in profile.backends:
            msg = f"profile has no backend {backend!r}; measured: {', '.join(profile.backends)}; example: backend='eager'"
            raise ValueError(msg)
        excluded = profile.excluded_backends().get(backend, "")
        profile = profile.only_backend(backend)
        shown = list(profile.measurements)
    else:
        shown = profile.usable_measurements
    threads, batches = profile.threads, profile.batches
    shape = (len(threads), len(batches))
    lat = np.full(shape, np.nan)
    iqr = np.full(shape, np.nan)
    n = np.zeros(shape, dtype=int)
    setting = np.full(shape, "", dtype=object)
    winner = np.full(shape, "", dtype=object)
    error = np.full(shape, "", dtype=object)
    noisy = np.zeros(shape, dtype=bool)
    rows = {t: i for i, t in enumerate(threads)}
    cols = {b: j for j, b in enumerate(batches)}
    for m in shown:
        i, j = rows[m.threads], cols[m.batch]
        value = m.statistic(statistic)
        if not (math.isnan(lat[i, j]) or value < lat[i, j]):  # the fastest (setting, backend) wins
            continue
        lat[i, j] = value
        iqr[i, j] = m.iqr
        n[i, j] = m.n
        setting[i, j] = m.setting
        winner[i, j] = m.backend_key
        error[i, j] = m.accuracy.describe() if m.accuracy is not None else ""
        noisy[i, j] = m.noisy
    several = len(profile.backends) > 1
    return SurfaceInfo(
        profile.model,
        statistic,
        tuple(threads),
        tuple(batches),
        lat,
        iqr,
        n,
        setting,
        noisy,
        winner if several else None,
        error if any(error.ravel()) else None,
        excluded,
    )


def plot_surface(
    info: SurfaceInfo, *, kind: str = "heatmap", colour: str = "log", title: str | None = None
) -> go.Figure:
    """Heatmap (or 3-D surface) of latency over threads × batch; noisy points get an × marker.

    colour: 'log' (log-scaled latency), 'linear', or 'per-batch' (each column divided by its best).
    """
    import plotly.graph_objects as go

    if kind not in ("heatmap", "3d"):
        msg = f"surface kind {kind!r} is not known; valid: 'heatmap' or '3d'"
        raise ValueError(msg)
    if colour not in ("log", "linear", "per-batch"):
        msg = f"surface colour {colour!r} is not known; valid: 'log', 'linear' or 'per-batch'"
        raise ValueError(msg)
    values, colorbar = _colour_values(info, colour)
    text = info.hover_text()
    xs = [str(b) for b in info.batches]
    common: dict[str, Any] = {
        "x": xs,
        "y": list(info.threads),
        "z": values,
        "text": text,
        "hoverinfo": "text",
        "colorscale": SEQUENTIAL,
        "colorbar": colorbar,
        "name": "latency",
    }
    fig = go.Figure()
    if kind == "heatmap":
        fig.add_trace(go.Heatmap(**common, xgap=1, ygap=1, hoverongaps=False))
        noisy = info.noisy_points
        if noisy:
            fig.add_trace(
                go.Scatter(
                    x=[str(b) for _, b in noisy],
                    y=[t for t, _ in noisy],
                    mode="markers",
                    name="noisy point (± > target)",
                    marker={
                        "symbol": "x",
                        "size": 11,
                        "line": {"width": 1, "color": "#222"},
                        "color": "white",
                    },
                    hoverinfo="skip",
                )
            )
        fig.update_xaxes(title_text="batch size b (per instance)", type="category")
        fig.update_yaxes(title_text="intra-op threads t", dtick=1 if len(info.threads) <= 16 else None)
    else:
        fig.add_trace(go.Surface(**common))
        noisy = info.noisy_points
        if noisy:
            idx = {(t, b): (info.threads.index(t), info.batches.index(b)) for t, b in noisy}
            fig.add_trace(
                go.Scatter3d(
                    x=[str(b) for _, b in noisy],
                    y=[t for t, _ in noisy],
                    z=[values[idx[p][0]][idx[p][1]] for p in noisy],
                    mode="markers",
                    name="noisy point",
                    marker={"symbol": "x", "size": 5, "color": "#D55E00"},
                    hoverinfo="skip",
                )
            )
        ztitle = {"log": "latency (ms, log)", "linear": "latency (ms)", "per-batch": "× best at this batch"}[
            colour
        ]
        zaxis: dict[str, object] = {"title": {"text": ztitle}}
        if colour == "log":  # same ms ticks as the colour bar
            zaxis.update(tickvals=colorbar.get("tickvals"), ticktext=colorbar.get("ticktext"))
        fig.update_layout(
            scene={
                # measured values only: no 1.2 / 1.4 threads, no overlapping batch labels
                "xaxis": {"title": {"text": "batch b"}, "type": "category", "tickvals": xs, "ticktext": xs},
                "yaxis": {
                    "title": {"text": "threads t"},
                    "tickvals": list(info.threads),
                    "ticktext": [str(t) for t in info.threads],
                },
                "zaxis": zaxis,
                "camera": {"eye": {"x": 1.5, "y": -1.6, "z": 0.9}},
            }
        )
    what = {"log": "", "linear": "", "per-batch": ", normalised per batch"}[colour]
    default_title = f"Latency surface of {info.model} ({info.statistic}{what})"
    return apply_style(fig, title or default_title, height=460 if kind == "heatmap" else 560)


def _colour_values(info: SurfaceInfo, colour: str) -> tuple[list[list[float | None]], dict[str, object]]:
    """Z values and colour bar for the chosen colour mode (None where not measured)."""
    if colour == "per-batch":
        z = info.per_batch_normalised
        bar: dict[str, object] = {"title": {"text": "× best<br>at batch"}, "tickformat": ".2f"}
    elif colour == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.log10(info.latency_ms)
        finite = info.latency_ms[np.isfinite(info.latency_ms)]
        ticks = log_ticks(float(finite.min()), float(finite.max())) if finite.size else []
        bar = {
            "title": {"text": "latency<br>(ms)"},
            "tickvals": [math.log10(v) for v in ticks],
            "ticktext": tick_text(ticks),
        }
    else:
        z = info.latency_ms
        bar = {"title": {"text": "latency<br>(ms)"}, "tickformat": ".3g"}
    rows = [[None if math.isnan(v) else float(v) for v in row] for row in z]
    return rows, bar
