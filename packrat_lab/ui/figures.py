"""Bridge from the plain plot builders (packrat_lab.plots) to live FigureWidgets in the Lab."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["WIDTH", "empty_figure", "new_widget", "show_figure"]

WIDTH = 900  # fixed: a figure first drawn in a hidden tab would otherwise stay at plotly's default 700 px


def new_widget(height: int = 420) -> go.FigureWidget:
    """An empty FigureWidget with a placeholder note, sized so hidden tabs do not collapse it."""
    import plotly.graph_objects as go

    widget = go.FigureWidget()
    show_figure(widget, empty_figure("Nothing to show yet", height=height))
    return widget


def empty_figure(note: str, *, height: int = 420) -> go.Figure:
    """A blank figure that says why it is blank."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(
        template="plotly_white",
        height=height,
        xaxis={"visible": False},
        yaxis={"visible": False},
        margin={"l": 24, "r": 24, "t": 24, "b": 24},
        annotations=[
            {
                "text": note,
                "showarrow": False,
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 0.5,
                "font": {"size": 14, "color": "#777"},
            }
        ],
    )
    return fig


def show_figure(widget: go.FigureWidget, fig: go.Figure | Any) -> None:
    """Replace what `widget` shows with `fig`, in as few front-end messages as possible."""
    same_shape = len(widget.data) == len(fig.data) and all(
        a.type == b.type for a, b in zip(widget.data, fig.data, strict=True)
    )
    if not same_shape:
        widget.data = ()
        widget.add_traces(list(fig.data))
    stale = removed_paths(widget.layout.to_plotly_json(), fig.layout.to_plotly_json())
    if stale:  # the front end merges layouts: keys the new figure lacks must be deleted explicitly
        widget.plotly_relayout(dict.fromkeys(stale))
    with widget.batch_update():
        if same_shape:
            for old, new in zip(widget.data, fig.data, strict=True):
                fresh = new.to_plotly_json()
                # keys the new trace lacks must be cleared, or e.g. a stale '#2' bar label stays
                cleared: dict[str, Any] = {
                    key: None
                    for key in old.to_plotly_json()
                    if key not in fresh and key not in ("uid", "type")
                }
                old.update({**cleared, **fresh}, overwrite=True)
        widget.layout = fig.layout
        widget.layout.width = WIDTH


def removed_paths(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted layout paths set in `old` but absent from `new` (e.g. 'annotations', 'xaxis.visible')."""
    out: list[str] = []
    for key, value in old.items():
        if key in ("template", "width"):
            continue
        path = f"{prefix}{key}"
        if key not in new:
            out.append(path)
        elif isinstance(value, Mapping) and isinstance(new[key], Mapping):
            out.extend(removed_paths(value, new[key], f"{path}."))
    return out
