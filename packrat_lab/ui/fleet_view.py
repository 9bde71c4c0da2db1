"""A Fleet view for notebooks: per-model core map, cores-over-time timeline, and plans moved by hand.

`FleetView(fleet)` shows the core map and timeline as FigureWidgets, one plan box per model and
an Apply button that calls `fleet.reconfigure` with every changed plan (cores move between models
live); errors are shown in one line under the boxes and nothing changes. `refresh()` redraws.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["FleetView"]


class FleetView:
    """ipywidgets front for a live Fleet; `.widget` is what a notebook displays."""

    def __init__(self, fleet: Any) -> None:
        import ipywidgets as widgets

        from packrat_lab.ui.figures import new_widget

        self.fleet = fleet
        self.started = time.time()
        self.core_map = new_widget(height=220)
        self.timeline = new_widget(height=280)
        self.boxes = {
            name: widgets.Text(value=pool.plan.text, description=name, continuous_update=False)
            for name, pool in fleet.pools.items()
        }
        self.apply = widgets.Button(description="Apply plans", button_style="primary")
        self.apply.on_click(lambda _: self.apply_plans())
        self.message = widgets.HTML()
        self.widget = widgets.VBox(
            [self.core_map, widgets.HBox([*self.boxes.values(), self.apply]), self.message, self.timeline]
        )
        self.refresh()

    def changed_plans(self) -> dict[str, str]:
        """The plan boxes whose text differs from what the model serves now."""
        current = {name: pool.plan.text for name, pool in self.fleet.pools.items()}
        return {n: box.value.strip() for n, box in self.boxes.items() if box.value.strip() != current[n]}

    def apply_plans(self) -> bool:
        """Reconfigure the fleet with the changed plans; True on success, else the error is shown."""
        import html

        changed = self.changed_plans()
        if not changed:
            self.message.value = "no plan changed"
            return True
        try:
            self.fleet.reconfigure(changed)
        except Exception as exc:  # noqa: BLE001 - shown to the user; the fleet keeps its old plans
            self.message.value = f"<span style='color:#D55E00'>{html.escape(str(exc).splitlines()[0])}</span>"
            self.refresh()
            return False
        self.message.value = "switched: " + ", ".join(f"{n} → {p}" for n, p in changed.items())
        self.refresh()
        return True

    def refresh(self) -> None:
        """Redraw the core map and timeline and reset the plan boxes to what is served."""
        from packrat_lab.plots.fleet import (
            fleet_core_map,
            fleet_members,
            fleet_timeline,
            plot_fleet_core_map,
            plot_fleet_timeline,
        )
        from packrat_lab.ui.figures import show_figure

        host = self.fleet.host
        info = fleet_core_map(fleet_members(self.fleet), host.primary_cpus[: host.usable_cores])
        show_figure(self.core_map, plot_fleet_core_map(info))
        events = self.fleet.events()
        timeline = fleet_timeline(events)
        until = (events[-1].time - events[0].time) if events else None
        show_figure(self.timeline, plot_fleet_timeline(timeline, until_s=until))
        for name, pool in self.fleet.pools.items():
            self.boxes[name].value = pool.plan.text

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """Display as the widget box in a notebook."""
        return self.widget._repr_mimebundle_(**kwargs)
