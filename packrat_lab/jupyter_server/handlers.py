"""Tornado handlers under /packrat-lab/: list live pools and fleets, stop or re-plan one, read a profile for the viewer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import tornado.httpclient
import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from packrat_lab import registry
from packrat_lab.jupyter_server.views import fleet_view, pool_view, profile_view, strip_secrets

__all__ = ["setup_handlers"]

READ_TIMEOUT_S = 3.0  # status reads: a pool that cannot answer this fast is shown as unreachable
SWITCH_TIMEOUT_S = 300.0  # a plan switch answers once the new workers are warm (seconds on big models)
_PLAN_EXAMPLE = '{"plan": "2x1x4"} or {"batch": 8}'
_FLEET_EXAMPLE = '{"plans": {"a": "1x1x4", "b": "1x3x8"}}'


async def _call(
    entry: registry.PoolEntry, method: str, route: str, body: Any = None, timeout: float = READ_TIMEOUT_S
) -> tuple[int, Any, str | None]:
    """One request to a pool's management route with its token: (status, JSON or None, error)."""
    if not registry.is_loopback_url(entry.url):  # never send a pool's token off this machine
        return 502, None, f"pool {entry.id} url {entry.url!r} is not on this machine's loopback; refusing"
    headers = {"Accept": "application/json"}
    if entry.token:
        headers["Authorization"] = f"Bearer {entry.token}"
    payload = None
    if body is not None:
        payload = json.dumps(body)
        headers["Content-Type"] = "application/json"
    elif method in ("POST", "PUT"):
        payload = ""
    request = HTTPRequest(
        entry.url + route,
        method=method,
        headers=headers,
        body=payload,
        request_timeout=timeout,
        connect_timeout=READ_TIMEOUT_S,
    )
    try:
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
    except (OSError, tornado.httpclient.HTTPClientError) as exc:  # refused, reset: the pool is not reachable
        return 502, None, f"pool {entry.id} at {entry.url} is not reachable: {exc}"
    if response.code == 599:
        return 502, None, f"pool {entry.id} at {entry.url} is not reachable: {response.error}"
    try:
        data = json.loads(response.body or b"null")
    except ValueError:
        data = {"message": (response.body or b"").decode("utf-8", "replace")[:500]}
    error = None if response.code < 400 else _message(data, f"pool answered HTTP {response.code}")
    return response.code, strip_secrets(data), error


def _message(data: Any, default: str) -> str:
    if isinstance(data, dict):
        for key in ("message", "error", "detail"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return default


def _host_cores() -> int | None:
    """Cores usable on this host (the core map's width); None if the host cannot be read."""
    try:
        from packrat_lab.host import detect_host

        return int(detect_host().usable_cores)
    except (OSError, ValueError):
        return None


async def _fleet(entry: registry.PoolEntry) -> dict[str, Any]:
    """A fleet's sidebar view from its server's fleet routes: core map, plans and stats per model."""
    (_, fleet, fleet_err), (_, stats, stats_err) = await asyncio.gather(
        _call(entry, "GET", "/packrat/fleet"), _call(entry, "GET", "/packrat/fleet/stats")
    )
    models = fleet.get("models") if isinstance(fleet, dict) and not fleet_err else None
    names = [str(n) for n in models] if isinstance(models, dict) else []
    answers = await asyncio.gather(
        *(_call(entry, "GET", f"/packrat/models/{quote(n, safe='')}/plan") for n in names)
    )
    plans = {
        n: (data if isinstance(data, dict) and not err else None) for n, (_, data, err) in zip(names, answers)
    }
    return fleet_view(
        entry,
        None if fleet_err else fleet,
        None if stats_err else stats,
        plans,
        fleet_err or stats_err,
    )


class _PoolsBase(APIHandler):
    """Shared lookup of a registered pool by id (404 with a hint if it is gone)."""

    def entry(self, pool_id: str) -> registry.PoolEntry:
        try:
            entry = registry.get_pool(pool_id)
        except ValueError as exc:
            raise tornado.web.HTTPError(400, str(exc)) from exc
        if entry is None:
            raise tornado.web.HTTPError(404, f"no live pool {pool_id!r}; GET /packrat-lab/pools lists them")
        return entry

    def reply(self, status: int, data: Any) -> None:
        self.set_status(status)
        self.finish(json.dumps(data))


class PoolsHandler(_PoolsBase):
    """GET: every live pool on this host with its plan and stats (tokens never leave the server)."""

    @tornado.web.authenticated
    async def get(self) -> None:
        from packrat_lab.jupyter_server.owners import kernel_pids, notebook_paths, owner_view

        entries = registry.list_pools()
        cores = _host_cores()
        kernels = kernel_pids(self.kernel_manager)
        try:
            notebooks = notebook_paths(await self.session_manager.list_sessions())  # type: ignore[no-untyped-call]
        except Exception:  # noqa: BLE001 - owner names are a nicety; the list must still answer
            notebooks = {}

        async def one(entry: registry.PoolEntry) -> dict[str, Any]:
            if entry.kind == "fleet":
                view = await _fleet(entry)
                view["owner"] = owner_view(entry.pid, kernels, notebooks)
                return view
            (_, plan, plan_err), (_, stats, stats_err) = await asyncio.gather(
                _call(entry, "GET", "/packrat/plan"), _call(entry, "GET", "/packrat/stats")
            )
            error = plan_err or stats_err
            view = pool_view(entry, None if plan_err else plan, None if stats_err else stats, error, cores)
            view["owner"] = owner_view(entry.pid, kernels, notebooks)
            return view

        pools = await asyncio.gather(*(one(e) for e in entries))
        self.reply(200, {"pools": list(pools)})


class PoolStopHandler(_PoolsBase):
    """POST: ask one pool to stop through its management route."""

    @tornado.web.authenticated
    async def post(self, pool_id: str) -> None:
        entry = self.entry(pool_id)
        status, data, error = await _call(entry, "POST", "/packrat/stop", timeout=SWITCH_TIMEOUT_S)
        if error:
            self.reply(status, {"message": error})
            return
        self.reply(200, {"id": entry.id, "stopped": True, "pool": data})


class PoolPlanHandler(_PoolsBase):
    """POST {"plan": "2x1x4"} or {"batch": 8}: switch one pool's plan (active-passive)."""

    @tornado.web.authenticated
    async def post(self, pool_id: str) -> None:
        entry = self.entry(pool_id)
        if entry.kind == "fleet":
            raise tornado.web.HTTPError(
                400,
                f"pool {entry.id} is a fleet; move its cores with POST /packrat-lab/fleets/{entry.id}/plans {_FLEET_EXAMPLE}",
            )
        body = self._body()
        # manual beats auto: pause the pool's estimator first, or it would undo this switch within seconds
        _, stats, _ = await _call(entry, "GET", "/packrat/stats")
        auto_paused = isinstance(stats, dict) and stats.get("auto") is True
        if auto_paused:
            await _call(entry, "PUT", "/packrat/auto", {"auto": False})
        status, data, error = await _call(entry, "PUT", "/packrat/plan", body, timeout=SWITCH_TIMEOUT_S)
        if error:
            self.reply(status, {"message": error})
            return
        plan = data.get("plan") if isinstance(data, dict) else None
        text = plan.get("plan") if isinstance(plan, dict) else plan
        if isinstance(text, str):
            registry.update(entry.id, plan=text)
        self.reply(200, {"id": entry.id, "pool": data, "auto_paused": auto_paused})

    def _body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            raise tornado.web.HTTPError(400, f"body is not JSON; example: {_PLAN_EXAMPLE}") from exc
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400, f"body {body!r} is not an object; example: {_PLAN_EXAMPLE}")
        if "plan" in body:
            from packrat_lab.plan import Plan

            try:
                return {"plan": Plan.parse(str(body["plan"])).text}
            except ValueError as exc:
                raise tornado.web.HTTPError(400, str(exc)) from exc
        batch = body.get("batch")
        if isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1:
            return {"batch": batch}
        raise tornado.web.HTTPError(
            400, f"body {body!r} needs a plan or a positive batch; example: {_PLAN_EXAMPLE}"
        )


class _FleetBase(_PoolsBase):
    """A registered fleet by id (400 when the id names a one-model pool)."""

    def fleet_entry(self, pool_id: str) -> registry.PoolEntry:
        entry = self.entry(pool_id)
        if entry.kind != "fleet":
            raise tornado.web.HTTPError(
                400,
                f"pool {entry.id} is a one-model pool, not a fleet; its routes are /packrat-lab/pools/{entry.id}/…",
            )
        return entry


class FleetHandler(_FleetBase):
    """GET: one fleet's view: per model its cores, plan with pinned instances, stats and SLO figures."""

    @tornado.web.authenticated
    async def get(self, pool_id: str) -> None:
        from packrat_lab.jupyter_server.owners import kernel_pids, owner_view

        entry = self.fleet_entry(pool_id)
        view = await _fleet(entry)
        view["owner"] = owner_view(entry.pid, kernel_pids(self.kernel_manager), {})
        self.reply(200, view)


class FleetPlansHandler(_FleetBase):
    """POST {"plans": {"a": "1x1x4", "b": "1x3x8"}}: move cores between the fleet's models (live)."""

    @tornado.web.authenticated
    async def post(self, pool_id: str) -> None:
        entry = self.fleet_entry(pool_id)
        body = self._plans()
        status, data, error = await _call(entry, "PUT", "/packrat/fleet", body, timeout=SWITCH_TIMEOUT_S)
        if error:
            self.reply(status, {"message": error})
            return
        self.reply(200, {"id": entry.id, "fleet": data})

    def _plans(self) -> dict[str, Any]:
        from packrat_lab.plan import Plan

        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            raise tornado.web.HTTPError(400, f"body is not JSON; example: {_FLEET_EXAMPLE}") from exc
        plans = body.get("plans") if isinstance(body, dict) else None
        if not isinstance(plans, dict) or not plans:
            raise tornado.web.HTTPError(
                400, f"body {str(body)[:80]!r} needs a non-empty plans object; example: {_FLEET_EXAMPLE}"
            )
        out = {}
        for name, text in plans.items():
            try:
                out[str(name)] = Plan.parse(str(text)).text
            except ValueError as exc:
                raise tornado.web.HTTPError(400, f"model {str(name)[:40]!r}: {exc}") from exc
        return {"plans": out}


class ProfileHandler(APIHandler):
    """GET ?path=NAME.packrat.json: the profile's surface and plan map, path relative to the server root."""

    @tornado.web.authenticated
    def get(self) -> None:
        from packrat_lab.errors import ProfileError
        from packrat_lab.profiling.table import load_profile

        rel = self.get_query_argument("path", "")
        if not rel:
            raise tornado.web.HTTPError(
                400, "missing ?path=; example: /packrat-lab/profile?path=mlp.packrat.json"
            )
        root = Path(self.contents_manager.root_dir).resolve()
        path = (root / rel.lstrip("/")).resolve()
        if root != path and root not in path.parents:
            raise tornado.web.HTTPError(403, f"profile path {rel!r} is outside the server root")
        if not path.is_file():
            raise tornado.web.HTTPError(404, f"no profile file {rel!r}; example: mlp.packrat.json")
        try:
            profile = load_profile(path, check_host=False)
        except ProfileError as exc:
            raise tornado.web.HTTPError(422, str(exc)) from exc
        cores = self.get_query_argument("cores", "")
        self.finish(
            json.dumps(profile_view(profile, path=rel, cores=int(cores) if cores.isdigit() else None))
        )


def setup_handlers(web_app: tornado.web.Application) -> None:
    """Mount the /packrat-lab/ routes under the server's base URL."""
    base = url_path_join(web_app.settings["base_url"], "packrat-lab")
    pool_id = r"(?P<pool_id>[A-Za-z0-9_-]+)"
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "pools"), PoolsHandler),
            (url_path_join(base, "pools", pool_id, "stop"), PoolStopHandler),
            (url_path_join(base, "pools", pool_id, "plan"), PoolPlanHandler),
            (url_path_join(base, "fleets", pool_id), FleetHandler),
            (url_path_join(base, "fleets", pool_id, "plans"), FleetPlansHandler),
            (url_path_join(base, "profile"), ProfileHandler),
        ],
    )
