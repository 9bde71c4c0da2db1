"""The Lab's backend selector (Profile step) and expected speedup vs eager fat (Plan step), with fakes."""

from __future__ import annotations

import threading
from typing import Any

from backend_profiles import EXACT, point, three_backend_profile
from ui_fakes import FakeBackend

from packrat_lab.plan import Plan
from packrat_lab.profiling.table import Profile
from packrat_lab.settings import DEFAULT
from packrat_lab.ui.backend import EAGER_FAT, RealBackend
from packrat_lab.ui.lab import Lab
from packrat_lab.ui.plan_step import PlanController


class RecordingBackend(FakeBackend):
    """The fake profiler, remembering which backends the widget asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[Any] = []

    def profile(self, model: Any, **kwargs: Any) -> Profile:
        self.asked.append(kwargs.get("backends"))
        return super().profile(model, **kwargs)


def test_profile_step_passes_the_chosen_backends_and_counts_their_points() -> None:
    backend = RecordingBackend()
    lab = Lab(backend=backend, host_cores=2, namespace={}, batches=(1, 2))
    step = lab.profile_step
    eager_only = step.request().points
    step.backends.value = ("eager", "onnxruntime")
    assert step.request().backends == ("eager", "onnxruntime") and step.request().points == 2 * eager_only
    step.run.click()
    assert lab.profiling.join(5)
    step.backends.value = ("eager",)
    step.run.click()
    assert lab.profiling.join(5)
    assert backend.asked == [["eager", "onnxruntime"], None]  # eager alone: the call is as before
    lab.close()


def test_real_plans_add_eager_fat_beside_a_multi_backend_profile() -> None:
    plans = RealBackend().plans(three_backend_profile(), cores=2, batch=8)
    assert {i.backend.key for i in plans["packrat"].instances} == {"onnxruntime"}
    assert plans[EAGER_FAT].instances[0].backend.is_reference and plans[EAGER_FAT].total_threads == 2
    assert plans["fat"].instances[0].backend.key == "onnxruntime"  # the fat shape, best runtime


def test_plan_step_says_the_expected_speedup_vs_eager_fat() -> None:
    class WithEagerFat(FakeBackend):
        def plans(self, profile: Profile, *, cores: int, batch: int) -> dict[str, Plan]:
            out = super().plans(profile, cores=cores, batch=batch)
            fat = out["fat"]
            out[EAGER_FAT] = Plan(fat.instances, 4 * (fat.expected_latency_ms or 0.0), EAGER_FAT)
            return out

    profile = FakeBackend().profile(
        "mlp",
        cores=2,
        batches=[1, 2, 4],
        point_time_s=0.1,
        progress=lambda *a: None,
        cancel=threading.Event(),
    )
    statuses = []
    for backend in (WithEagerFat(), FakeBackend()):
        controller = PlanController(backend)
        controller.set_profile(profile, cores=2, model="mlp")
        controller.set_batch(4)
        statuses.append(controller.status())
    best, fat = controller.plans["packrat"], WithEagerFat().plans(profile, cores=2, batch=4)[EAGER_FAT]
    assert best.expected_latency_ms and fat.expected_latency_ms
    assert f"{fat.expected_latency_ms / best.expected_latency_ms:.2f}× vs eager fat" in statuses[0]
    assert "vs eager fat" not in statuses[1]  # a single-backend profile: no second baseline


def test_live_surface_over_several_backends_keeps_each_cell_its_own_backend() -> None:
    """Regression: padding the live surface left the per-cell backend array on the old grid."""
    from packrat_lab.plots.surface import surface_info
    from packrat_lab.ui.profile_step import padded

    partial = Profile(
        "m",
        [point(1, 2, 4.0), point(1, 2, 1.0, "onnxruntime", EXACT), point(2, 2, 3.0)],
        {"default": DEFAULT},
    )
    info = padded(surface_info(partial), (1, 2), (1, 2))
    assert info.batches == (1, 2)
    hover = info.hover_text()
    assert hover[0][0].endswith("not measured")
    assert "backend: onnxruntime" in hover[0][1] and "vs eager fp32: max abs 1e-07" in hover[0][1]
    assert "backend: eager" in hover[1][1] and "vs eager fp32" not in hover[1][1]
