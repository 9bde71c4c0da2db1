"""Step 1 of the Lab: profile a model in a background thread; the surface fills in as points finish."""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packrat_lab.ui._util import (
    Listeners,
    Throttle,
    column,
    fmt_duration,
    is_module,
    namespace_models,
    parse_batches,
    row,
    zoo_models,
)
from packrat_lab.workloads.backends.names import BACKENDS

if TYPE_CHECKING:
    from packrat_lab.plots.surface import SurfaceInfo
    from packrat_lab.profiling.measurement import Measurement
    from packrat_lab.profiling.table import Profile
    from packrat_lab.ui.backend import Backend

__all__ = ["ProfileController", "ProfileRequest", "ProfileState", "ProfileStep"]

_SETTINGS_PER_POINT = 2  # the profiler measures each (t, b) under the built-in runtime settings
_POINT_OVERHEAD_S = 3.0  # a fresh process, torch import and warm-up per point (measured on 2 busy cores)


class ProfileState(enum.Enum):
    """Where a profiling run is."""

    IDLE = "idle"
    RUNNING = "running"
    CANCELLING = "cancelling"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True)
class ProfileRequest:
    """What to profile: a model, the cores to use, the batch sizes and a total time budget."""

    model: Any
    label: str
    cores: int
    batches: tuple[int, ...]
    budget_s: float
    backends: tuple[str, ...] = ("eager",)

    @property
    def points(self) -> int:
        """How many (threads, batch, setting, backend) points the profiler will measure."""
        return self.cores * len(self.batches) * _SETTINGS_PER_POINT * max(1, len(self.backends))

    @property
    def point_time_s(self) -> float:
        """Timing cap per point: the budget spread over the points, less each point's start-up cost."""
        return max(0.3, self.budget_s / max(1, self.points) - _POINT_OVERHEAD_S)


class ProfileController:
    """State of one profiling run at a time, kept apart from widgets so it is testable headless."""

    def __init__(self, backend: Backend, clock: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self.clock = clock
        self.state = ProfileState.IDLE
        self.request: ProfileRequest | None = None
        self.done = 0
        self.total = 0
        self.measurements: list[Measurement] = []
        self.profile: Profile | None = None
        self.error: str | None = None
        self.changed = Listeners()
        self._started = 0.0
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        """True while the background run has not finished."""
        return self.state in (ProfileState.RUNNING, ProfileState.CANCELLING)

    def start(self, request: ProfileRequest) -> None:
        """Begin profiling in a background thread; the kernel stays usable."""
        if self.running:
            msg = "a profile is already running; cancel it first (Lab: Cancel, magic: %packrat stop)"
            raise RuntimeError(msg)
        with self._lock:
            self.request = request
            self.state = ProfileState.RUNNING
            self.done, self.total = 0, request.points
            self.measurements = []
            self.profile = None
            self.error = None
            self._started = self.clock()
            self._cancel = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(request, self._cancel), name="packrat-profile", daemon=True
        )
        self._thread.start()
        self.changed()

    def adopt(self, profile: Profile, request: ProfileRequest) -> None:
        """Take a profile measured before (e.g. Lab(profile=...)) as this step's finished result."""
        if self.running:
            msg = "a profile is already running; cancel it first"
            raise RuntimeError(msg)
        with self._lock:
            self.request, self.profile = request, profile
            self.measurements = list(profile.measurements)
            self.done = self.total = len(profile.measurements)
            self.state, self.error = ProfileState.DONE, None
            self._started = self.clock() - float(profile.meta.get("wall_s", 0.0))
        self.changed()

    def cancel(self) -> None:
        """Ask the profiler to stop after the point it is measuring."""
        if self.state is ProfileState.RUNNING:
            self.state = ProfileState.CANCELLING
            self._cancel.set()
            self.changed()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the run to end; True if it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def on_progress(self, done: int, total: int, measurement: Measurement) -> None:
        """Profiler callback: one more point measured."""
        with self._lock:
            self.done, self.total = done, total
            self.measurements.append(measurement)
        self.changed()

    def _run(self, request: ProfileRequest, cancel: threading.Event) -> None:
        try:
            result = self.backend.profile(
                request.model,
                cores=request.cores,
                batches=request.batches,
                point_time_s=request.point_time_s,
                progress=self.on_progress,
                cancel=cancel,
                time_budget_s=request.budget_s,
                **({"backends": list(request.backends)} if request.backends != ("eager",) else {}),
            )
        except Exception as exc:  # noqa: BLE001 - a background thread reports failures as status
            if cancel.is_set():
                self._finish(ProfileState.CANCELLED, self.partial())
            else:
                self.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self._finish(ProfileState.FAILED, None)
            return
        self._finish(ProfileState.CANCELLED if cancel.is_set() else ProfileState.DONE, result)

    def _finish(self, state: ProfileState, profile: Profile | None) -> None:
        with self._lock:
            self.profile = profile if profile is not None and profile.measurements else None
            self.state = state
        self.changed()

    # ---- derived -------------------------------------------------------------------------
    @property
    def elapsed_s(self) -> float:
        """Seconds since the run started."""
        return self.clock() - self._started if self.request else 0.0

    @property
    def remaining_s(self) -> float | None:
        """Estimated seconds left: measured pace when known, else the budget."""
        if not self.running or self.request is None:
            return None
        budget_left = max(0.0, self.request.budget_s - self.elapsed_s)
        if self.done == 0:
            return budget_left
        # measured cost per point so far, but never past the budget: the profiler stops starting points there
        return min(budget_left, self.elapsed_s / self.done * max(0, self.total - self.done))

    def partial(self) -> Profile | None:
        """The points measured so far as a Profile (for the live surface)."""
        from packrat_lab.profiling.table import Profile

        with self._lock:
            if not self.measurements:
                return None
            label = self.request.label if self.request else "model"
            profile = Profile(label)
            for m in self.measurements:
                profile.add(m)
            return profile

    def status(self) -> str:
        """One line that says what is happening."""
        label = self.request.label if self.request else ""
        if self.state is ProfileState.IDLE:
            return "Pick a model, cores, batch sizes and a time budget, then press Profile."
        if self.state is ProfileState.RUNNING and self.done == 0:
            return (
                f"Profiling {label}: loading torch and the model in the first point's process "
                f"(0/{self.total} points; at most {fmt_duration(self.remaining_s)} left)…"
            )
        if self.state is ProfileState.RUNNING:
            return f"Profiling {label}: {self.done}/{self.total} points, about {fmt_duration(self.remaining_s)} left."
        if self.state is ProfileState.CANCELLING:
            return f"Cancelling {label} after the current point…"
        if self.state is ProfileState.DONE:
            measured = len(self.profile.measurements) if self.profile else self.done
            stopped = (self.profile.meta.get("stopped") if self.profile else None) == "time-budget"
            if stopped:
                return (
                    f"Profiled {label}: stopped at the {fmt_duration(self.request.budget_s if self.request else 0)} "
                    f"time budget with {_points(measured)} of {self.total} (a partial profile: plans use only "
                    f"these). Next: step 2, Plan, or raise the budget."
                )
            return f"Profiled {label}: {_points(measured)} in {fmt_duration(self.elapsed_s)}. Next: step 2, Plan."
        if self.state is ProfileState.CANCELLED:
            if not self.profile:
                return f"Cancelled {label}: no points measured."
            grid = self.profile
            return (
                f"Cancelled {label}: partial profile of {_points(len(grid.measurements))} of {self.total} "
                f"(threads {_span(grid.threads)}, batch {_span(grid.batches)}); plans use only these."
            )
        return f"Profiling {label} failed: {self.error}"


def _points(count: int) -> str:
    return f"{count} point{'s' if count != 1 else ''}"


def _span(values: Sequence[int]) -> str:
    return str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"


class ProfileStep:
    """The Profile tab: model, cores, batch sizes, budget, progress, and the live latency surface."""

    def __init__(
        self,
        controller: ProfileController,
        *,
        model: Any = None,
        cores: int | None = None,
        max_cores: int = 1,
        batches: Sequence[int] = (1, 2, 4, 8),
        budget_s: float = 30.0,
        namespace: Mapping[str, Any] | None = None,
        refresh_hz: float = 6.0,
    ) -> None:
        import ipywidgets as widgets

        from packrat_lab.ui.figures import new_widget

        self.controller = controller
        self.namespace = namespace
        self._objects: dict[str, Any] = {}
        self.model = widgets.Dropdown(description="Model", options=self._model_options(model))
        self.cores = widgets.IntSlider(
            value=min(max(1, cores or max_cores), max_cores),
            min=1,
            max=max(1, max_cores),
            description="Cores",
        )
        self.batches = widgets.Text(
            value=", ".join(str(b) for b in batches), description="Batch sizes", placeholder="1, 2, 4, 8"
        )
        self.budget = widgets.BoundedIntText(value=int(budget_s), min=2, max=3600, description="Budget (s)")
        self.backends = widgets.SelectMultiple(
            options=list(BACKENDS), value=("eager",), rows=len(BACKENDS), description="Backends"
        )  # other runtimes are checked against eager fp32 and left out beyond the accuracy tolerance
        self.run = widgets.Button(
            description="Profile",
            button_style="primary",
            icon="play",
            tooltip="Measure latency at every thread count × batch size",
        )
        self.cancel = widgets.Button(
            description="Cancel", icon="stop", tooltip="Stop after the current point"
        )
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, description="Progress")
        self.message = widgets.HTML().add_class("packrat-status")
        self.kind = widgets.ToggleButtons(
            options=[("Heatmap", "heatmap"), ("3-D surface", "3d")], value="heatmap"
        )
        self.figure = new_widget(height=440).add_class("packrat-figure-surface")
        for control in (self.model, self.cores, self.batches, self.budget, self.backends, self.progress):
            control.style.description_width = "90px"
        self.run.on_click(lambda _: self.start())
        self.cancel.on_click(lambda _: controller.cancel())
        for control in (self.model, self.cores, self.batches, self.budget, self.backends):
            control.observe(lambda _: self.render(), names="value")
        self.kind.observe(lambda _: self.draw_surface(), names="value")
        self._throttle = Throttle(self.draw_surface, 1.0 / refresh_hz)
        controller.changed.add(self._on_change)
        self.widget = column(
            [
                row([self.model, self.cores]),
                row([self.batches, self.budget]),
                self.backends,
                row([self.run, self.cancel, self.progress]),
                self.message,
                self.kind,
                self.figure,
            ],
        )
        self.render()
        self.draw_surface()

    def _model_options(self, model: Any) -> list[tuple[str, str]]:
        """Zoo names and notebook models as (label, key) pairs; a passed-in model comes first."""
        options = [(f"{name} (zoo)", name) for name in zoo_models()]
        self._objects = {}
        found = namespace_models(self.namespace)
        if model is not None and not isinstance(model, str):
            found = {"model": model, **found}
        for name, value in found.items():
            key = f"var:{name}"
            self._objects[key] = value
            options.append((f"{name} ({type(value).__name__})", key))
        if isinstance(model, str):
            options.sort(key=lambda pair: pair[1] != model)
        elif model is not None:
            options.sort(key=lambda pair: pair[1] != "var:model")
        return options

    def request(self) -> ProfileRequest:
        """The run the controls describe; ValueError names what to fix."""
        key = self.model.value
        if key is None:
            msg = "pick a model; example: mlp"
            raise ValueError(msg)
        model = self._objects.get(key, key)
        label = key.removeprefix("var:")
        if is_module(model):
            msg = (
                f"{label} is a bare nn.Module: the profiler needs its input shape; "
                f"example: Lab({label}, example_input=x) or {label}_wl = pl.get_workload({label}, example_input=x)"
            )
            raise ValueError(msg)
        return ProfileRequest(
            model,
            label,
            int(self.cores.value),
            tuple(parse_batches(self.batches.value)),
            float(self.budget.value),
            tuple(self.backends.value) or ("eager",),
        )

    def start(self) -> None:
        """Start profiling what the controls say (the Profile button)."""
        try:
            self.controller.start(self.request())
        except (ValueError, RuntimeError) as exc:
            self.message.value = f"<span style='color:#b00020'>{exc}</span>"

    def _on_change(self) -> None:
        self.render()
        self._throttle(force=not self.controller.running)

    def render(self) -> None:
        """Enable what is possible now and say what is happening."""
        c = self.controller
        busy = c.running
        invalid = None
        try:
            request = self.request()
        except ValueError as exc:
            invalid = str(exc)
        for control in (self.model, self.cores, self.batches, self.budget):
            control.disabled = busy
        self.run.disabled = busy or invalid is not None
        self.cancel.disabled = c.state is not ProfileState.RUNNING
        self.progress.value = (c.done / c.total) if c.total else 0.0
        self.progress.bar_style = {"done": "success", "failed": "danger", "cancelled": "warning"}.get(
            c.state.value, "info"
        )
        text = c.status()
        if invalid is not None and not busy:
            text = f"<span style='color:#b00020'>{invalid}</span>"
        elif c.state is ProfileState.IDLE and invalid is None:
            text = (
                f"{text} This measures {request.points} points (each thread count × batch × 2 runtime "
                f"settings), timing each for up to {request.point_time_s:.1f} s in a fresh process."
            )
        self.message.value = text

    def draw_surface(self) -> None:
        """Redraw the surface from the points measured so far."""
        from packrat_lab.plots.surface import plot_surface, surface_info
        from packrat_lab.ui.figures import empty_figure, show_figure

        profile = self.controller.profile or self.controller.partial()
        if profile is None:
            show_figure(
                self.figure,
                empty_figure("The latency surface appears here as points are measured", height=440),
            )
            return
        info = surface_info(profile)
        request = self.controller.request
        if self.controller.running and request is not None:  # the whole planned grid, blanks still to come
            info = padded(info, tuple(range(1, request.cores + 1)), request.batches)
        show_figure(self.figure, plot_surface(info, kind=self.kind.value))

    def close(self) -> None:
        """Stop pending redraws."""
        self._throttle.cancel()


def padded(info: SurfaceInfo, threads: tuple[int, ...], batches: tuple[int, ...]) -> SurfaceInfo:
    """The surface laid on the full planned grid (unmeasured cells empty), so axes do not jump while profiling."""
    import dataclasses

    import numpy as np

    threads = tuple(sorted(set(threads) | set(info.threads)))
    batches = tuple(sorted(set(batches) | set(info.batches)))
    rows = [threads.index(t) for t in info.threads]
    cols = [batches.index(b) for b in info.batches]
    fills: dict[str, Any] = {"latency_ms": np.nan, "iqr_ms": np.nan, "n": 0, "setting": "", "noisy": False}
    fills.update({"backend": "", "error": ""})  # per-cell arrays beside a profile over several runtimes
    arrays: dict[str, Any] = {}
    for name, fill in fills.items():
        old = getattr(info, name)
        if old is None:
            continue
        new = np.full((len(threads), len(batches)), fill, dtype=old.dtype)
        new[np.ix_(rows, cols)] = old
        arrays[name] = new
    return dataclasses.replace(info, threads=threads, batches=batches, **arrays)
