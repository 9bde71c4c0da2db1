"""Management routes: read and set the plan, stats, events, auto mode, stop, Prometheus metrics.

    GET  /packrat/plan     {"plan": Plan.to_dict(), "state": ..., "model": ...}
    PUT  /packrat/plan     {"plan": "2x1x4@passive"} (text, setting names only) or {"batch": 8}  [token]
    POST /packrat/plan     same as PUT                                                            [token]
    GET  /packrat/stats    pool.stats() + plan text, state and HTTP request counts
    GET  /packrat/events   the pool's timeline: [{"time", "kind", "plan", "detail"}]
    PUT  /packrat/auto     {"auto": true|false}                                                   [token]
    GET  /packrat/slo      {"slo_ms": ..., "model": ...}: the pool's latency objective (null: off)
    PUT  /packrat/slo      {"slo_ms": 50} or {"slo_ms": null} (off): changed live             [token]
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

__all__ = ["ReadHandler", "TokenHandler", "WriteHandler", "management_routes", "route_handler"]


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


class ReadHandler(BaseHandler):
    """GET: the service's `getter` method on the admin executor, as JSON (under `key` when set).

    `model` is the fleet's /packrat/models/{m}/ part: `known_model` picks that model's service.
    """

    getter = ""
    key: str | None = None

    async def get(self, model: str | None = None) -> None:
        if model is not None and not self.known_model(model):
            return
        result = await self.admin(getattr(self.service, self.getter))
        self.send_json(result if self.key is None else {self.key: result})


class WriteHandler(TokenHandler):
    """PUT or POST with the token: the JSON-object body to the service's `setter` method; a refusal is a one-line 400."""

    setter = ""
    refused: tuple[type[Exception], ...] = (PackratError, ValueError)  # what leaves the old state serving

    async def put(self, model: str | None = None) -> None:
        if not self.authorized() or (model is not None and not self.known_model(model)):
            return
        body = self.json_body()
        if body is None:
            return
        try:
            result = await self.admin(getattr(self.service, self.setter), body)
        except self.refused as exc:
            self.fail(400, str(exc) or type(exc).__name__)
            return
        self.send_json(result)

    async def post(self, model: str | None = None) -> None:
        await self.put(model)


def route_handler(
    route: str,
    *,
    getter: str = "",
    setter: str = "",
    key: str | None = None,
    example: str | None = None,
    refused: tuple[type[Exception], ...] = (PackratError, ValueError),
) -> type[BaseHandler]:
    """A management route's handler class: GET answers the service's `getter`, PUT/POST (token) calls its `setter`."""
    bases: tuple[type[BaseHandler], ...] = ((ReadHandler,) if getter else ()) + (
        (WriteHandler,) if setter else ()
    )
    attrs: dict[str, Any] = {
        "route": route,
        "getter": getter,
        "setter": setter,
        "key": key,
        "refused": refused,
    }
    if example is not None:
        attrs["example"] = example
    return type(f"{route.title().replace('_', '')}Handler", bases, attrs)


PlanHandler = route_handler("plan", getter="plan_dict", setter="set_plan")
StatsHandler = route_handler("stats", getter="stats")
EventsHandler = route_handler("events", getter="events", key="events")
AutoHandler = route_handler("auto", setter="set_auto", example='{"auto": true}')
SloHandler = route_handler("slo", getter="slo_dict", setter="set_slo", example='{"slo_ms": 50}')


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
        (r"/packrat/slo", SloHandler),
        (r"/packrat/stop", StopHandler),
        (r"/metrics", MetricsHandler),
    ]
