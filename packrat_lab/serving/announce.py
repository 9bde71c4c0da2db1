"""Make a running pool visible to JupyterLab: serve its management routes and register it."""

from __future__ import annotations

import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from packrat_lab import registry

if TYPE_CHECKING:
    from packrat_lab.serving.http.server import Server

__all__ = ["ENV_DISABLE", "Handle", "announce", "stop_half_announced", "wanted"]

log = logging.getLogger(__name__)

# set PACKRAT_LAB_ANNOUNCE=0 to keep pools private (no management server, no registry entry)
ENV_DISABLE = "PACKRAT_LAB_ANNOUNCE"


@dataclass
class Handle:
    """A pool's announcement: its management server and registry entry; close() undoes both."""

    server: Server | None
    entry: registry.PoolEntry | None
    owns_server: bool = True
    _closed: bool = field(default=False, repr=False)

    @property
    def url(self) -> str | None:
        """Where the pool's management routes answer (None when not announced)."""
        return None if self.entry is None else self.entry.url

    def update_plan(self, plan: str) -> None:
        """Record the pool's new plan in its registry entry after a switch."""
        if self.entry is not None and not self._closed:
            self.entry = registry.update(self.entry.id, plan=plan) or self.entry

    def on_event(self, event: Any, *, pool_closed: bool) -> None:
        """Pool observer: follow plan switches; withdraw the announcement once the pool is closed."""
        kind = getattr(event, "kind", "")
        if kind == "switch" and getattr(event, "plan", ""):
            self.update_plan(str(event.plan))
        elif pool_closed and kind in ("closed", "stopped"):  # a switch also records 'stopped' (old workers)
            self.close()

    def close(self) -> None:
        """Unregister first (so the sidebar stops listing it), then stop the server; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.entry is not None:
            registry.unregister(self.entry.id)
        if threading.current_thread().name.startswith("packrat-http"):
            return  # closed by POST /packrat/stop: the server stops itself once it has answered
        if self.server is not None and self.owns_server:
            try:
                self.server.stop()
            except Exception:  # a failing stop must not hide the pool's own close errors
                log.exception("stopping the pool's management server failed")


def wanted(enabled: bool | None) -> bool:
    """`enabled`, or where None what the environment says (on unless ENV_DISABLE is 0, false, no or off)."""
    if enabled is None:
        return os.environ.get(ENV_DISABLE, "1").strip().lower() not in ("0", "false", "no", "off")
    return enabled


def stop_half_announced(logger: logging.Logger, started: Server | None) -> None:
    """Stop the server a failed announcement `started` (None: it started none); a failing stop is logged."""
    if started is not None:
        try:
            started.stop()
        except Exception:
            logger.debug("stopping a half-announced server failed", exc_info=True)


def _describe(pool: Any) -> tuple[str, str]:
    """Model name and plan text of a pool, read defensively (only public attributes)."""
    workload = getattr(pool, "workload", None)
    model = str(getattr(workload, "name", None) or getattr(pool, "model", None) or "model")
    plan = getattr(pool, "plan", None)
    return model, str(getattr(plan, "text", plan))


def announce(pool: Any, *, enabled: bool | None = None, server: Server | None = None) -> Handle:
    """Serve `pool`'s management routes on 127.0.0.1 with a fresh token and register it; never raises.

    Given the `server` that already serves the pool (`packrat-lab serve`), register that one
    instead of starting a second; the caller keeps owning it.

    The announcement is withdrawn when the pool records its 'stopped' event (Pool.close, or
    POST /packrat/stop from the sidebar), or by Handle.close().
    """
    if not wanted(enabled):
        return Handle(None, None)
    owns_server = server is None
    try:
        if server is None:
            from packrat_lab.serving.http import serve_pool

            server = serve_pool(
                pool, host="127.0.0.1", port=0, token=secrets.token_urlsafe(24), background=True
            )
        model, plan = _describe(pool)
        entry = registry.register(model=model, plan=plan, url=server.url, token=server.token or "")
    except Exception:  # the pool serves fine without the sidebar; say why it is not listed
        log.warning("pool not announced to JupyterLab (its sidebar will not list it)", exc_info=True)
        stop_half_announced(log, server if owns_server else None)
        return Handle(None, None)
    handle = Handle(server, entry, owns_server)
    subscribe = getattr(pool, "on_event", None)
    if callable(subscribe):
        subscribe(
            lambda event: handle.on_event(event, pool_closed=str(getattr(pool, "state", "")) == "closed")
        )
    return handle
