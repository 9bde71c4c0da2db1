"""Live timeline of a pool: latency, throughput, queue depth and estimated B, with reconfiguration markers.

With a latency objective (issue 10) it also draws the SLO over the latency, goodput beside the
throughput, a panel of bars marking the requests rejected, dropped or answered late since the previous
poll, and the SLO attainment: all from the pool's polled stats (rejected, dropped, late,
slo_attainment, goodput_rps), never from per-request callbacks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packrat_lab.plots._style import apply_style, colour

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "MARKER_STYLE",
    "MISS_STYLE",
    "RECONFIGURATION",
    "TimelineInfo",
    "TimelineMarker",
    "TimelineMiss",
    "TimelineTrace",
    "plot_timeline",
    "timeline_info",
    "timeline_traces",
]

# accepted names for each field of a stats sample (the pool's stats() and dict snapshots)
FIELDS: dict[str, tuple[str, ...]] = {
    "time": ("time", "t", "timestamp", "ts"),
    "p50_ms": ("p50_ms", "latency_p50_ms", "p50"),
    "p99_ms": ("p99_ms", "latency_p99_ms", "p99"),
    "throughput": ("throughput", "throughput_rps", "rps", "requests_per_s"),
    "queue_depth": ("queue_depth", "queue", "queued"),
    "estimated_batch": ("estimated_batch", "batch_estimate", "estimated_b", "estimate"),
    "slo_ms": ("slo_ms",),
    "slo_attainment": ("slo_attainment",),
    "goodput": ("goodput", "goodput_rps"),
    "rejected": ("rejected",),
    "dropped": ("dropped",),
    "late": ("late",),
    "aimd_batch": ("aimd_batch",),
    "prediction_error_p99_ms": ("prediction_error_p99_ms",),
}

# reconfiguration steps: colour and dash of the vertical marker
MARKER_STYLE: dict[str, tuple[str, str]] = {
    "passive-start": (colour(1), "dash"),
    "switch": (colour(7), "solid"),
    "drained": (colour(2), "dot"),
    "warm": (colour(4), "dot"),
    "worker-failed": (colour(5), "solid"),
    "worker-replaced": (colour(3), "dash"),
}
RECONFIGURATION = ("passive-start", "switch", "drained")

# requests the latency objective turned away or answered late: the colour of their bars
MISS_STYLE: dict[str, str] = {"rejected": colour(5), "dropped": colour(1), "late": colour(3)}


@dataclass(frozen=True)
class TimelineMarker:
    """A reconfiguration event on the time axis."""

    time: float
    kind: str
    label: str


@dataclass(frozen=True)
class TimelineMiss:
    """Requests of one kind (rejected, dropped, late) counted since the previous sample."""

    time: float
    kind: str
    count: int


@dataclass(frozen=True)
class TimelineInfo:
    """Series over time (seconds since t0) plus event markers, trimmed to a window.

    slo_attainment is the pool's own figure (answered within deadline / offered, since it started).
    """

    t0: float
    time: tuple[float, ...]
    p50_ms: tuple[float | None, ...]
    p99_ms: tuple[float | None, ...]
    throughput: tuple[float | None, ...]
    queue_depth: tuple[float | None, ...]
    estimated_batch: tuple[float | None, ...]
    markers: tuple[TimelineMarker, ...]
    slo_ms: tuple[float | None, ...] = ()
    slo_attainment: tuple[float | None, ...] = ()
    goodput: tuple[float | None, ...] = ()
    misses: tuple[TimelineMiss, ...] = ()
    aimd_batch: tuple[float | None, ...] = ()  # Clipper's controller's B (batching="aimd")
    prediction_error_p99_ms: tuple[float | None, ...] = ()  # admission's |predicted - actual|, p99

    @property
    def has_slo(self) -> bool:
        """Whether there is anything about a latency objective to draw (then the SLO panel appears)."""
        return (
            bool(self.misses)
            or any(v is not None for v in self.slo_ms)
            or any(v is not None for v in self.slo_attainment)
        )


@dataclass(frozen=True)
class TimelineTrace:
    """One data trace of the timeline: its panel row, fixed style, and the data a live widget replaces."""

    row: int
    style: dict[str, Any]
    data: dict[str, Any]
    bar: bool = False  # a go.Bar (the SLO misses), else a go.Scatter


def _field(sample: Any, name: str) -> Any:
    """A field of a sample by any of its accepted names (mapping key or attribute)."""
    for key in FIELDS[name]:
        value = sample.get(key) if isinstance(sample, Mapping) else getattr(sample, key, None)
        if value is not None:
            return value
    return None


def _number(value: Any) -> float | None:
    """Float or None (NaN and missing both become gaps)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _event_label(event: Any) -> tuple[float, str, str]:
    """(time, kind, label) of an Event(time, kind, plan, detail) or a dict with those keys."""
    get = event.get if isinstance(event, Mapping) else lambda k, d=None: getattr(event, k, d)
    time, kind, plan, detail = get("time"), str(get("kind", "event")), get("plan"), get("detail")
    if time is None:
        msg = f"event {event!r} has no time; example: Event(time=12.5, kind='switch', plan='2x1x4')"
        raise ValueError(msg)
    label = kind if plan is None else f"{kind} {plan}"
    if detail and not isinstance(detail, Mapping):
        label = f"{label} ({detail})"
    return float(time), kind, label


def _misses(rows: Sequence[tuple[float, Any]]) -> list[TimelineMiss]:
    """Rises of the rejected/dropped/late counters from one sample to the next (a counter reset counts 0)."""
    out: list[TimelineMiss] = []
    last: dict[str, float] = {}
    for time, sample in rows:
        for kind in MISS_STYLE:
            value = _number(_field(sample, kind))
            if value is None:
                continue
            rise = value - last[kind] if kind in last else 0.0
            last[kind] = value
            if rise > 0:
                out.append(TimelineMiss(time, kind, int(rise)))
    return out


def timeline_info(
    samples: Iterable[Any],
    events: Iterable[Any] = (),
    *,
    window_s: float | None = None,
    t0: float | None = None,
    kinds: Sequence[str] | None = tuple(MARKER_STYLE),
) -> TimelineInfo:
    """Series from stats samples (dicts or objects with time/p50_ms/p99_ms/throughput/queue_depth/estimated_batch).

    Keeps the last `window_s` seconds (so a live widget stays bounded); t0 defaults to the first kept sample;
    `kinds` keeps only those event kinds (default: the switch steps, warm-ups and worker faults; None: all).
    SLO fields, when the samples carry them: slo_ms, slo_attainment, goodput_rps, and the cumulative
    rejected/dropped/late counters, whose rises between samples become `misses` (the first sample has none).
    """
    rows: list[tuple[float, Any]] = []
    for sample in samples:
        time = _field(sample, "time")
        if time is None:
            msg = f"stats sample {sample!r} has no time; example: {{'time': 12.5, 'p50_ms': 4.1, 'p99_ms': 9.0}}"
            raise ValueError(msg)
        rows.append((float(time), sample))
    rows.sort(key=lambda r: r[0])
    misses = _misses(rows)
    marks = sorted((_event_label(e) for e in events), key=lambda m: m[0])
    if kinds is not None:
        marks = [m for m in marks if m[1] in kinds]
    end = max([r[0] for r in rows[-1:]] + [m[0] for m in marks[-1:]], default=0.0)
    start = end - window_s if window_s is not None else -math.inf
    rows = [r for r in rows if r[0] >= start]
    marks = [m for m in marks if m[0] >= start]
    if t0 is None:
        t0 = min([r[0] for r in rows[:1]] + [m[0] for m in marks[:1]], default=0.0)

    def series(name: str) -> tuple[float | None, ...]:
        return tuple(_number(_field(s, name)) for _, s in rows)

    return TimelineInfo(
        t0,
        tuple(t - t0 for t, _ in rows),
        series("p50_ms"),
        series("p99_ms"),
        series("throughput"),
        series("queue_depth"),
        series("estimated_batch"),
        tuple(TimelineMarker(t - t0, kind, label) for t, kind, label in marks),
        series("slo_ms"),
        series("slo_attainment"),
        series("goodput"),
        tuple(TimelineMiss(m.time - t0, m.kind, m.count) for m in misses if m.time >= start),
        series("aimd_batch"),
        series("prediction_error_p99_ms"),
    )


# panel rows: (title, relative height); the SLO's two panels only when there is an objective to show
_LATENCY = ("latency (ms)", 0.28)
_THROUGHPUT = ("throughput (requests/s)", 0.2)
_MISSES = ("requests rejected, dropped or late since the previous poll", 0.14)
_ATTAINMENT = ("SLO attainment (% of requests with a deadline, since start)", 0.14)
_QUEUE = ("queue depth, estimated B and AIMD's B", 0.2)


def _panels(info: TimelineInfo) -> list[tuple[str, float]]:
    if info.has_slo:
        return [_LATENCY, _THROUGHPUT, _MISSES, _ATTAINMENT, _QUEUE]
    return [_LATENCY, _THROUGHPUT, _QUEUE]


def timeline_traces(info: TimelineInfo) -> list[TimelineTrace]:
    """Every data trace of plot_timeline, in its order (a live widget replaces each one's `data` in place)."""
    x = list(info.time)
    panels = _panels(info)

    def line(
        panel: tuple[str, float], name: str, ys: Sequence[float | None], style: dict[str, Any], unit: str
    ) -> TimelineTrace:
        return TimelineTrace(
            panels.index(panel) + 1,
            {
                "name": name,
                "mode": "lines",
                "line": style,
                "connectgaps": False,
                "hovertemplate": f"{name}: %{{y:.3g}}{unit}<br>t=%{{x:.1f}} s<extra></extra>",
            },
            {"x": x, "y": list(ys)},
        )

    traces = [
        line(_LATENCY, "p50", info.p50_ms, {"color": colour(0)}, " ms"),
        line(_LATENCY, "p99", info.p99_ms, {"color": colour(5), "dash": "dash"}, " ms"),
        line(_THROUGHPUT, "throughput", info.throughput, {"color": colour(2)}, " req/s"),
        line(_QUEUE, "queue depth", info.queue_depth, {"color": colour(4)}, " requests"),
        line(_QUEUE, "estimated B", info.estimated_batch, {"color": colour(3), "shape": "hv"}, ""),
    ]
    if not info.has_slo:
        return traces
    percent = [None if v is None else 100.0 * v for v in info.slo_attainment]
    traces += [
        line(_LATENCY, "SLO", info.slo_ms, {"color": "#555", "dash": "dot", "shape": "hv"}, " ms"),
        line(_THROUGHPUT, "goodput", info.goodput, {"color": colour(2), "dash": "dash"}, " req/s within SLO"),
        line(_ATTAINMENT, "SLO attainment", percent, {"color": colour(2)}, " %"),
        line(
            _LATENCY,
            "prediction error p99",
            info.prediction_error_p99_ms,
            {"color": colour(6), "dash": "dashdot"},
            " ms",
        ),
        line(_QUEUE, "AIMD B", info.aimd_batch, {"color": colour(1), "shape": "hv", "dash": "dot"}, ""),
    ]
    for kind, col in MISS_STYLE.items():
        mine = [m for m in info.misses if m.kind == kind]
        traces.append(
            TimelineTrace(
                panels.index(_MISSES) + 1,
                {"name": kind, "marker": {"color": col}, "hoverinfo": "text"},
                {
                    "x": [m.time for m in mine],
                    "y": [m.count for m in mine],
                    "hovertext": [f"t={m.time:.1f} s: {m.count} {kind}" for m in mine],
                },
                bar=True,
            )
        )
    return traces


def plot_timeline(info: TimelineInfo, *, title: str = "Live pool timeline") -> go.Figure:
    """Stacked panels sharing time: latency (p50, p99), throughput, queue depth and estimated B.

    With a latency objective: the SLO over the latency, goodput beside the throughput, bars of the
    requests rejected, dropped or late per poll, and the SLO attainment, above the queue.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = _panels(info)
    rows = len(panels)
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.07 if rows == 3 else 0.05,
        subplot_titles=[name for name, _ in panels],
        row_heights=[height for _, height in panels],
    )
    for trace in timeline_traces(info):
        made = go.Bar(**trace.style) if trace.bar else go.Scatter(**trace.style)
        made.update(trace.data)
        fig.add_trace(made, row=trace.row, col=1)
    for marker in info.markers:
        col, dash = MARKER_STYLE.get(marker.kind, ("#555", "dot"))
        fig.add_vline(x=marker.time, line={"color": col, "dash": dash, "width": 1.5}, row="all", col=1)
    # one invisible legend entry per marker kind so the legend explains the vertical lines
    for kind in dict.fromkeys(m.kind for m in info.markers):
        col, dash = MARKER_STYLE.get(kind, ("#555", "dot"))
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="lines",
                name=kind,
                line={"color": col, "dash": dash},
                hoverinfo="skip",
            ),
            row=1,
            col=1,
        )
    if info.markers:  # hover on a marker's time shows what happened
        fig.add_trace(
            go.Scatter(
                x=[m.time for m in info.markers],
                y=[0] * len(info.markers),
                mode="markers",
                name="events",
                marker={
                    "symbol": "triangle-up",
                    "size": 9,
                    "color": [MARKER_STYLE.get(m.kind, ("#555", ""))[0] for m in info.markers],
                },
                hovertext=[f"t={m.time:.1f} s: {m.label}" for m in info.markers],
                hoverinfo="text",
                showlegend=False,
            ),
            row=rows,
            col=1,
        )
    fig.update_xaxes(title_text="time since the pool started (s)", row=rows, col=1)
    fig.update_yaxes(rangemode="tozero")
    if info.has_slo:
        fig.update_yaxes(range=[0, 105], row=panels.index(_ATTAINMENT) + 1, col=1)
        fig.update_layout(barmode="stack", bargap=0.1)
    apply_style(fig, title, height=600 if rows == 3 else 860)
    fig.update_layout(
        legend={
            "orientation": "h",
            "yanchor": "top",
            "y": -0.1,
            "xanchor": "left",
            "x": 0.0,
            "traceorder": "normal",  # stacked bars would reverse it
        }
    )
    return fig
