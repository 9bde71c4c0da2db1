"""serve_pool: run the v2 + management routes for one pool on a tornado loop in its own thread.

The loop lives in a background thread in both modes, so a notebook kernel (which has its own
asyncio loop) stays responsive, and the foreground mode only waits for that thread (Ctrl-C stops).
Stopping: no new connections, new requests 503, in-flight pool waits fail at once with 503 "cut
off" (the pool's own futures are left alone), connections close (at most 2 s), the loop ends.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from packrat_lab.serving.http.limits import Limits
from packrat_lab.serving.loop_thread import LoopThread, host_port

__all__ = ["Limits", "Server", "serve_pool", "serve_service"]


class Server(LoopThread):
    """A running HTTP server for one pool: `.url`, `.port`, `.token`, `.stop()`; a context manager."""

    def __init__(self, service: Any, sockets: list[socket.socket], host: str) -> None:
        self.service = service
        self.host = host
        self.port = int(sockets[0].getsockname()[1])
        self._sockets = sockets
        super().__init__(f"packrat-http-{self.port}")
        service.on_stop = self._request_stop
        from packrat_lab.serving.http.hosts import allowed_hosts, is_loopback

        service.allowed_hosts = allowed_hosts(self.port) if is_loopback(host) else None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:8000."""
        return f"http://{host_port(self.host, self.port)}"

    @property
    def token(self) -> str:
        """The token mutating management routes require."""
        return str(self.service.token)

    async def _main(self) -> None:
        from tornado.httpserver import HTTPServer

        from packrat_lab.serving.http.app import make_app

        limits: Limits = self.service.limits
        server = HTTPServer(
            make_app(self.service),
            xheaders=False,
            max_body_size=limits.max_body_bytes,
            body_timeout=limits.body_timeout_s,
            idle_connection_timeout=limits.idle_timeout_s,
        )
        server.add_sockets(self._sockets)
        await self._serve_until_stopped()
        server.stop()
        self.service.stop_waiting()
        handlers = [t for t in self.service.tasks if not t.done() and t is not asyncio.current_task()]
        if handlers:  # let the cut-off handlers write their 503s
            await asyncio.wait(handlers, timeout=2.0)
        try:
            await asyncio.wait_for(server.close_all_connections(), timeout=2.0)
        except asyncio.TimeoutError:
            pass

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and free the port (the pool stays open: it belongs to the caller)."""
        super().stop(timeout)
        self.service.close()

    def wait(self) -> None:
        """Block until the server stops (POST /packrat/stop, or Ctrl-C, which stops it)."""
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            self.stop()
            raise

    def _describe(self) -> str:
        return f"{self.url} model={self.service.model_name!r}"


def serve_pool(
    pool: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    background: bool = True,
    *,
    profile: Any = None,
    limits: Limits | None = None,
) -> Server:
    """Serve `pool` over Open Inference Protocol v2 plus management routes; port 0 picks a free one.

    background=False blocks until the server is stopped (Ctrl-C raises KeyboardInterrupt after
    stopping it); the pool is never closed here except by POST /packrat/stop. A bind other than
    loopback is warned about loudly (stderr and logging); a loopback bind answers only loopback
    Host headers. `limits` sets body/JSON caps, timeouts, requests in flight and the plan batch bound.
    """
    from packrat_lab.serving.http.service import PoolService

    return serve_service(
        lambda: PoolService(pool, token=token, profile=profile, limits=limits), host, port, background
    )


def serve_service(make_service: Callable[[], Any], host: str, port: int, background: bool) -> Server:
    """Bind host:port, then serve the service `make_service` builds (a pool's or a fleet's) on it.

    The port is checked and bound first, so a bad or busy port fails before any service exists.
    """
    from tornado.netutil import bind_sockets

    from packrat_lab.serving.http.hosts import warn_if_exposed

    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        msg = f"port must be 0..65535, got {port!r}; example: 8000 (0 picks a free port)"
        raise ValueError(msg)
    try:
        sockets = bind_sockets(port, address=host, family=socket.AF_UNSPEC)
    except OSError as exc:
        msg = f"cannot listen on {host}:{port} ({exc.strerror}); example: --port 0 for a free port"
        raise ValueError(msg) from None
    server = Server(make_service(), sockets[:1], host).start()
    warn_if_exposed(host, server.port)
    for extra in sockets[1:]:
        extra.close()
    if not background:
        server.wait()
    return server
