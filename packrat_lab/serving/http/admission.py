"""Admission: how many inference requests the server holds at once, and refusing new ones when stopping."""

from __future__ import annotations

import threading

from packrat_lab.serving.http.protocol import ProtocolError

__all__ = ["Admission"]


class Admission:
    """A thread-safe count of requests in flight with a ceiling; `enter` refuses (503) past it or once closed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._count = 0
        self._closed = False
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        """Requests admitted and not yet left."""
        return self._count

    def enter(self) -> None:
        """Admit one request, or raise ProtocolError with status 503 saying why not."""
        with self._lock:
            if self._closed:
                msg = "server is stopping; send the request to another server or retry after it restarts"
                raise ProtocolError(msg, status=503)
            if self._count >= self.limit:
                msg = f"server already holds {self.limit} inference requests (its limit); retry shortly"
                raise ProtocolError(msg, status=503)
            self._count += 1

    def leave(self) -> None:
        """One admitted request is done."""
        with self._lock:
            self._count -= 1

    def close(self) -> None:
        """Refuse every later request (shutdown)."""
        with self._lock:
            self._closed = True
