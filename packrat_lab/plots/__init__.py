"""Plots as plain functions: `<thing>_info(...)` builds small data, `plot_<thing>(info)` draws a plotly Figure.

No widget code here: the Lab widget, the HTML report and notebooks all draw with these.
Importing this package is cheap; plotly loads when a figure is drawn.
"""

from __future__ import annotations

from packrat_lab.plots.cores import CoreCell, CoreMapInfo, core_map_info, plot_core_map
from packrat_lab.plots.plans import (
    PlanBar,
    PlanComparisonInfo,
    PlanMapInfo,
    PlanMapRow,
    plan_comparison_info,
    plan_map_info,
    plot_plan_comparison,
    plot_plan_map,
)
from packrat_lab.plots.settings_effect import SettingsEffectInfo, plot_settings_effect, settings_effect_info
from packrat_lab.plots.surface import SurfaceInfo, plot_surface, surface_info
from packrat_lab.plots.timeline import TimelineInfo, TimelineMarker, plot_timeline, timeline_info

__all__ = [
    "CoreCell",
    "CoreMapInfo",
    "PlanBar",
    "PlanComparisonInfo",
    "PlanMapInfo",
    "PlanMapRow",
    "SettingsEffectInfo",
    "SurfaceInfo",
    "TimelineInfo",
    "TimelineMarker",
    "core_map_info",
    "plan_comparison_info",
    "plan_map_info",
    "plot_core_map",
    "plot_plan_comparison",
    "plot_plan_map",
    "plot_settings_effect",
    "plot_surface",
    "plot_timeline",
    "settings_effect_info",
    "surface_info",
    "timeline_info",
]
