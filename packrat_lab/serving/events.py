"""The pool's timeline: every step of a switch or a fault, timestamped, with observers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "EventLog"]

EventCallback = Callable[["Event"], None]


@dataclass(frozen=True)
class Event:
    """One thing that happened to the pool, e.g. kind='switch' at time.time()."""

    time: float
    kind: str  # 'passive-start','warm','switch','drained','stopped','worker-failed','worker-replaced',...
    plan: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for HTTP and the widget)."""
        return {"time": self.time, "kind": self.kind, "plan": self.plan, "detail": dict(self.detail)}


class EventLog:
    """Thread-safe, bounded list of events that also notifies observers (widget, HTTP metrics)."""

    def __init__(self, limit: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self._events: list[Event] = []
        self._limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._callbacks: list[EventCallback] = []

    def record(self, kind: str, plan: str, **detail: Any) -> Event:
        """Append an event and tell observers; an observer that raises is dropped, not fatal."""
        event = Event(self._clock(), kind, plan, detail)
        with self._lock:
            self._events.append(event)
            if len(self._events) > self._limit:
                del self._events[: len(self._events) - self._limit]
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - a broken observer must not break serving
                with self._lock:
                    if callback in self._callbacks:
                        self._callbacks.remove(callback)
        return event

    def subscribe(self, callback: EventCallback) -> None:
        """Call `callback(event)` for each future event (from the pool's threads)."""
        with self._lock:
            self._callbacks.append(callback)

    def snapshot(self) -> list[Event]:
        """A copy of the timeline so far, oldest first."""
        with self._lock:
            return list(self._events)

    def count(self, kind: str) -> int:
        """How many events of one kind were recorded."""
        with self._lock:
            return sum(1 for e in self._events if e.kind == kind)
