"""Fleet figures: which model holds which core now, and how each model's cores moved over time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packrat_lab.plots._style import IDLE, apply_style, colour
from packrat_lab.plots.cores import core_bar, core_strip

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "FleetCell",
    "FleetCoreMap",
    "FleetTimeline",
    "fleet_core_map",
    "fleet_timeline",
    "plot_fleet_core_map",
    "plot_fleet_timeline",
]


@dataclass(frozen=True)
class FleetCell:
    """One host core: the model holding it ('' when free) and the instance's ⟨t,b⟩."""

    core: int
    model: str
    label: str


@dataclass(frozen=True)
class FleetCoreMap:
    """Every host core in order, with its model."""

    models: tuple[str, ...]
    cells: tuple[FleetCell, ...]

    def cores_of(self, model: str) -> tuple[int, ...]:
        """The cores `model` holds."""
        return tuple(c.core for c in self.cells if c.model == model)


def fleet_core_map(
    members: Iterable[Mapping[str, Any]], host_cores: Sequence[int] | None = None
) -> FleetCoreMap:
    """Cells from per-model entries {name, plan, cores} (the registry's core map or `Fleet` data).

    Cores no model holds are listed as free when `host_cores` is given.
    """
    owner: dict[int, tuple[str, str]] = {}
    names = []
    for member in members:
        name = str(member["name"])
        names.append(name)
        for core in member.get("cores", ()):
            if int(core) in owner:
                msg = f"core {core} is held by both {owner[int(core)][0]!r} and {name!r}; a fleet's shares never overlap"
                raise ValueError(msg)
            owner[int(core)] = (name, f"{name}: {member.get('plan', '')}")
    every = sorted(set(host_cores or ()) | set(owner))
    cells = tuple(FleetCell(c, *owner.get(c, ("", "free"))) for c in every)
    return FleetCoreMap(tuple(names), cells)


def fleet_members(fleet: Any) -> list[dict[str, Any]]:
    """{name, plan, cores} per model of a live Fleet."""
    shares = fleet.shares
    return [{"name": n, "plan": p.plan.text, "cores": list(shares[n])} for n, p in fleet.pools.items()]


def plot_fleet_core_map(info: FleetCoreMap, *, title: str | None = None) -> go.Figure:
    """One cell per core, coloured by the model that holds it (grey: free)."""
    bars = []
    for k, name in enumerate(info.models):
        cells = [c for c in info.cells if c.model == name]
        bars.append(
            core_bar(
                [c.core for c in cells],
                cells[0].label if cells else name,
                colour(k),
                text=[name] * len(cells),
                hover=[f"core {c.core}: {c.label}" for c in cells],
            )
        )
    free = [c for c in info.cells if not c.model]
    if free:
        bars.append(core_bar([c.core for c in free], "free", IDLE))
    return core_strip(bars, [c.core for c in info.cells], title or "Fleet core map")


@dataclass(frozen=True)
class FleetTimeline:
    """Per model: (time, cores held, plan) at start and at every move, relative to the first event."""

    series: dict[str, tuple[tuple[float, int, str], ...]]


def fleet_timeline(events: Iterable[Any]) -> FleetTimeline:
    """Core counts over time from a fleet's 'start' and 'cores' events (Event objects or their dicts)."""
    rows: list[tuple[float, str, int, str]] = []
    for event in events:
        data = event if isinstance(event, Mapping) else event.to_dict()
        if data.get("kind") not in ("start", "cores"):
            continue
        detail = data.get("detail") or {}
        if "model" in detail:
            rows.append(
                (
                    float(data["time"]),
                    str(detail["model"]),
                    len(detail.get("cores", ())),
                    str(data.get("plan", "")),
                )
            )
    origin = min((r[0] for r in rows), default=0.0)
    series: dict[str, list[tuple[float, int, str]]] = {}
    for t, name, count, plan in sorted(rows):
        series.setdefault(name, []).append((t - origin, count, plan))
    return FleetTimeline({n: tuple(s) for n, s in series.items()})


def plot_fleet_timeline(
    info: FleetTimeline, *, until_s: float | None = None, title: str | None = None
) -> go.Figure:
    """Step lines of cores held per model; hover shows the plan after each move."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for k, (name, points) in enumerate(info.series.items()):
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        text = [p[2] for p in points]
        if until_s is not None and xs and until_s > xs[-1]:
            xs, ys, text = [*xs, until_s], [*ys, ys[-1]], [*text, text[-1]]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                name=name,
                mode="lines+markers",
                line={"shape": "hv", "color": colour(k)},
                hovertext=[f"{name}: {n} cores, {p}" for n, p in zip(ys, text, strict=True)],
                hoverinfo="text",
            )
        )
    fig.update_xaxes(title_text="seconds since start")
    fig.update_yaxes(title_text="cores", rangemode="tozero", dtick=1)
    return apply_style(fig, title or "Cores per model over time", height=280)
