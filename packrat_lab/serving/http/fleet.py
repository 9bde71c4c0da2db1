"""One OIP v2 server for a whole Fleet: every model (and selection group) under /v2/models/{name}.

Routes beyond the one-pool server's (app.py, management.py), which answer per model here:

    GET  /v2/repository/index                   every model and group, READY or UNAVAILABLE
    GET  /v2/health/ready                       200 when every model is ready
    POST /v2/models/{m}/feedback                {"request_id": "...", "reward": 0.0..1.0} (a group's answer)
    GET  /packrat/plan | /packrat/stats         the whole fleet in the one-pool shape (the sidebar reads these)
    GET  /packrat/fleet                         models with plan, cores, state; groups; host cores
    PUT  /packrat/fleet                         {"plans": {"a": "1x1x4", "b": "1x3x8"}}: move cores  [token]
    GET  /packrat/fleet/stats | /packrat/fleet/events
    GET  /packrat/models/{m}/plan|stats|events  one model's management view
    PUT  /packrat/models/{m}/plan               {"plan": "2x1x4"} or {"batch": 8}: within its cores  [token]
    GET  /packrat/models/{m}/slo                its latency objective: {"slo_ms": 50} (null: off)
    PUT  /packrat/models/{m}/slo                {"slo_ms": 50} or {"slo_ms": null}: changed live      [token]
    POST /packrat/stop                          close the fleet, then the server stops itself     [token]

The per-model management routes are the one-pool server's handlers (management.py) with the model
picked from the path. Each model has its own PoolService (own metadata, metrics and thread pools);
they share the fleet server's admission, token, Host check and shutdown. A selection group answers with
`parameters.request_id` (and `parameters.members`): the key for its feedback.
"""

from __future__ import annotations

import json
import secrets
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from packrat_lab.serving.http.admission import Admission
from packrat_lab.serving.http.app import (
    BaseHandler,
    InferHandler,
    LiveHandler,
    ModelConfigHandler,
    ModelMetadataHandler,
    ModelReadyHandler,
    ServerMetadataHandler,
)
from packrat_lab.serving.http.limits import Limits
from packrat_lab.serving.http.management import (
    EventsHandler,
    MetricsHandler,
    PlanHandler,
    SloHandler,
    StatsHandler,
    StopHandler,
    TokenHandler,
    route_handler,
)
from packrat_lab.serving.http.protocol import InferRequest
from packrat_lab.serving.http.service import READY_STATES, PoolService, event_dict, jsonable, state_text

if TYPE_CHECKING:
    from packrat_lab.fleet.fleet import Fleet
    from packrat_lab.serving.http.server import Server

__all__ = ["FleetService", "GroupService", "MemberService", "serve_fleet"]

_MODEL = r"/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>[^/]+))?"
_MANAGED = r"/packrat/models/(?P<model>[^/]+)"


class MemberService(PoolService):
    """One fleet model behind the shared server: its fleet name, plans switched through the fleet."""

    def __init__(self, fleet: Fleet, name: str, pool: Any, shared: FleetService) -> None:
        super().__init__(
            pool, token=shared.token, profile=fleet.profiles.get(name), limits=shared.limits, cores=1
        )
        self.fleet = fleet
        self.name = name
        self.admission = shared.admission  # one bound on bodies held, whichever model they are for
        self.tasks = shared.tasks

    @property
    def model_name(self) -> str:
        """The name this model is served under in the fleet."""
        return self.name

    def set_plan(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A new plan for this model inside the fleet (cores move between models as needed)."""
        held = sum(len(c) for n, c in self.fleet.shares.items() if n != self.name)
        self.cores = max(1, self.fleet.host.usable_cores - held)  # {"batch": B}: its share plus free cores
        self.fleet.reconfigure({self.name: self.resolve_plan(body)})
        return self.plan_dict()

    def plan_dict(self) -> dict[str, Any]:
        """The plan, state and this model's cores."""
        return {**super().plan_dict(), "cores": list(self.fleet.shares.get(self.name, ()))}


class GroupPool:
    """A selection group seen through the pool interface PoolService reads (workload, state, plan, stats)."""

    def __init__(self, fleet: Fleet, name: str) -> None:
        self.fleet = fleet
        self.name = name
        spec, _ = fleet.groups[name]
        self.members = spec.members
        self.workload = fleet.pools[spec.members[0]].workload
        self.profile = None

    @property
    def state(self) -> str:
        """serving while every member is ready, else the first member state that is not."""
        states = [state_text(self.fleet.pools[m].state) for m in self.members]
        return next((s for s in states if s not in READY_STATES), "serving")

    @property
    def plan(self) -> Any:
        """The first member's plan (groups have no plan of their own)."""
        return self.fleet.pools[self.members[0]].plan

    def infer(self, batch: Any, *, timeout: float | None = None) -> Any:
        return self.fleet.infer(self.name, batch, timeout=timeout)

    def submit(self, sample: Any) -> Any:
        return self.fleet.submit(self.name, sample)

    def stats(self) -> dict[str, Any]:
        return {"name": self.name, **self.fleet.stats()[self.name]}

    def events(self) -> list[Any]:
        return [e for e in self.fleet.events() if e.kind.startswith("ensemble")]

    def reconfigure(self, plan: Any, *, wait: bool = True) -> Any:
        msg = f"{self.name!r} is a selection group; set its members' plans, e.g. PUT /packrat/models/{self.members[0]}/plan"
        raise ValueError(msg)

    def set_auto(self, enabled: bool) -> None:
        self.reconfigure(None)

    def set_slo(self, slo_ms: float | None) -> None:
        msg = f"{self.name!r} is a selection group; set its members' objectives, e.g. PUT /packrat/models/{self.members[0]}/slo"
        raise ValueError(msg)


class GroupService(MemberService):
    """A selection group: answers carry `parameters.request_id` for feedback."""

    def __init__(self, fleet: Fleet, name: str, shared: FleetService) -> None:
        super().__init__(fleet, name, GroupPool(fleet, name), shared)
        self._ids: dict[int, tuple[str, tuple[str, ...]]] = {}

    def set_plan(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.pool.reconfigure(None)
        return {}

    def plan_dict(self) -> dict[str, Any]:
        spec, _ = self.fleet.groups[self.name]
        return {"model": self.name, "state": self.state, "policy": spec.policy, "members": list(spec.members)}

    async def infer(self, array: np.ndarray, arrived: float, deadline_ms: float | None = None) -> np.ndarray:
        """Run the group (exp3: one member; ensemble: all, within the objective) in the executor.

        The group's own objective decides who is waited for; a request deadline is not applied here.
        """
        import torch

        tensor = torch.from_numpy(array)
        answer = await self.run_blocking(self.executor, self.fleet.ask, self.name, tensor)
        out = answer.output.detach().cpu().numpy()
        self._ids[id(out)] = (answer.request_id, answer.members)
        return out  # type: ignore[no-any-return]

    def encode_response(
        self, request: InferRequest, out: np.ndarray, version: str | None
    ) -> tuple[bytes, int | None]:
        """The usual answer with `parameters: {request_id, members}` added to its JSON part."""
        body, header_length = super().encode_response(request, out, version)
        found = self._ids.pop(id(out), None)
        if found is None:
            return body, header_length
        cut = len(body) if header_length is None else header_length
        head = json.loads(body[:cut])
        head["parameters"] = {"request_id": found[0], "members": list(found[1])}
        new_head = json.dumps(head, separators=(",", ":")).encode()
        return new_head + body[cut:], None if header_length is None else len(new_head)


class FleetService:
    """The fleet server's state: one service per model or group, shared admission, token and limits."""

    def __init__(self, fleet: Fleet, *, token: str | None = None, limits: Limits | None = None) -> None:
        from packrat_lab.serving.http.metrics import ServerMetrics

        self.fleet = fleet
        self.pool = fleet  # POST /packrat/stop closes the whole fleet
        self.token = token or secrets.token_urlsafe(24)
        self.limits = limits or Limits()
        self.admission = Admission(self.limits.max_in_flight)
        self.tasks: weakref.WeakSet[Any] = weakref.WeakSet()
        self.metrics = ServerMetrics()
        self._allowed_hosts: frozenset[str] | None = None
        self._on_stop: Any = None
        self.members: dict[str, MemberService] = {
            name: MemberService(fleet, name, pool, self) for name, pool in fleet.pools.items()
        }
        for name in fleet.groups:
            self.members[name] = GroupService(fleet, name, self)
        from concurrent.futures import ThreadPoolExecutor

        self.admin_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="packrat-http-fleet")

    # what Server sets and reads
    @property
    def allowed_hosts(self) -> frozenset[str] | None:
        return self._allowed_hosts

    @allowed_hosts.setter
    def allowed_hosts(self, value: frozenset[str] | None) -> None:
        self._allowed_hosts = value
        for member in self.members.values():
            member.allowed_hosts = value

    @property
    def on_stop(self) -> Any:
        return self._on_stop

    @on_stop.setter
    def on_stop(self, value: Any) -> None:
        self._on_stop = value
        for member in self.members.values():
            member.on_stop = value

    @property
    def model_name(self) -> str:
        """Every name served, for the server's repr."""
        return ",".join(self.members)

    def check_host(self, host: str) -> None:
        next(iter(self.members.values())).check_host(host)

    def check_token(self, headers: Mapping[str, str]) -> bool:
        return next(iter(self.members.values())).check_token(headers)

    @property
    def state(self) -> str:
        """serving when every model is ready, else the first state that is not."""
        states = [m.state for m in self.members.values()]
        return next((s for s in states if s not in READY_STATES), "serving")

    def ready(self) -> bool:
        return self.state in READY_STATES

    async def run_blocking(self, executor: Any, fn: Any, *args: Any) -> Any:
        return await next(iter(self.members.values())).run_blocking(executor, fn, *args)

    # fleet management (blocking, admin executor)
    def fleet_dict(self) -> dict[str, Any]:
        fleet = self.fleet
        shares = fleet.shares
        models = {
            name: {
                "model": pool.workload.name,
                "plan": pool.plan.text,
                "state": state_text(pool.state),
                "cores": list(shares[name]),
            }
            for name, pool in fleet.pools.items()
        }
        groups = {n: {"policy": s.policy, "members": list(s.members)} for n, (s, _) in fleet.groups.items()}
        return {
            "models": models,
            "groups": groups,
            "host_cores": list(fleet.host.primary_cpus[: fleet.host.usable_cores]),
        }

    def set_plans(self, body: Mapping[str, Any]) -> dict[str, Any]:
        plans = body.get("plans")
        if not isinstance(plans, Mapping) or not plans or set(body) != {"plans"}:
            msg = (
                'body must be {"plans": {name: plan text}}; example: {"plans": {"a": "1x1x4", "b": "1x3x8"}}'
            )
            raise ValueError(msg)
        resolved = {}
        for name, text in plans.items():
            member = self.members.get(name)
            if member is None or name in self.fleet.groups:
                msg = f"unknown model {str(name)[:60]!r}; this fleet's models are {sorted(self.fleet.pools)}"
                raise ValueError(msg)
            resolved[name] = member.resolve_plan({"plan": text})
        self.fleet.reconfigure(resolved)
        return self.fleet_dict()

    def refuse_plan(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /packrat/plan on a fleet: one plan cannot name every model's."""
        msg = 'this server serves a fleet: switch plans with PUT /packrat/fleet {"plans": {"a": "1x1x4"}} or PUT /packrat/models/{name}/plan'
        raise ValueError(msg)

    def stats(self) -> dict[str, Any]:
        return jsonable(self.fleet.stats())  # type: ignore[no-any-return]

    def summary_plan(self) -> dict[str, Any]:
        """GET /packrat/plan for a fleet: every model's plan in one line, and the core map."""
        from packrat_lab.fleet.announce import core_map, fleet_summary

        text = fleet_summary(self.fleet)
        return {
            "plan": {"plan": text, "display": text, "instances": []},
            "state": self.state,
            "model": "fleet",
            "members": list(core_map(self.fleet)),
        }

    def summary_stats(self) -> dict[str, Any]:
        """GET /packrat/stats for a fleet: summed throughput, worst p99, and each model's stats."""
        per = self.stats()
        models = {n: v for n, v in per.items() if n in self.fleet.pools}
        p99 = [v["p99_ms"] for v in models.values() if v.get("p99_ms") is not None]
        return {
            "name": "fleet",
            "state": self.state,
            "plan": self.summary_plan()["plan"]["plan"],
            "throughput_rps": sum(float(v.get("throughput_rps") or 0.0) for v in models.values()),
            "p99_ms": max(p99) if p99 else None,
            "reconfigurations": sum(int(v.get("reconfigurations") or 0) for v in models.values()),
            "models": per,
        }

    def events(self) -> list[dict[str, Any]]:
        return [event_dict(e) for e in self.fleet.events()]

    def feedback(self, model: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if model not in self.fleet.groups:
            msg = f"{model!r} is not a selection group; feedback goes to one of {sorted(self.fleet.groups)}"
            raise ValueError(msg)
        request_id, reward = body.get("request_id"), body.get("reward")
        if not isinstance(request_id, str):
            msg = f'\'request_id\' must be the id a group answer carried, got {request_id!r}; example: {{"request_id": "9f2c...", "reward": 1.0}}'
            raise ValueError(msg)  # noqa: TRY004 - a bad body is a ValueError (one-line 400)
        if not isinstance(reward, (int, float, Mapping)) or isinstance(reward, bool):
            msg = f'\'reward\' must be a number in [0, 1] (or {{member: reward}} for an ensemble), got {str(reward)[:40]}; example: {{"request_id": "9f2c...", "reward": 1.0}}'
            raise ValueError(msg)  # noqa: TRY004 - a bad body is a ValueError (one-line 400)
        group = self.fleet.feedback(request_id, reward)
        return {"group": group, "request_id": request_id}

    def metrics_text(self) -> bytes:
        return self.metrics.render()

    def stop_waiting(self) -> int:
        return sum(m.stop_waiting() for m in self.members.values())

    def close(self) -> None:
        for member in self.members.values():
            member.close()
        self.admin_executor.shutdown(wait=False, cancel_futures=True)

    def summary(self) -> str:
        return "; ".join(f"{n}: {m.summary()}" for n, m in self.members.items())

    def app_routes(self) -> list[tuple[str, type[BaseHandler], dict[str, Any]]]:
        """The fleet's routes for app.make_app."""
        args = {"service": self}
        table: list[tuple[str, type[BaseHandler]]] = [
            (r"/v2/health/live", LiveHandler),
            (r"/v2/health/ready", _FleetReady),
            (r"/v2/?", ServerMetadataHandler),
            (r"/v2/repository/index", _FleetIndex),
            (_MODEL + r"/ready", _per_model(ModelReadyHandler)),
            (_MODEL + r"/config", _per_model(ModelConfigHandler)),
            (_MODEL + r"/infer", _per_model(InferHandler)),
            (_MODEL + r"/feedback", _Feedback),
            (_MODEL + r"/?", _per_model(ModelMetadataHandler)),
            (r"/packrat/plan", _FleetSummaryPlan),
            (r"/packrat/stats", _FleetSummaryStats),
            (r"/packrat/fleet", _FleetPlans),
            (r"/packrat/fleet/stats", _FleetStats),
            (r"/packrat/fleet/events", _FleetEvents),
            (_MANAGED + r"/plan", _per_model(PlanHandler)),
            (_MANAGED + r"/slo", _per_model(SloHandler)),
            (_MANAGED + r"/stats", _per_model(StatsHandler)),
            (_MANAGED + r"/events", _per_model(EventsHandler)),
            (r"/packrat/stop", StopHandler),
            (r"/metrics", MetricsHandler),
        ]
        return [(path, handler, args) for path, handler in table]


class _ModelMixin(BaseHandler):
    """Model routes: the handler's service becomes the named model's (404 for an unknown name)."""

    def known_model(self, model: str) -> bool:
        fleet_service: FleetService = self.service  # type: ignore[assignment]
        member = fleet_service.members.get(model)
        if member is None:
            self.fail(
                404, f"unknown model {model[:80]!r}; this server serves {sorted(fleet_service.members)}"
            )
            return False
        self.service = member
        return True


def _per_model(handler: type[BaseHandler]) -> type[BaseHandler]:
    return type(f"Fleet{handler.__name__}", (_ModelMixin, handler), {})


class _FleetReady(BaseHandler):
    route = "ready"

    def get(self) -> None:
        ready = self.pool_ready()
        self.send_json({"ready": ready}, 200 if ready else 503)


class _FleetIndex(BaseHandler):
    route = "repository_index"

    def post(self) -> None:
        members: dict[str, MemberService] = self.service.members  # type: ignore[attr-defined]
        self.send_json(
            [
                {"name": n, "version": "1", "state": "READY" if m.ready() else "UNAVAILABLE"}
                for n, m in members.items()
            ]
        )


_FleetPlans = route_handler(
    "fleet",
    getter="fleet_dict",
    setter="set_plans",
    example='{"plans": {"a": "1x1x4", "b": "1x3x8"}}',
    refused=(Exception,),  # refused or failed: every model keeps serving
)
# the one-pool plan and stats routes on a fleet (what the sidebar reads); switching goes to /packrat/fleet
_FleetSummaryPlan = route_handler("plan", getter="summary_plan", setter="refuse_plan")
_FleetSummaryStats = route_handler("stats", getter="summary_stats")
_FleetStats = route_handler("fleet_stats", getter="stats")
_FleetEvents = route_handler("fleet_events", getter="events", key="events")


class _Feedback(TokenHandler):
    """Open like inference (rewards are data, not management); only the body is checked."""

    route = "feedback"
    example = '{"request_id": "9f2c...", "reward": 1.0}'

    async def post(self, model: str, version: str | None = None) -> None:
        body = self.json_body()
        if body is None:
            return
        try:
            result = await self.admin(self.service.feedback, model, body)  # type: ignore[attr-defined]
        except ValueError as exc:
            self.fail(404 if "unknown request id" in str(exc) else 400, str(exc))
            return
        self.send_json(result)


def serve_fleet(
    fleet: Fleet,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    background: bool = True,
    *,
    limits: Limits | None = None,
) -> Server:
    """Serve every model of `fleet` over one OIP v2 server plus fleet management routes."""
    from packrat_lab.serving.http.server import serve_service

    return serve_service(lambda: FleetService(fleet, token=token, limits=limits), host, port, background)
