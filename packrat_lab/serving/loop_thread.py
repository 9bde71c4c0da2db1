"""LoopThread: the background asyncio thread both servers (HTTP, gRPC) run on, so a kernel stays free.

A subclass writes `_main` (build the server, `await self._serve_until_stopped()`, shut it down);
start() returns once it listens or re-raises what failed, stop() ends the wait from any thread.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for the checker: typing_extensions is not a runtime dependency (Python 3.10)
    from typing_extensions import Self

__all__ = ["LoopThread", "host_port"]


def host_port(host: str, port: int) -> str:
    """host:port with an IPv6 host in brackets, e.g. 127.0.0.1:8000 or [::1]:8000."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class LoopThread:
    """One daemon thread running one asyncio loop until stopped; a context manager."""

    def __init__(self, thread_name: str) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    @property
    def running(self) -> bool:
        """Whether the server thread still serves."""
        return self._thread.is_alive()

    async def _main(self) -> None:
        """Build the server, `await self._serve_until_stopped()`, then shut the server down."""
        raise NotImplementedError

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        await self._main()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - surfaced by start()
            self._error = exc
            self._started.set()

    async def _serve_until_stopped(self) -> None:
        """Tell start() the server listens, then wait for a stop request."""
        assert self._stop_event is not None  # set by _serve before _main runs
        self._started.set()
        await self._stop_event.wait()

    def start(self) -> Self:
        """Start serving in the background; returns once the server accepts connections."""
        self._thread.start()
        self._started.wait(10.0)
        if self._error is not None:
            raise self._error
        return self

    def _request_stop(self) -> None:
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and free the port; from the server thread itself it only asks."""
        self._request_stop()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _describe(self) -> str:
        """Where it serves and what, for repr (e.g. "http://127.0.0.1:8000 model='resnet50'")."""
        raise NotImplementedError

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<packrat_lab {type(self).__name__} {self._describe()} {state}>"
