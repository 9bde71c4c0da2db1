"""Core map: which host cores each instance of a plan holds, one cell per core."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packrat_lab.plan import Plan
from packrat_lab.plots._style import IDLE, apply_style, colour

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["CoreCell", "CoreMapInfo", "core_map_info", "plot_core_map"]


@dataclass(frozen=True)
class CoreCell:
    """One core and the instance on it (None when idle)."""

    core: int
    instance: int | None
    label: str


@dataclass(frozen=True)
class CoreMapInfo:
    """A plan laid out on cores, in core order."""

    plan: str
    cells: tuple[CoreCell, ...]

    @property
    def idle(self) -> tuple[int, ...]:
        """Cores no instance holds."""
        return tuple(c.core for c in self.cells if c.instance is None)


def core_map_info(plan: Plan | str, cores: int | Sequence[int] | None = None) -> CoreMapInfo:
    """Cells per core; instances without pinned cores are laid out contiguously over `cores` in order."""
    plan = Plan.coerce(plan)
    pool = list(range(cores)) if isinstance(cores, int) else list(cores) if cores is not None else None
    pinned = all(inst.cores for inst in plan.instances)
    owner: dict[int, int] = {}
    if pinned:
        for k, inst in enumerate(plan.instances):
            owner.update({c: k for c in inst.cores})
        if pool is None:
            pool = sorted(owner)
    else:
        if pool is None:
            pool = list(range(plan.total_threads))
        if plan.total_threads > len(pool):
            msg = f"plan {plan.text} needs {plan.total_threads} cores but only {len(pool)} were given; example: core_map_info(plan, cores={plan.total_threads})"
            raise ValueError(msg)
        it = iter(pool)
        for k, inst in enumerate(plan.instances):
            owner.update({next(it): k for _ in range(inst.threads)})
    cells = []
    for core in sorted(set(pool) | set(owner)):
        held = owner.get(core)
        label = (
            "idle"
            if held is None
            else f"#{held + 1} ⟨t={plan.instances[held].threads},b={plan.instances[held].batch}⟩"
        )
        cells.append(CoreCell(core, held, label))
    return CoreMapInfo(str(plan), tuple(cells))


def plot_core_map(info: CoreMapInfo, *, title: str | None = None) -> go.Figure:
    """One row of cells per core, coloured and labelled by the instance that holds it."""
    bars = []
    instances = sorted({c.instance for c in info.cells if c.instance is not None})
    for k in instances:
        cells = [c for c in info.cells if c.instance == k]
        bars.append(
            core_bar(
                [c.core for c in cells],
                cells[0].label,
                colour(k),
                text=[f"#{k + 1}" for _ in cells],
                hover=[f"core {c.core}: instance {c.label}" for c in cells],
            )
        )
    idle = [c for c in info.cells if c.instance is None]
    if idle:
        bars.append(
            core_bar([c.core for c in idle], "idle", IDLE, hover=[f"core {c.core}: idle" for c in idle])
        )
    return core_strip(bars, [c.core for c in info.cells], title or f"Core map: {info.plan}")


def core_bar(
    cores: Sequence[int],
    name: str,
    color: str,
    *,
    text: Sequence[str] | None = None,
    hover: Sequence[str] | None = None,
) -> go.Bar:
    """One trace of a core strip: a cell per core, `text` inside, `hover` on hover (None: the core number)."""
    import plotly.graph_objects as go

    inside = (
        {} if text is None else {"text": list(text), "textposition": "inside", "insidetextanchor": "middle"}
    )
    hovering = {"hoverinfo": "x"} if hover is None else {"hovertext": list(hover), "hoverinfo": "text"}
    return go.Bar(
        x=[str(c) for c in cores],
        y=[1] * len(cores),
        name=name,
        marker={"color": color},
        **inside,
        **hovering,
    )


def core_strip(bars: Sequence[go.Bar], cores: Sequence[int], title: str) -> go.Figure:
    """The figure of a core map (a plan's or a fleet's): the bars' cells side by side in `cores` order."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for bar in bars:
        fig.add_trace(bar)
    fig.update_layout(bargap=0.08, barmode="overlay")
    order = [str(c) for c in cores]
    fig.update_xaxes(title_text="core", type="category", categoryorder="array", categoryarray=order)
    fig.update_yaxes(visible=False, range=[0, 1])
    return apply_style(fig, title, height=220)
