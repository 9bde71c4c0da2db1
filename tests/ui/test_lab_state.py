"""The Lab's steps change state as a user expects: fake profiler, optimizer and pool; no browser."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from ui_fakes import FakeBackend, latency

from packrat_lab.plan import Plan
from packrat_lab.profiling.table import profile_from_latencies
from packrat_lab.ui._util import Throttle, fmt_duration, namespace_models, parse_batches
from packrat_lab.ui.lab import Lab
from packrat_lab.ui.plan_step import PlanController
from packrat_lab.ui.profile_step import ProfileController, ProfileRequest, ProfileState
from packrat_lab.ui.serve_controller import ServeController, ServeState


def make_lab(backend: FakeBackend, **kwargs: Any) -> Lab:
    return Lab(backend=backend, host_cores=2, namespace={}, **kwargs)


# ---- helpers ---------------------------------------------------------------------------------


def test_parse_batches_sorts_and_rejects_bad_parts() -> None:
    assert parse_batches("8, 1,2 ,2") == [1, 2, 8]
    with pytest.raises(ValueError, match="'x'"):
        parse_batches("1, x")
    with pytest.raises(ValueError, match="at least one"):
        parse_batches(" , ")


def test_fmt_duration() -> None:
    assert fmt_duration(None) == "…"
    assert fmt_duration(42.4) == "42 s"
    assert fmt_duration(185) == "3 min 5 s"


def test_throttle_delivers_a_late_call_instead_of_dropping_it() -> None:
    now = [0.0]
    calls: list[float] = []
    fired = threading.Event()

    def action() -> None:
        calls.append(now[0])
        fired.set()

    throttle = Throttle(action, 0.05, clock=lambda: now[0])
    throttle()
    assert calls == [0.0]
    fired.clear()
    throttle()  # too soon: deferred to a timer
    assert calls == [0.0]
    assert fired.wait(2)
    assert len(calls) == 2
    throttle(force=True)
    assert len(calls) == 3


def test_namespace_models_finds_workloads_and_modules() -> None:
    import torch

    from packrat_lab.workloads.registry import get_workload

    ns = {"net": torch.nn.Linear(2, 2), "wl": get_workload("mlp"), "x": 3, "_hidden": torch.nn.ReLU()}
    assert sorted(namespace_models(ns)) == ["net", "wl"]


# ---- profile step --------------------------------------------------------------------------


def test_profile_runs_in_background_and_reports_progress() -> None:
    backend = FakeBackend()
    backend.gate.clear()
    controller = ProfileController(backend)
    controller.start(ProfileRequest("mlp", "mlp", 2, (1, 2), 10.0))
    assert controller.state is ProfileState.RUNNING
    assert controller.total == 2 * 2 * 2
    assert controller.remaining_s is not None
    backend.gate.set()
    assert controller.join(5)
    assert controller.state is ProfileState.DONE  # type: ignore[comparison-overlap]  # changed by the thread
    assert controller.profile is not None
    assert controller.profile.threads == [1, 2] and controller.profile.batches == [1, 2]
    assert "4 points" in controller.status()


def test_profile_cancel_keeps_partial_points() -> None:
    backend = FakeBackend()
    backend.gate.clear()
    controller = ProfileController(backend)
    controller.start(ProfileRequest("mlp", "mlp", 2, (1, 2, 4), 10.0))
    controller.cancel()
    assert controller.state is ProfileState.CANCELLING
    backend.gate.set()
    assert controller.join(5)
    assert controller.state is ProfileState.CANCELLED  # type: ignore[comparison-overlap]  # changed by the thread
    assert controller.profile is not None and len(controller.profile.measurements) == 1
    # issue 9 #7: 'kept 1 points' said nothing of what the partial profile holds
    assert "partial profile of 1 point of 6 (threads 1, batch 1)" in controller.status()


def test_profile_passes_the_time_budget_and_the_eta_never_exceeds_it() -> None:
    """Regression (issue 9 #7): the widget never passed its budget; the ETA jumped past it."""
    seen: dict[str, Any] = {}
    backend = FakeBackend()
    original = backend.profile

    def spy(model: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return original(model, **kwargs)

    backend.profile = spy  # type: ignore[method-assign]
    now = [0.0]
    controller = ProfileController(backend, clock=lambda: now[0])
    backend.gate.clear()
    controller.start(ProfileRequest("mlp", "mlp", 2, (1, 2, 4), 30.0))
    now[0] = 10.0
    controller.done, controller.total = 1, 12  # one point took 10 s: pace says 110 s more
    assert controller.remaining_s == 20.0  # the budget caps it: the profiler stops starting points there
    backend.gate.set()
    assert controller.join(5)
    assert seen["time_budget_s"] == 30.0


def test_profile_failure_is_a_status_line_not_a_traceback() -> None:
    controller = ProfileController(FakeBackend(fail_profile=True))
    controller.start(ProfileRequest("mlp", "mlp", 1, (1,), 5.0))
    assert controller.join(5)
    assert controller.state is ProfileState.FAILED
    assert "worker crashed" in controller.status()


def test_profile_widget_disables_profile_for_bad_batches_and_while_running() -> None:
    backend = FakeBackend()
    lab = make_lab(backend)
    step = lab.profile_step
    assert not step.run.disabled and step.cancel.disabled
    step.batches.value = "1, two"
    assert step.run.disabled
    assert "'two'" in step.message.value
    step.batches.value = "1, 2"
    step.budget.value = 8
    assert "up to 0.3 s" in step.message.value
    step.budget.value = 200
    assert "up to 22.0 s" in step.message.value
    backend.gate.clear()
    step.run.click()
    assert step.run.disabled and not step.cancel.disabled and step.cores.disabled
    backend.gate.set()
    assert lab.profiling.join(5)
    assert not step.run.disabled and step.cancel.disabled
    assert step.progress.value == 1.0
    lab.close()


def test_surface_fills_in_as_points_arrive_and_toggles_to_3d() -> None:
    lab = make_lab(FakeBackend(), batches=(1, 2))
    lab.profile_step.run.click()
    assert lab.profiling.join(5)
    figure = lab.profile_step.figure
    assert figure.data[0].type == "heatmap"
    assert len(figure.data[0].z) == 2  # two thread counts
    lab.profile_step.kind.value = "3d"
    assert figure.data[0].type == "surface"
    lab.close()


# ---- plan step -----------------------------------------------------------------------------


def test_finished_profile_feeds_plan_step_and_validate_overlays_measured() -> None:
    backend = FakeBackend()
    lab = make_lab(backend, batches=(1, 2, 4))
    assert lab.plan_step.validate.disabled
    lab.profile_step.run.click()
    assert lab.profiling.join(5)
    planning = lab.planning
    assert planning.batch == 4 and list(planning.plans) == ["packrat", "fat"]
    assert lab.plan_step.chosen.value == "packrat"
    assert [t.name for t in lab.plan_step.bars.data] == ["expected (from profile)"]
    assert not lab.plan_step.validate.disabled
    lab.plan_step.validate.click()
    assert planning.join(5)
    assert backend.validated == [["packrat", "fat"]]
    expected_fat = planning.plans["fat"].expected_latency_ms
    assert expected_fat is not None
    assert planning.measured["fat"] == pytest.approx(expected_fat * 1.1)
    assert len(lab.plan_step.bars.data) == 2
    lab.close()


def test_infeasible_batch_shows_why_and_disables_validate() -> None:
    controller = PlanController(FakeBackend())
    profile = profile_from_latencies("m", {(1, 1): 1.0, (2, 1): 1.0, (1, 2): 2.0, (2, 2): 2.0})
    controller.set_profile(profile, cores=2, model="m")
    assert controller.chosen == "packrat"
    controller.set_batch(3)
    assert controller.plans == {} and controller.chosen is None
    assert "no plan for B=3" in controller.status()
    assert not controller.can_validate


def test_plan_map_has_one_winner_per_profiled_batch() -> None:
    controller = PlanController(FakeBackend())
    profile = profile_from_latencies("m", {(t, b): latency(t, b) for t in (1, 2) for b in (2, 4, 8)})
    controller.set_profile(profile, cores=2, model="m")
    best, fat = controller.plan_map()
    assert [p.total_batch for p in best] == [2, 4, 8]
    assert all(p.name == "fat" for p in fat)


# ---- serve step ----------------------------------------------------------------------------


def started(backend: FakeBackend, plan: str = "2x1x2") -> ServeController:
    controller = ServeController(backend, clock=iter(range(1000, 10_000)).__next__)
    controller.start("mlp", Plan.parse(plan), sample_interval_s=None)
    controller.join()
    assert controller.state is ServeState.RUNNING
    return controller


def test_serve_start_samples_counters_and_stop_closes_pool() -> None:
    backend = FakeBackend()
    controller = started(backend)
    controller.sample()
    assert controller.counters["served"] == 2
    assert len(controller.samples) == 2
    controller.stop()
    assert backend.pools[0].closed and controller.state is ServeState.STOPPED
    with pytest.raises(RuntimeError, match="start a pool"):
        controller.reconfigure(Plan.parse("1x2x4"))


def test_reconfigure_switches_live_and_events_become_markers() -> None:
    backend = FakeBackend()
    controller = started(backend)
    controller.reconfigure(Plan.parse("1x2x4"))
    controller.join()
    assert backend.pools[0].reconfigured == ["1x2x4"]
    assert controller.plan is not None and controller.plan.text == "1x2x4"
    _, events = controller.window()
    assert [e["kind"] for e in events] == ["passive-start", "switch", "drained"]
    controller.stop()


def test_window_is_bounded() -> None:
    backend = FakeBackend()
    controller = ServeController(
        backend, clock=iter(range(0, 100_000, 10)).__next__, window_s=60, max_samples=50
    )
    controller.start("mlp", Plan.parse("1x1x1"), sample_interval_s=None)
    controller.join()
    for _ in range(100):
        controller.sample()
    assert len(controller.samples) == 50
    samples, _ = controller.window()
    assert len(samples) == 7  # 60 s window at one sample per 10 s
    controller.stop()


def test_load_generator_uses_the_rate_and_stops() -> None:
    backend = FakeBackend()
    controller = started(backend)
    controller.start_load(rate=123.0)
    assert controller.load_running
    controller.set_rate(50)  # the one running load process follows the slider, no restart
    assert len(backend.loads) == 1 and backend.loads[0].rates == [123.0, 50.0]
    assert "asked 50 req/s" in controller.status()
    controller.stop()
    assert not controller.load_running and not backend.loads[0].alive
    with pytest.raises(ValueError, match="positive"):
        controller.set_rate(0)


def test_a_load_process_that_dies_is_said_not_hidden() -> None:
    backend = FakeBackend()
    controller = started(backend)
    controller.start_load(rate=20)
    load = backend.loads[0]
    load.alive, load.died, load.error = False, True, "ConnectionRefusedError: [Errno 111]"
    assert "the load process stopped: ConnectionRefusedError" in controller.status()
    controller.stop()


def test_widget_follows_a_switch_made_elsewhere() -> None:
    """Regression (issue 9 #4): after Auto or the sidebar switched the pool, the widget showed the old plan."""
    backend = FakeBackend()
    controller = started(backend, "2x1x4")
    backend.pools[0].plan = Plan.parse("1x2x8")  # e.g. PUT /packrat/plan from the sidebar
    controller.sample()
    assert controller.plan is not None and controller.plan.text == "1x2x8"
    assert "1x2x8" in controller.status() and "switched" in controller.status()
    controller.stop()


def test_widget_follows_a_stop_made_elsewhere() -> None:
    """Regression (issue 9 #4): after a sidebar Stop the widget kept saying 'Serving … sending 10 req/s'."""
    backend = FakeBackend()
    controller = started(backend)
    controller.start_load(rate=10)
    backend.pools[0].gone = True  # the server exited: its port refuses connections
    controller.sample()
    assert controller.state is ServeState.STOPPED and controller.pool is None
    assert not controller.load_running and not backend.loads[0].alive
    assert "stopped outside this Lab" in controller.status() and "Serving" not in controller.status()


def test_widget_follows_a_closed_state_and_auto_flag() -> None:
    backend = FakeBackend()
    controller = started(backend)
    backend.pools[0].auto_on = True
    controller.sample()
    assert controller.auto and "Auto was turned on elsewhere" in controller.status()
    backend.pools[0].state = "closed"
    controller.sample()
    assert controller.state is ServeState.STOPPED


def test_manual_switch_pauses_auto_and_says_so() -> None:
    """Regression (issue 9 #4): Auto silently undid a manual switch within 5 s."""
    backend = FakeBackend()
    controller = started(backend)
    controller.set_auto(True)
    controller.reconfigure(Plan.parse("1x2x4"))
    controller.join()
    assert backend.pools[0].auto == [True, False]  # auto off before the switch
    assert backend.pools[0].reconfigured == ["1x2x4"]
    assert not controller.auto and "Auto paused" in controller.status()
    controller.stop()


def test_throughput_comes_from_the_served_counter_not_a_ramping_window() -> None:
    backend = FakeBackend()
    times = itertools.count(0.0, 0.5)
    controller = ServeController(backend, clock=lambda: next(times))
    controller.start("mlp", Plan.parse("1x1x1"), sample_interval_s=None)
    controller.join()
    for _ in range(3):
        controller.sample()
    rows = list(controller.samples)
    assert rows[0]["throughput_rps"] is None  # one sample: no rate yet, not a zero
    assert rows[-1]["throughput_rps"] == pytest.approx(2.0)  # FakePool serves one per stats() call
    controller.stop()


def test_serve_widget_buttons_follow_the_pool_state() -> None:
    backend = FakeBackend()
    lab = make_lab(backend, batches=(1, 2))
    step = lab.serve_step
    step.plan.value = ""
    assert step.start.disabled and step.stop.disabled and step.load.disabled and step.apply.disabled
    step.plan.value = "not a plan"
    assert step.start.disabled
    step.plan.value = "2x1x1"
    assert not step.start.disabled
    step.start.click()
    lab.serving.join()
    assert lab.serving.state is ServeState.RUNNING
    assert step.start.disabled and not step.stop.disabled and not step.load.disabled
    step.target.value = "1x2x2"
    assert not step.apply.disabled
    step.apply.click()
    lab.serving.join()
    assert backend.pools[0].reconfigured == ["1x2x2"]
    step.auto.value = True
    assert backend.pools[0].auto == [True]
    assert "served" in step.counters.value
    step.redraw(force=True)  # redraws are throttled to two a second
    assert step.figure.data[0].name == "p50"
    step.stop.click()
    assert backend.pools[0].closed and not step.start.disabled
    lab.close()


def test_lab_offers_profiled_plans_in_serve_step() -> None:
    lab = make_lab(FakeBackend(), batches=(2, 4))
    lab.profile_step.run.click()
    assert lab.profiling.join(5)
    assert lab.serve_step.plan.value == "2x1x2"
    assert set(lab.serve_step.target.options) >= {"2x1x2", "1x2x4", "2x1x1"}
    lab.close()


def test_notebook_models_are_offered_and_a_bare_module_asks_for_an_example_input() -> None:
    import torch

    from packrat_lab.workloads.base import Workload
    from packrat_lab.workloads.registry import get_workload

    ns = {"net": torch.nn.Linear(4, 4), "wl": get_workload("tiny-cnn")}
    lab = Lab(backend=FakeBackend(), host_cores=2, namespace=ns)
    step = lab.profile_step
    assert {"var:net", "var:wl"} <= {key for _, key in step.model.options}
    step.model.value = "var:net"
    assert step.run.disabled
    assert "example_input" in step.message.value
    step.model.value = "var:wl"
    assert not step.run.disabled
    lab.close()
    wrapped = Lab(
        torch.nn.Linear(4, 4),
        backend=FakeBackend(),
        host_cores=2,
        namespace={},
        example_input=torch.randn(1, 4),
    )
    assert wrapped.profile_step.model.value == "var:model"
    assert isinstance(wrapped.profile_step.request().model, Workload)
    wrapped.close()


@pytest.mark.slow
def test_real_backend_validates_plans_once_each() -> None:
    """Validate through the real API: one pool per distinct plan, measured bars for every name."""
    from packrat_lab.ui.backend import RealBackend

    controller = PlanController(RealBackend())
    profile = profile_from_latencies("mlp", {(t, b): latency(t, b) for t in (1, 2) for b in (1, 2)})
    controller.set_profile(profile, cores=2, model="mlp")
    assert {"packrat", "fat", "thin"} <= set(controller.plans)
    controller.validate()
    assert controller.join(120)
    assert controller.error is None
    assert set(controller.measured) == set(controller.plans)
    assert all(ms > 0 for ms in controller.measured.values())


def test_serve_step_suggests_another_plan_to_switch_to() -> None:
    lab = make_lab(FakeBackend(), batches=(2, 4))
    lab.profile_step.run.click()
    assert lab.profiling.join(5)
    assert lab.serve_step.target.value == ""
    lab.serve_step.start.click()
    lab.serving.join()
    suggested = lab.serve_step.target.value
    assert suggested and suggested != lab.serve_step.plan.value
    assert not lab.serve_step.apply.disabled
    lab.serve_step.apply.click()
    lab.serving.join()
    assert lab.serve_step.plan.value == suggested  # the box shows what is served now
    assert lab.serve_step.target.value not in ("", suggested)  # and a next switch is suggested
    lab.close()


def test_live_surface_keeps_the_planned_grid_while_profiling() -> None:
    import math

    from packrat_lab.plots.surface import surface_info
    from packrat_lab.ui.profile_step import padded

    partial = profile_from_latencies("m", {(1, 1): 2.0, (2, 1): 1.5})
    info = padded(surface_info(partial), (1, 2, 3), (1, 2))
    assert info.threads == (1, 2, 3) and info.batches == (1, 2)
    assert info.latency_ms[1, 0] == 1.5 and math.isnan(info.latency_ms[2, 1])
    assert info.hover_text()[2][1].endswith("not measured")


def test_timeline_appends_points_instead_of_rebuilding() -> None:
    """Regression (issue 9 #2): every stats sample rebuilt the whole plotly timeline in the kernel."""
    backend = FakeBackend()
    lab = make_lab(backend, batches=(1, 2))
    step = lab.serve_step
    step.plan.value = "2x1x1"
    step.start.click()
    lab.serving.join()
    lab.serving.sample()
    step.redraw(force=True)
    traces = list(step.figure.data)
    before = len(traces[0].x)
    lab.serving.sample()
    lab.serving.sample()
    step.redraw(force=True)
    assert [id(t) for t in step.figure.data] == [id(t) for t in traces]  # same traces, updated in place
    assert len(step.figure.data[0].x) == before + 2
    x = list(step.figure.data[0].x)
    assert x[0] > 0 and x == sorted(x)  # seconds since the pool started: labels do not slide
    lab.close()


def test_serve_follows_the_plan_chosen_in_plan_step() -> None:
    """Regression (issue 9 #1): the Serve box kept a stale plan; the Plan step's choice now fills it."""
    lab = make_lab(FakeBackend(), batches=(2, 4))
    lab.serve_step.plan.value = "1x1x1"  # left over from an earlier (cancelled) profile
    lab.profile_step.run.click()
    assert lab.profiling.join(5)
    lab.plan_step.chosen.value = "fat"
    fat = lab.planning.plans["fat"].text
    assert lab.serve_step.plan.value == fat
    assert "fat plan from step 2" in lab.serve_step.will_serve.value
    lab.plan_step.chosen.value = "packrat"
    assert lab.serve_step.plan.value == lab.planning.plans["packrat"].text
    lab.close()


def test_lab_reuses_a_profile_measured_in_the_notebook() -> None:
    """Regression (issue 9 #7): the quickstart's final pl.Lab(...) did not reuse the profile just measured."""
    profile = profile_from_latencies("mlp", {(t, b): latency(t, b) for t in (1, 2) for b in (1, 2, 4)})
    backend = FakeBackend()
    lab = make_lab(backend, profile=profile, model="mlp")
    assert lab.planning.profile is profile and lab.tabs.selected_index == 1
    assert lab.profiling.state is ProfileState.DONE and "6 points" in lab.profiling.status()
    assert lab.planning.plans and lab.serve_step.plan.value == lab.planning.chosen_plan.text  # type: ignore[union-attr]
    lab.close()


def test_partial_profile_plans_on_the_cores_it_measured() -> None:
    """Regression (issue 9 #7): after Cancel the Plan step said 'on 1 cores' in one place and 2 in another."""
    profile = profile_from_latencies("mlp", {(1, 1): 2.0, (1, 2): 3.0})
    controller = PlanController(FakeBackend())
    controller.set_profile(profile, cores=2, model="mlp")
    assert controller.cores == 1 and "on 1 cores" not in controller.status()


def test_auto_paused_elsewhere_is_said_and_the_checkbox_follows_without_a_request() -> None:
    backend = FakeBackend()
    lab = make_lab(backend, batches=(1, 2))
    step = lab.serve_step
    step.plan.value = "2x1x1"
    step.start.click()
    lab.serving.join()
    step.auto.value = True
    pool = backend.pools[0]
    assert pool.auto == [True]
    pool.auto_on = False  # e.g. a sidebar switch paused it
    lab.serving.sample()
    assert step.auto.value is False
    assert pool.auto == [True]  # the checkbox caught up without sending anything back
    assert "Auto was paused elsewhere" in step.message.value
    lab.close()


def test_plan_step_warns_when_the_plan_rests_on_noise() -> None:
    """Regression (issue 9 #6): a plan built on noisy points was shown as a confident speedup."""
    from packrat_lab.profiling.measurement import Measurement
    from packrat_lab.profiling.table import Profile

    profile = Profile("mlp")
    for t in (1, 2):
        for b in (1, 2, 4):
            samples = tuple(latency(t, b) * (1 + 0.4 * (k % 3 - 1)) for k in range(6))
            profile.add(Measurement(t, b, "default", samples, stop_reason="cap"))
    controller = PlanController(FakeBackend())
    controller.set_profile(profile, cores=2, model="mlp")
    status = controller.status()
    assert "⚠ uncertain" in status and "noisy profile point" in status and "validate" in status
    assert "expected" in status
