"""Step 2 of the Lab: the DP plan for a chosen B against the baselines, validated for real on demand."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from packrat_lab.ui._util import Listeners, column, row

if TYPE_CHECKING:
    from packrat_lab.plan import Plan
    from packrat_lab.profiling.table import Profile
    from packrat_lab.ui.backend import Backend

__all__ = ["PlanController", "PlanStep"]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class PlanController:
    """Plans for one B on T cores from a profile, and their measured latencies once validated."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.profile: Profile | None = None
        self.model: Any = None
        self.cores = 1
        self.batch: int | None = None
        self.plans: dict[str, Plan] = {}
        self.measured: dict[str, float] = {}
        self.chosen: str | None = None
        self.error: str | None = None
        self.validating = False
        self.validation_note = ""
        self.changed = Listeners()
        self._thread: threading.Thread | None = None
        self._map: tuple[Profile | None, int, tuple[list[Plan], list[Plan]]] = (None, 0, ([], []))

    def set_profile(self, profile: Profile, *, cores: int, model: Any) -> None:
        """A new profile: plan for its largest batch by default, on no more cores than it measured."""
        measured = profile.max_threads if profile.measurements else cores
        self.profile, self.cores, self.model = profile, min(cores, measured), model
        self.set_batch(self.batch if self.batch else max(profile.batches))

    def set_batch(self, batch: int) -> None:
        """Plan for total batch B: the DP plan and the baselines."""
        self.batch = batch
        self.measured, self.error, self.validation_note = {}, None, ""
        self.plans = {}
        if self.profile is not None:
            try:
                self.plans = self.backend.plans(self.profile, cores=self.cores, batch=batch)
            except (ValueError, KeyError) as exc:
                self.error = _first_line(exc)
        if self.chosen not in self.plans:
            self.chosen = next(iter(self.plans), None)
        self.changed()

    def choose(self, name: str) -> None:
        """Pick the plan the Serve step starts with."""
        if name not in self.plans:
            msg = f"no plan named {name!r}; valid: {sorted(self.plans)}"
            raise ValueError(msg)
        self.chosen = name
        self.changed()

    @property
    def chosen_plan(self) -> Plan | None:
        """The plan to serve (the DP plan unless the user picked another)."""
        return self.plans.get(self.chosen) if self.chosen else None

    @property
    def can_validate(self) -> bool:
        """Validation needs plans and no run in flight."""
        return bool(self.plans) and not self.validating and self.model is not None

    def validate(self) -> None:
        """Measure every plan for real in a background thread (pools started one after another)."""
        if not self.can_validate:
            msg = "nothing to validate yet: profile a model and pick B first"
            raise RuntimeError(msg)
        self.validating, self.validation_note = True, "starting pools…"
        self.changed()
        plans = list(self.plans.values())
        self._thread = threading.Thread(
            target=self._validate, args=(plans, self.batch), daemon=True, name="packrat-validate"
        )
        self._thread.start()

    def _validate(self, plans: list[Plan], batch: int | None) -> None:
        def progress(note: str) -> None:
            self.validation_note = note
            self.changed()

        try:
            measured = self.backend.validate(self.model, plans, progress=progress)
        except Exception as exc:  # noqa: BLE001 - a background thread reports failures as status
            self.error, measured = f"validation failed: {_first_line(exc)}", {}
        if batch == self.batch:  # the user may have moved on to another B meanwhile
            self.measured = measured
        self.validating, self.validation_note = False, ""
        self.changed()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for a validation run; True when none is in flight."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.validating

    def plan_map(self) -> tuple[list[Plan], list[Plan]]:
        """The DP plan and the fat plan at each profiled B (for the plan map), computed once per profile."""
        if self._map[0] is self.profile and self._map[1] == self.cores:
            return self._map[2]
        best: list[Plan] = []
        fat: list[Plan] = []
        if self.profile is None:
            return best, fat
        for b in self.profile.batches:
            try:
                plans = self.backend.plans(self.profile, cores=self.cores, batch=b)
            except (ValueError, KeyError):
                continue
            best.append(next(iter(plans.values())))
            if "fat" in plans:
                fat.append(plans["fat"])
        self._map = (self.profile, self.cores, (best, fat))
        return best, fat

    def status(self) -> str:
        """One line that says what is happening."""
        if self.profile is None:
            return "Profile a model first (step 1); its plans appear here."
        if self.error:
            return f"<span style='color:#b00020'>{self.error}</span>"
        if self.validating:
            return f"Validating plans for real: {self.validation_note}"
        plan = self.chosen_plan
        if plan is None:
            return "No feasible plan for this B; try a B made of profiled batch sizes."
        best = next(iter(self.plans.values()))
        lat = f"{best.expected_latency_ms:.2f} ms" if best.expected_latency_ms else "n/a"
        fat = self.plans.get("fat")
        gain = ""
        if fat is not None and fat.expected_latency_ms and best.expected_latency_ms:
            gain = f", expected {fat.expected_latency_ms / best.expected_latency_ms:.2f}× vs fat"
        eager_fat = self.plans.get("eager-fat")
        if eager_fat is not None and eager_fat.expected_latency_ms and best.expected_latency_ms:
            gain += (" and " if gain else ", expected ") + (
                f"{eager_fat.expected_latency_ms / best.expected_latency_ms:.2f}× vs eager fat"
            )
        measured = ""
        if self.measured:
            real = self.measured.get(best.name)
            base = self.measured.get("fat")
            versus = ""
            if base is not None and real:
                versus = f" vs fat {base:.2f} ms (measured {base / real:.2f}× vs fat)"
            took = f": {best.name} measured {real:.2f} ms{versus}" if real is not None else ""
            measured = f" Measured (hatched) bars overlay the expected ones{took}."
        warning = self.warning()
        caution = (
            f" <span class='packrat-warning' style='color:#b00020'>⚠ {warning}</span>" if warning else ""
        )
        return (
            f"B={self.batch} on {self.cores} core{'s' if self.cores != 1 else ''}: {best.name} plan {best} is expected to take {lat}{gain} "
            f"(expected = from isolated profile points).{caution}{measured} Serve it in step 3."
        )

    def warning(self) -> str | None:
        """The plan's uncertainty (noisy points, edge over fat within their CIs), or None."""
        if self.profile is None or not self.plans:
            return None
        from packrat_lab.plan_confidence import plan_confidence

        best = next(iter(self.plans.values()))
        try:
            return plan_confidence(self.profile, best, self.plans.get("fat")).warning()
        except (ValueError, KeyError):
            return None


class PlanStep:
    """The Plan tab: B, bars against baselines, Validate, core map and plan map."""

    def __init__(self, controller: PlanController) -> None:
        import ipywidgets as widgets

        from packrat_lab.ui.figures import new_widget

        self.controller = controller
        self.batch = widgets.BoundedIntText(value=8, min=1, max=4096, description="Total batch B")
        self.batch.style.description_width = "110px"
        self.chosen = widgets.Dropdown(description="Serve plan", options=[])
        self.validate = widgets.Button(
            description="Validate", icon="check", tooltip="Measure each plan for real"
        )
        self.message = widgets.HTML().add_class("packrat-status")
        self.bars = new_widget(height=380).add_class("packrat-figure-bars")
        self.cores = new_widget(height=200).add_class("packrat-figure-cores")
        self.map = new_widget(height=380).add_class("packrat-figure-map")
        self.batch.observe(self._on_batch, names="value")
        self.chosen.observe(self._on_choose, names="value")
        self.validate.on_click(lambda _: controller.validate())
        controller.changed.add(self.render)
        self._drawn_profile: Profile | None = None
        self.widget = column(
            [row([self.batch, self.chosen, self.validate]), self.message, self.bars, self.cores, self.map],
        )
        self.render()

    def _on_batch(self, change: dict[str, Any]) -> None:
        if self.controller.profile is not None and change["new"] != self.controller.batch:
            self.controller.set_batch(int(change["new"]))

    def _on_choose(self, change: dict[str, Any]) -> None:
        if change["new"] and change["new"] != self.controller.chosen:
            self.controller.choose(change["new"])

    def render(self) -> None:
        """Sync controls and figures with the controller."""
        c = self.controller
        ready = c.profile is not None
        self.batch.disabled = not ready or c.validating
        if c.batch is not None and self.batch.value != c.batch:
            self.batch.value = c.batch
        options = [(f"{name}: {plan}", name) for name, plan in c.plans.items()]
        if list(self.chosen.options) != options:
            self.chosen.options = options
        if c.chosen is not None and self.chosen.value != c.chosen:
            self.chosen.value = c.chosen
        self.chosen.disabled = not c.plans
        self.validate.disabled = not c.can_validate
        self.validate.description = "Validating…" if c.validating else "Validate"
        self.message.value = c.status()
        self.draw()

    def draw(self) -> None:
        """Redraw the bars, the core map, and the plan map when the profile changed."""
        from packrat_lab.plots import (
            core_map_info,
            plan_comparison_info,
            plan_map_info,
            plot_core_map,
            plot_plan_comparison,
            plot_plan_map,
        )
        from packrat_lab.ui.figures import empty_figure, show_figure

        c = self.controller
        if not c.plans:
            note = "Plans appear here after profiling" if c.profile is None else "No feasible plan for this B"
            show_figure(self.bars, empty_figure(note, height=380))
        else:
            show_figure(self.bars, plot_plan_comparison(plan_comparison_info(c.plans, c.measured)))
        plan = c.chosen_plan
        if plan is None:
            show_figure(
                self.cores, empty_figure("The core map shows which cores each instance holds", height=200)
            )
        else:
            show_figure(self.cores, plot_core_map(core_map_info(plan, c.cores)))
        if c.profile is not self._drawn_profile:
            self._drawn_profile = c.profile
            best, fat = c.plan_map()
            if best:
                show_figure(self.map, plot_plan_map(plan_map_info(best, fat or None)))
            else:
                show_figure(
                    self.map, empty_figure("The plan map shows the winning ⟨i,t,b⟩ at each B", height=380)
                )
