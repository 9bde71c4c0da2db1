"""Small helpers the UI steps share: refresh throttling, model discovery, input parsing."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from packrat_lab._numbers import positive_number

if TYPE_CHECKING:
    import ipywidgets as widgets

__all__ = [
    "Listeners",
    "Throttle",
    "check_slo_ms",
    "column",
    "first_line",
    "fmt_duration",
    "fmt_ms",
    "namespace_models",
    "parse_batches",
    "parse_slo",
    "row",
    "zoo_models",
]


class Listeners:
    """Callbacks run after a controller's state changes (a failing view never breaks the controller)."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], None]] = []
        self.errors: list[BaseException] = []

    def add(self, callback: Callable[[], None]) -> None:
        """Call `callback()` on every change."""
        self._callbacks.append(callback)

    def __call__(self) -> None:
        for callback in list(self._callbacks):
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 - a view bug must not kill a profiling or sampling thread
                self.errors.append(exc)


class Throttle:
    """Run `action` at most once per `interval_s`; a call in between is delivered late, never lost."""

    def __init__(
        self, action: Callable[[], None], interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.action = action
        self.interval_s = interval_s
        self.clock = clock
        self._last = -float("inf")
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def __call__(self, force: bool = False) -> None:
        with self._lock:
            wait = self._last + self.interval_s - self.clock()
            if not force and wait > 0:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self._fire)
                    self._timer.daemon = True
                    self._timer.start()
                return
            self._cancel_timer()
            self._last = self.clock()
        self.action()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            self._last = self.clock()
        self.action()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def cancel(self) -> None:
        """Drop a pending late call."""
        with self._lock:
            self._cancel_timer()


def fmt_duration(seconds: float | None) -> str:
    """'42 s', '3 min 5 s' or '…' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "…"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60} s"


def zoo_models() -> list[str]:
    """Built-in model names, small ones first (they profile in seconds)."""
    from packrat_lab.workloads.zoo import ZOO

    return sorted(ZOO, key=lambda name: (not ZOO[name].small, name))


def namespace_models(namespace: Mapping[str, Any] | None) -> dict[str, Any]:
    """Notebook variables that hold a model: Workloads and torch nn.Modules (torch not imported here)."""
    if not namespace:
        return {}
    from packrat_lab.workloads.base import Workload

    found = {}
    for name, value in namespace.items():
        if name.startswith("_"):
            continue
        if isinstance(value, Workload) or is_module(value):
            found[name] = value
    return dict(sorted(found.items()))


def is_module(value: Any) -> bool:
    """True for a torch nn.Module, without importing torch when the notebook has not."""
    torch = sys.modules.get("torch")
    module_type = getattr(getattr(torch, "nn", None), "Module", None)
    return module_type is not None and isinstance(value, module_type)


def parse_batches(text: str) -> list[int]:
    """'1, 2, 4, 8' -> [1, 2, 4, 8]; raises ValueError naming the bad part."""
    out: list[int] = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            msg = f"batch size {part!r} is not an integer; example: 1, 2, 4, 8"
            raise ValueError(msg) from None
        if value < 1:
            msg = f"batch size {value} must be at least 1; example: 1, 2, 4, 8"
            raise ValueError(msg)
        out.append(value)
    if not out:
        msg = "give at least one batch size; example: 1, 2, 4, 8"
        raise ValueError(msg)
    return sorted(set(out))


def first_line(exc: BaseException) -> str:
    """An error's first line (its type name when it has no text): what a status line shows."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_SLO_EXAMPLE = "example: 50 (empty turns it off)"


def check_slo_ms(value: float | None) -> float | None:
    """A latency objective: a positive, finite number of ms, or None (off); a one-line ValueError otherwise."""
    if value is None:
        return None
    if not positive_number(value):
        msg = f"SLO must be a positive number of milliseconds, got {value!r}; {_SLO_EXAMPLE}"
        raise ValueError(msg)
    return float(value)


def parse_slo(text: str) -> float | None:
    """The SLO box's text ('50', '50 ms'; empty or 'off' is None) as milliseconds, checked."""
    clean = text.strip().lower().removesuffix("ms").strip()
    if clean in ("", "off", "none"):
        return None
    try:
        value = float(clean)
    except ValueError:
        msg = f"SLO {text.strip()[:40]!r} is not a number of milliseconds; {_SLO_EXAMPLE}"
        raise ValueError(msg) from None
    return check_slo_ms(value)


def fmt_ms(value: float | None) -> str:
    """Milliseconds as the SLO box shows them ('' for off); parse_slo reads back the same number."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def row(children: list[Any]) -> widgets.HBox:
    """Controls side by side, spaced and vertically centred by the Lab's stylesheet."""
    import ipywidgets as widgets

    return widgets.HBox(
        children, layout=widgets.Layout(align_items="center", flex_flow="row wrap")
    ).add_class("packrat-row")


def column(children: list[Any]) -> widgets.VBox:
    """A step's content: rows, status line and figures, spaced by the Lab's stylesheet."""
    import ipywidgets as widgets

    return widgets.VBox(children).add_class("packrat-step")
