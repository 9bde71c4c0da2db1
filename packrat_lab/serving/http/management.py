"""Management routes: read and set the plan, stats, events, auto mode, stop, Prometheus metrics.

    GET  /packrat/plan     {"plan": Plan.to_dict(), "state": ..., "model": ...}
    PUT  /packrat/plan     {"plan": "2x1x4@passive"} (text, setting names only) or {"batch": 8}  [token]
    POST /packrat/plan     same as PUT                                                            [token]
    GET  /packrat/stats    pool.stats() + plan text, state and HTTP request counts
    GET  /packrat/events   the pool's timeline: [{"time", "kind", "plan", "detail"}]
    PUT  /packrat/auto     {"auto": true|false}                                                   [token]
    POST /packrat/stop     close the pool, then the server stops itself                           [token]
    GET  /metrics          Prometheus text exposition

[token]: send the pool's token as `Authorization: Bearer <token>` or `X-Packrat-Token: <token>`,
else 403. Read routes are open: the server binds 127.0.0.1 by default and then answers only Host
127.0.0.1/localhost/[::1] with its port. A plan names runtime settings, it never defines them: the
settings are the server's (built-in plus its profile's); a plan object, an unknown setting name or a
batch above the server's limit is a one-line 400. Every route runs its blocking part on the admin
executor, so a pool that is stuck under inference can still be read and switched.
"""

from __future__ import annotations

import asyncio
from typing import Any

from packrat_lab.errors import PackratError
from packrat_lab.serving.http.app import BaseHandler
from packrat_lab.serving.http.codec import load_object
from packrat_lab.serving.http.protocol import ProtocolError

__all__ = ["TokenHandler", "management_routes"]


class TokenHandler(BaseHandler):
    """Mutating routes: 403 without the pool's token; the body must be a JSON object."""

    def authorized(self) -> bool:
        if not self.service.check_token(self.request.headers):
            self.fail(
                403, "this route needs the pool's token: 'Authorization: Bearer <token>' or 'X-Packrat-Token'"
            )
            return False
        return True

    example = '{"plan": "2x1x4@passive"}'

    def json_body(self) -> dict[str, Any] | None:
        try:
            return load_object(self.body, self.example)
        except ProtocolError as exc:
            self.fail(exc.status, str(exc))
            return None


class PlanHandler(TokenHandler):
    route = "plan"

    async def get(self) -> None:
        self.send_json(await self.admin(self.service.plan_dict))

    async def put(self) -> None:
        if not self.authorized():
            return
        body = self.json_body()
        if body is None:
            return
        try:
            result = await self.admin(self.service.set_plan, body)
        except (PackratError, ValueError) as exc:  # refused: the old plan keeps serving
            self.fail(400, str(exc) or type(exc).__name__)
            return
        self.send_json(result)

    async def post(self) -> None:
        await self.put()


class StatsHandler(BaseHandler):
    route = "stats"

    async def get(self) -> None:
        self.send_json(await self.admin(self.service.stats))


class EventsHandler(BaseHandler):
    route = "events"

    async def get(self) -> None:
        self.send_json({"events": await self.admin(self.service.events)})


class AutoHandler(TokenHandler):
    route = "auto"
    example = '{"auto": true}'

    async def put(self) -> None:
        if not self.authorized():
            return
        body = self.json_body()
        if body is None:
            return
        if not isinstance(body.get("auto"), bool):
            self.fail(
                400, f"'auto' must be true or false, got {body.get('auto')!r}; example: {{\"auto\": true}}"
            )
            return
        try:
            await self.admin(self.service.pool.set_auto, body["auto"])
        except (PackratError, ValueError) as exc:
            self.fail(400, str(exc))
            return
        self.send_json({"auto": body["auto"]})

    async def post(self) -> None:
        await self.put()


class StopHandler(TokenHandler):
    route = "stop"

    async def post(self) -> None:
        if not self.authorized():
            return
        await self.admin(self.service.pool.close)
        self.send_json({"stopped": True})
        loop = asyncio.get_running_loop()
        if self.service.on_stop is not None:
            loop.call_later(0.05, self.service.on_stop)


class MetricsHandler(BaseHandler):
    route = "metrics"

    async def get(self) -> None:
        from packrat_lab.serving.http.metrics import CONTENT_TYPE

        text = await self.admin(self.service.metrics_text)
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(text)


def management_routes() -> list[tuple[str, type[BaseHandler]]]:
    """The management routes, for app.routes."""
    return [
        (r"/packrat/plan", PlanHandler),
        (r"/packrat/stats", StatsHandler),
        (r"/packrat/events", EventsHandler),
        (r"/packrat/auto", AutoHandler),
        (r"/packrat/stop", StopHandler),
        (r"/metrics", MetricsHandler),
    ]
