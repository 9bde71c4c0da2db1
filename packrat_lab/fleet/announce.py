"""Make a running fleet visible to JupyterLab: one registry entry (kind 'fleet') with a core map per model."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from packrat_lab import registry
from packrat_lab.serving.announce import Handle, stop_half_announced, wanted

if TYPE_CHECKING:
    from packrat_lab.fleet.fleet import Fleet
    from packrat_lab.serving.http.server import Server

__all__ = ["FleetHandle", "announce_fleet", "core_map", "fleet_summary"]

log = logging.getLogger(__name__)


def core_map(fleet: Fleet) -> tuple[dict[str, Any], ...]:
    """Per model: name, model, plan text, state and the cores it owns now (the sidebar's core map)."""
    shares = fleet.shares
    return tuple(
        {
            "name": name,
            "model": pool.workload.name,
            "plan": pool.plan.text,
            "state": str(getattr(pool.state, "value", pool.state)),
            "cores": list(shares.get(name, ())),
        }
        for name, pool in fleet.pools.items()
    )


def fleet_summary(fleet: Fleet) -> str:
    """'a=1x1x4 b=1x3x8': the plan column of the registry entry."""
    return " ".join(f"{name}={pool.plan.text}" for name, pool in fleet.pools.items())


class FleetHandle(Handle):
    """A fleet's announcement: the pool Handle (server, registry entry, close) plus its core map."""

    def refresh(self, fleet: Fleet) -> None:
        """Rewrite the entry's plans and core map (after cores moved)."""
        if self.entry is not None and not self._closed:
            self.entry = (
                registry.update(self.entry.id, plan=fleet_summary(fleet), members=list(core_map(fleet)))
                or self.entry
            )


def announce_fleet(fleet: Fleet, *, enabled: bool | None = None, server: Server | None = None) -> FleetHandle:
    """Serve the fleet on 127.0.0.1 (unless `server` is given) and register it; never raises."""
    if not wanted(enabled):
        return FleetHandle(None, None)
    owns = server is None
    try:
        if server is None:
            from packrat_lab.serving.http.fleet import serve_fleet

            server = serve_fleet(fleet, host="127.0.0.1", port=0, token=secrets.token_urlsafe(24))
        entry = registry.register(
            model="fleet: " + ", ".join(fleet.names),
            plan=fleet_summary(fleet),
            url=server.url,
            token=server.token,
            kind="fleet",
            members=core_map(fleet),
        )
    except Exception:  # the fleet serves fine without the sidebar; say why it is not listed
        log.warning("fleet not announced to JupyterLab (its sidebar will not list it)", exc_info=True)
        stop_half_announced(log, server if owns else None)
        return FleetHandle(None, None)
    handle = FleetHandle(server, entry, owns)
    fleet.on_event(lambda event: handle.refresh(fleet) if event.kind == "cores" else None)
    return handle
