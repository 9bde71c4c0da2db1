"""Step 3 of the Lab: serve a plan from its own server process, drive it with load, switch plans live, set its SLO."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from packrat_lab.ui._util import Throttle, column, first_line, fmt_ms, parse_slo, row
from packrat_lab.ui.serve_controller import ServeController, ServeState

if TYPE_CHECKING:
    from packrat_lab.plan import Plan

__all__ = ["ServeStep"]

_PLAN_HINT = "e.g. 2x1x4 = i×t×b"
_REDRAW_S = 0.5  # at most two timeline redraws a second, whatever the sampling rate


class ServeStep:
    """The Serve tab: plan, Start/Stop, load generator, Reconfigure, Auto, SLO, counters and live timeline."""

    def __init__(
        self,
        controller: ServeController,
        *,
        model: Callable[[], Any],
        known_plans: Callable[[], dict[str, Plan]],
        profile: Callable[[], Any] = lambda: None,
        chosen: Callable[[], Plan | None] = lambda: None,
    ) -> None:
        import ipywidgets as widgets

        from packrat_lab.ui.figures import new_widget

        self.controller = controller
        self._model = model
        self._known_plans = known_plans
        self._profile = profile
        self._chosen = chosen
        self._offered: str | None = None  # the Plan step's choice last copied into the Plan box
        self._drawn: tuple[int, float | None, bool] | None = None  # (markers, t0, SLO panel) drawn for
        self._slo_shown = controller.slo_ms  # the objective the SLO box last showed
        self._slo_error: str | None = None
        self.redraw = Throttle(self.draw, _REDRAW_S)
        self.plan = widgets.Combobox(
            description="Plan", placeholder=_PLAN_HINT, ensure_option=False
        ).add_class("packrat-plan-box")
        self.start = widgets.Button(description="Start pool", button_style="primary", icon="play")
        self.stop = widgets.Button(description="Stop", icon="stop")
        self.rate = widgets.IntSlider(value=int(controller.rate), min=1, max=200, description="Rate (req/s)")
        self.poisson = widgets.Checkbox(
            value=controller.poisson,
            description="Poisson arrivals",
            indent=False,
            layout=widgets.Layout(width="auto"),
        )
        self.load = widgets.ToggleButton(value=False, description="Send load", icon="paper-plane")
        self.target = widgets.Combobox(
            description="Switch to", placeholder=_PLAN_HINT, ensure_option=False
        ).add_class("packrat-target-box")
        self.apply = widgets.Button(
            description="Reconfigure", icon="exchange", tooltip="Active-passive switch, live"
        )
        self.auto = widgets.Checkbox(
            value=controller.auto,
            description="Auto (estimator picks B)",
            indent=False,
            layout=widgets.Layout(width="auto"),
        )
        self.slo = widgets.Text(
            value=fmt_ms(controller.slo_ms),
            description="SLO (ms)",
            placeholder="off, e.g. 50",
            continuous_update=False,  # Enter or leaving the box applies it
            tooltip="latency objective: requests predicted to miss it are refused; empty = off",
        ).add_class("packrat-slo-box")
        self.slo_note = widgets.HTML().add_class("packrat-slo-note")
        self.counters = widgets.HTML()
        self.will_serve = widgets.HTML().add_class("packrat-will-serve")
        self.message = widgets.HTML().add_class("packrat-status")
        self.figure = new_widget(height=560).add_class("packrat-figure-timeline")
        for control in (self.plan, self.rate, self.target, self.slo):
            control.style.description_width = "90px"
        self.start.on_click(lambda _: self.start_pool())
        self.stop.on_click(lambda _: controller.stop())
        self.load.observe(self._on_load, names="value")
        self.rate.observe(lambda change: controller.set_rate(float(change["new"])), names="value")
        self.poisson.observe(
            lambda change: setattr(controller, "poisson", bool(change["new"])), names="value"
        )
        self.apply.on_click(lambda _: self.reconfigure())
        self.auto.observe(lambda change: controller.set_auto(bool(change["new"])), names="value")
        self.slo.observe(lambda _: self.apply_slo(), names="value")
        for box in (self.plan, self.target):
            box.observe(lambda _: self.render(), names="value")
        controller.changed.add(self.render)
        self.widget = column(
            [
                row([self.plan, self.start, self.stop]),
                self.will_serve,
                row([self.rate, self.poisson, self.load]),
                row([self.target, self.apply, self.auto]),
                row([self.slo, self.slo_note]),
                self.counters,
                self.message,
                self.figure,
            ],
        )
        self.refresh_plans()

    # ---- plan text <-> Plan --------------------------------------------------------------
    def refresh_plans(self) -> None:
        """Offer the Plan step's plans in both boxes; the plan chosen in Plan fills the Plan box (Serve follows Plan)."""
        known = self._known_plans()
        options = list(dict.fromkeys(plan.text for plan in known.values()))
        self.plan.options = options
        self.target.options = options
        chosen = self._chosen()
        idle = self.controller.state in (ServeState.STOPPED, ServeState.FAILED)
        if chosen is not None and chosen.text != self._offered and idle:
            self._offered = chosen.text
            self.plan.value = chosen.text
        elif known and not self.plan.value:
            self.plan.value = next(iter(known.values())).text
        self.render()

    def _plan_label(self, text: str) -> str:
        """'packrat ⟨2,1,4⟩ (2x1x4), expected 3.1 ms' for a plan the Plan step knows, else the parsed plan."""
        try:
            plan = self._resolve(text)
        except ValueError:
            return f"<span style='color:#b00020'>{text!r} is not a plan; {_PLAN_HINT}</span>"
        name = next((n for n, p in self._known_plans().items() if p.text == plan.text), None)
        expected = (
            f", expected {plan.expected_latency_ms:.2f} ms per batch" if plan.expected_latency_ms else ""
        )
        origin = f"{name} plan from step 2" if name else "typed plan"
        return f"{origin}: {plan} ({plan.text}){expected}"

    def _resolve(self, text: str) -> Plan:
        """A known plan with this text (keeps its expected latency), else the parsed text."""
        from packrat_lab.plan import Plan

        for plan in self._known_plans().values():
            if plan.text == text.strip():
                return plan
        return Plan.parse(text)

    def _valid(self, text: str) -> bool:
        try:
            self._resolve(text)
        except ValueError:
            return False
        return True

    # ---- actions -------------------------------------------------------------------------
    def start_pool(self) -> None:
        """Start button: a pool for the plan in the box, with the model from step 1."""
        try:
            self.controller.start(self._model(), self._resolve(self.plan.value), self._profile())
        except (ValueError, RuntimeError) as exc:
            self.message.value = f"<span style='color:#b00020'>{exc}</span>"

    def reconfigure(self) -> None:
        """Reconfigure button: switch live to the plan in the 'Switch to' box."""
        try:
            self.controller.reconfigure(self._resolve(self.target.value))
        except (ValueError, RuntimeError) as exc:
            self.message.value = f"<span style='color:#b00020'>{exc}</span>"

    def apply_slo(self) -> None:
        """SLO box (Enter or leaving it): check the text, then set the objective, live when a pool runs."""
        try:
            value = parse_slo(self.slo.value)
            if value != self.controller.slo_ms:
                self.controller.set_slo(value)
        except (ValueError, RuntimeError, OSError) as exc:  # bad text, or the server refused it (400)
            self._slo_error = first_line(exc)
        else:
            self._slo_error = None
        self.render()

    def _on_load(self, change: dict[str, Any]) -> None:
        try:
            if change["new"]:
                self.controller.start_load(float(self.rate.value), bool(self.poisson.value))
            else:
                self.controller.stop_load()
        except (ValueError, RuntimeError) as exc:
            self.message.value = f"<span style='color:#b00020'>{exc}</span>"

    # ---- view ----------------------------------------------------------------------------
    def render(self) -> None:
        """Enable what is possible now, update counters, status and the timeline."""
        c = self.controller
        idle = c.state in (ServeState.STOPPED, ServeState.FAILED)
        self.plan.disabled = not idle
        if not idle and c.plan is not None and self.plan.value != c.plan.text:
            self.plan.value = c.plan.text  # the box shows what is served now, also after a switch
        self.start.disabled = not idle or not self._valid(self.plan.value or "")
        self.stop.disabled = idle or c.state is ServeState.STOPPING
        self.load.disabled = not c.running
        if self.load.value != c.load_running:
            self.load.value = c.load_running
        self.load.description = "Stop load" if c.load_running else "Send load"
        self.load.button_style = "warning" if c.load_running else ""
        self.target.disabled = not c.running
        if c.state is ServeState.RUNNING and c.plan is not None and self.target.value in ("", c.plan.text):
            others = [text for text in self.target.options if text != c.plan.text]
            if others:  # suggest a switch: the first other plan the Plan step knows
                self.target.value = others[0]
        self.apply.disabled = c.state is not ServeState.RUNNING or not self._valid(self.target.value or "")
        if self.auto.value != c.auto:
            self.auto.value = c.auto  # the pool's word: Auto may be paused by a manual switch anywhere
        text = (self.plan.value or "").strip()
        verb = "Serving" if c.running else "Start pool will serve"
        self.will_serve.value = (
            f"<span style='color:#555;font-size:12px'>{verb} {self._plan_label(text)}</span>" if text else ""
        )
        self._render_slo()
        self.counters.value = self._counters_html()
        self.message.value = c.status()
        self.redraw()

    def _render_slo(self) -> None:
        """The SLO box follows the pool (the sidebar may change it); the note says what it does, or what was wrong."""
        c = self.controller
        if c.slo_ms != self._slo_shown:
            self._slo_shown, self._slo_error = c.slo_ms, None
            try:
                stale = parse_slo(self.slo.value) != c.slo_ms
            except ValueError:
                stale = True
            if stale:  # the box shows what is in force now (it says so beside it)
                self.slo.value = fmt_ms(c.slo_ms)
        if self._slo_error:
            note = f"<span style='color:#b00020'>{self._slo_error}</span>"
        elif c.slo_ms is None:
            note = "<span style='color:#555'>off: every request is queued and answered, however late</span>"
        else:
            when = "" if c.running else " (the pool starts with it)"
            note = (
                f"<span style='color:#555'>{fmt_ms(c.slo_ms)} ms{when}: a request predicted to miss it "
                "is refused (429), a queued one past it is dropped</span>"
            )
        self.slo_note.value = note

    def _counters_html(self) -> str:
        c = self.controller.counters
        last = self.controller.samples[-1] if self.controller.samples else {}

        def ms(value: float | None) -> str:
            return "—" if value is None else f"{value:.1f}"

        rate = last.get("throughput_rps")
        cells = [
            ("served", f"{c['served']:,}", "#009E73" if c["served"] else "#333"),
            ("failed", f"{c['failed']:,}", "#D55E00" if c["failed"] else "#333"),
            ("lost", f"{c['lost']:,}", "#D55E00" if c["lost"] else "#333"),
            ("in flight", f"{c['in_flight']:,}", "#0072B2" if c["in_flight"] else "#333"),
            ("pool p50 ms", ms(last.get("p50_ms")), "#333"),
            ("pool p99 ms", ms(last.get("p99_ms")), "#333"),
            ("served req/s", "—" if rate is None else f"{rate:.1f}", "#333"),
        ]
        if self.controller.slo_ms is not None or any(c[k] for k in ("rejected", "dropped", "late")):
            attainment, goodput = last.get("slo_attainment"), last.get("goodput_rps")
            cells += [
                ("rejected", f"{c['rejected']:,}", "#D55E00" if c["rejected"] else "#333"),
                ("dropped", f"{c['dropped']:,}", "#D55E00" if c["dropped"] else "#333"),
                ("late", f"{c['late']:,}", "#D55E00" if c["late"] else "#333"),
                ("SLO met", "—" if attainment is None else f"{100 * attainment:.1f} %", "#333"),
                ("goodput req/s", "—" if goodput is None else f"{goodput:.1f}", "#333"),
            ]
        spans = "".join(
            f"<span class='packrat-counter' style='display:inline-block;min-width:96px;margin-right:12px'>"
            f"<span class='packrat-count packrat-count-{label.replace(' ', '-').replace('/', '-')}' "
            f"style='font-size:20px;font-weight:600;color:{colour}'>{value}</span>"
            f"<br><span style='color:#666;font-size:11px;text-transform:uppercase'>{label}</span></span>"
            for label, value, colour in cells
        )
        return f"<div style='padding:4px 0'>{spans}</div>"

    def draw(self) -> None:
        """Update the timeline: new points go into the existing traces; a full rebuild only when markers change."""
        from packrat_lab.plots import plot_timeline, timeline_info
        from packrat_lab.plots.timeline import timeline_traces
        from packrat_lab.ui.figures import empty_figure, show_figure

        samples, events = self.controller.window()
        if not samples:
            if self._drawn != (-1, None, False):
                self._drawn = (-1, None, False)
                show_figure(
                    self.figure, empty_figure("The live timeline appears here once a pool runs", height=560)
                )
            return
        t0 = self.controller.started
        info = timeline_info(samples, events, window_s=self.controller.window_s, t0=t0)
        shape = (len(info.markers), t0, info.has_slo)
        if self._drawn != shape:
            self._drawn = shape
            show_figure(self.figure, plot_timeline(info))
            return
        with self.figure.batch_update():  # the data traces come first, in timeline_traces' order
            for trace, fresh in zip(self.figure.data, timeline_traces(info), strict=False):
                trace.update(fresh.data)
