"""Bridge from the plain plot builders (packrat_lab.plots) to live FigureWidgets in the Lab."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["empty_figure", "new_widget", "show_figure"]


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
            {"text": note, "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5,
             "font": {"size": 14, "color": "#777"}}
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
    with widget.batch_update():
        if same_shape:
            for old, new in zip(widget.data, fig.data, strict=True):
                old.update(new.to_plotly_json(), overwrite=True)
        widget.layout = fig.layout
