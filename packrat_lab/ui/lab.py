"""The Lab widget: Profile → Plan → Serve as tabs, composed from the step modules (no logic of its own)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from packrat_lab.ui.plan_step import PlanController, PlanStep
from packrat_lab.ui.profile_step import ProfileController, ProfileState, ProfileStep
from packrat_lab.ui.serve_controller import ServeController
from packrat_lab.ui.serve_step import ServeStep

if TYPE_CHECKING:
    from packrat_lab.plan import Plan
    from packrat_lab.profiling.table import Profile
    from packrat_lab.ui.backend import Backend

__all__ = ["Lab"]

_CSS = """<style>
.packrat-lab { border: 1px solid #e0e0e0; border-radius: 6px; padding: 10px 12px; max-width: 980px; }
.packrat-lab .widget-tab-contents, .packrat-lab .lm-TabPanel-stackedPanel { padding: 4px 0; }
.packrat-lab .packrat-head h3 { margin: 0 0 2px 0; font-size: 17px; }
.packrat-lab .packrat-head p { margin: 0; color: #555; font-size: 12px; line-height: 1.45; }
.packrat-lab .packrat-status, .packrat-lab .packrat-status .widget-html-content { line-height: 1.45; }
.packrat-lab .packrat-step { gap: 6px; padding: 8px 4px; }
.packrat-lab .packrat-row { gap: 8px; }
</style>"""


def _notebook_namespace() -> Mapping[str, Any] | None:
    """The running IPython kernel's user variables, so notebook models can be picked."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return getattr(shell, "user_ns", None)


class Lab(widgets.VBox):  # type: ignore[misc]
    """Profile a model on this host's cores, plan ⟨i,t,b⟩ for a batch B, serve it and switch plans live."""

    def __init__(
        self,
        model: Any = None,
        cores: int | None = None,
        *,
        batches: Sequence[int] = (1, 2, 4, 8),
        budget_s: float = 30.0,
        namespace: Mapping[str, Any] | None = None,
        backend: Backend | None = None,
        host_cores: int | None = None,
        example_input: Any = None,
        profile: Profile | None = None,
    ) -> None:
        from packrat_lab.ui.backend import RealBackend

        if example_input is not None:  # an nn.Module becomes a Workload (saved or traced once, here)
            from packrat_lab.workloads.registry import get_workload

            model = get_workload(model, example_input=example_input)

        if host_cores is None:
            from packrat_lab.host import detect_host

            host_cores = detect_host().usable_cores
        self.backend: Backend = backend if backend is not None else RealBackend()
        self.profiling = ProfileController(self.backend)
        self.planning = PlanController(self.backend)
        self.serving = ServeController(self.backend)
        self.profile_step = ProfileStep(
            self.profiling,
            model=model,
            cores=cores,
            max_cores=host_cores,
            batches=batches,
            budget_s=budget_s,
            namespace=namespace if namespace is not None else _notebook_namespace(),
        )
        self.plan_step = PlanStep(self.planning)
        self.serve_step = ServeStep(
            self.serving,
            model=self._serving_model,
            known_plans=self._known_plans,
            profile=lambda: self.planning.profile,
            chosen=lambda: self.planning.chosen_plan,
        )
        self.profiling.changed.add(self._after_profile)
        self.planning.changed.add(self.serve_step.refresh_plans)
        self.tabs = widgets.Tab(
            children=[self.profile_step.widget, self.plan_step.widget, self.serve_step.widget],
            titles=("1 · Profile", "2 · Plan", "3 · Serve"),
        )
        head = widgets.HTML(
            _CSS
            + "<div class='packrat-head'><h3>packrat lab</h3><p>Measure latency at every thread count × batch "
            f"size on this host's {host_cores} usable cores, let the Packrat optimizer split a batch B into "
            "⟨instances, threads, batch⟩, then serve that plan and switch plans live.</p></div>"
        )
        super().__init__([head, self.tabs])
        self.add_class("packrat-lab")
        if profile is not None:  # reuse a profile measured in the notebook: no second measurement
            self._adopt(profile, model, cores or host_cores, batches, budget_s)

    def _adopt(
        self, profile: Profile, model: Any, cores: int, batches: Sequence[int], budget_s: float
    ) -> None:
        """Start at step 2 with a finished profile (Lab(model, profile=profile))."""
        from packrat_lab.ui.profile_step import ProfileRequest

        if model is None:
            from packrat_lab.workloads.registry import workload_of_profile

            try:
                model = workload_of_profile(profile)
            except ValueError:
                model = profile.model
        label = model if isinstance(model, str) else getattr(model, "name", profile.model)
        request = ProfileRequest(
            model, str(label), min(cores, profile.max_threads), tuple(profile.batches or batches), budget_s
        )
        self.profiling.adopt(profile, request)
        self.tabs.selected_index = 1

    def _after_profile(self) -> None:
        """Hand a finished (or cancelled, partial) profile to the Plan step."""
        c = self.profiling
        finished = c.state in (ProfileState.DONE, ProfileState.CANCELLED)
        if finished and c.profile is not None and c.request and self.planning.profile is not c.profile:
            self.planning.set_profile(c.profile, cores=c.request.cores, model=c.request.model)

    def _serving_model(self) -> Any:
        """The model profiled in step 1, else the one selected there."""
        if self.profiling.request is not None:
            return self.profiling.request.model
        return self.profile_step.request().model

    def _known_plans(self) -> dict[str, Plan]:
        """Plans offered in the Serve step: this B's plans, then the winner at every other B."""
        known = dict(self.planning.plans)
        best, _ = self.planning.plan_map()
        for plan in best:
            known.setdefault(f"B={plan.total_batch}", plan)
        return known

    def close(self) -> None:
        """Stop the pool and any profiling run, then close the widgets."""
        self.serving.stop()
        self.serve_step.redraw.cancel()
        self.profiling.cancel()
        self.profile_step.close()
        super().close()
