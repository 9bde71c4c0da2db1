"""The pool's timeline: every step of a switch or a fault, timestamped, with observers."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "EventLog"]

EventCallback = Callable[["Event"], None]

_log = logging.getLogger("packrat_lab.pool")
# how loud each event kind is in the log (others are DEBUG): what an operator of `serve` must see
_LEVELS = {
    "worker-failed": logging.WARNING,
    "worker-hung": logging.WARNING,
    "piece-failed": logging.WARNING,
    "reconfigure-failed": logging.WARNING,
    "reconfigure-refused": logging.WARNING,
    "auto-failed": logging.WARNING,
    "supervisor-error": logging.ERROR,
    "worker-replaced": logging.INFO,
    "worker-restart-scheduled": logging.INFO,
    "piece-rerun": logging.INFO,
    "switch": logging.INFO,
    "passive-start": logging.INFO,
    "auto-reconfigure": logging.INFO,
    "state": logging.INFO,
}


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
    """Thread-safe, bounded list of events; observers are called on one delivery thread of its own.

    `record` never runs observer code: the recording thread (often the pool's supervisor) only
    appends and enqueues, so a slow or blocking observer cannot stall the pool. Observers may do
    anything but block for long; one that raises is dropped. `close` ends the delivery thread
    after the events recorded so far were delivered.
    """

    def __init__(self, limit: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self._events: list[Event] = []
        self._limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._callbacks: list[EventCallback] = []
        self._outbox: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._delivery: threading.Thread | None = None

    def record(self, kind: str, plan: str, **detail: Any) -> Event:
        """Append an event and queue it for observers."""
        event = Event(self._clock(), kind, plan, detail)
        level = _LEVELS.get(kind, logging.DEBUG)
        if _log.isEnabledFor(level):
            _log.log(level, "%s [%s] %s", kind, plan, detail or "")
        with self._lock:
            self._events.append(event)
            if len(self._events) > self._limit:
                del self._events[: len(self._events) - self._limit]
            notify = bool(self._callbacks)
        if notify:
            self._outbox.put(event)
        return event

    def subscribe(self, callback: EventCallback) -> None:
        """Call `callback(event)` for each future event (on the log's delivery thread)."""
        with self._lock:
            self._callbacks.append(callback)
            if self._delivery is None:
                self._delivery = threading.Thread(target=self._deliver, name="packrat-events", daemon=True)
                self._delivery.start()

    def _deliver(self) -> None:
        while (event := self._outbox.get()) is not None:
            with self._lock:
                callbacks = list(self._callbacks)
            for callback in callbacks:
                try:
                    callback(event)
                except Exception:  # noqa: BLE001 - a broken observer must not break serving
                    with self._lock:
                        if callback in self._callbacks:
                            self._callbacks.remove(callback)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, then end the delivery thread (idempotent)."""
        with self._lock:
            delivery, self._delivery = self._delivery, None
        if delivery is not None:
            self._outbox.put(None)
            if delivery is not threading.current_thread():
                delivery.join(timeout)

    def snapshot(self) -> list[Event]:
        """A copy of the timeline so far, oldest first."""
        with self._lock:
            return list(self._events)

    def count(self, kind: str) -> int:
        """How many events of one kind were recorded."""
        with self._lock:
            return sum(1 for e in self._events if e.kind == kind)
