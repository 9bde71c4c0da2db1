"""Management routes: read and set the plan, stats, events, auto mode, stop, Prometheus metrics.

    GET  /packrat/plan     {"plan": Plan.to_dict(), "state": ..., "model": ...}
    PUT  /packrat/plan     {"plan": "2x1x4"} or {"batch": 8} (optimizer plan from the profile)   [token]
    POST /packrat/plan     same as PUT                                                            [token]
    GET  /packrat/stats    pool.stats() + plan text, state and HTTP request counts
    GET  /packrat/events   the pool's timeline: [{"time", "kind", "plan", "detail"}]
    PUT  /packrat/auto     {"auto": true|false}                                                   [token]
    POST /packrat/stop     close the pool, then the server stops itself                           [token]
    GET  /metrics          Prometheus text exposition

[token]: send the pool's token as `Authorization: Bearer <token>` or `X-Packrat-Token: <token>`,
else 403. Read routes are open: the server binds 127.0.0.1 by default.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from packrat_lab.errors import PackratError
from packrat_lab.serving.http.app import BaseHandler

__all__ = ["management_routes"]


class _TokenHandler(BaseHandler):
    """Mutating routes: 403 without the pool's token; the body must be a JSON object."""

    def authorized(self) -> bool:
        if not self.service.check_token(self.request.headers):
            self.fail(
                403, "this route needs the pool's token: 'Authorization: Bearer <token>' or 'X-Packrat-Token'"
            )
            return False
        return True

    def json_body(self) -> dict[str, Any] | None:
        try:
            body = json.loads(self.request.body or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = None
        if not isinstance(body, dict):
            self.fail(400, 'body must be a JSON object; example: {"plan": "2x1x4"}')
            return None
        return body


class PlanHandler(_TokenHandler):
    route = "plan"

    def get(self) -> None:
        self.send_json(self.service.plan_dict())

    async def put(self) -> None:
        if not self.authorized():
            return
        body = self.json_body()
        if body is None:
            return
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self.service.executor, self.service.set_plan, body)
        except (PackratError, ValueError) as exc:  # refused: the old plan keeps serving
            self.fail(400, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return
        self.send_json(result)

    async def post(self) -> None:
        await self.put()


class StatsHandler(BaseHandler):
    route = "stats"

    def get(self) -> None:
        self.send_json(self.service.stats())


class EventsHandler(BaseHandler):
    route = "events"

    def get(self) -> None:
        self.send_json({"events": self.service.events()})


class AutoHandler(_TokenHandler):
    route = "auto"

    def put(self) -> None:
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
            self.service.pool.set_auto(body["auto"])
        except (PackratError, ValueError) as exc:
            self.fail(400, str(exc).splitlines()[0])
            return
        self.send_json({"auto": body["auto"]})

    def post(self) -> None:
        self.put()


class StopHandler(_TokenHandler):
    route = "stop"

    async def post(self) -> None:
        if not self.authorized():
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.service.executor, self.service.pool.close)
        self.send_json({"stopped": True})
        if self.service.on_stop is not None:
            loop.call_later(0.05, self.service.on_stop)


class MetricsHandler(BaseHandler):
    route = "metrics"

    def get(self) -> None:
        from packrat_lab.serving.http.metrics import CONTENT_TYPE

        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(self.service.metrics_text())


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
