"""Ray Serve deployment whose replicas are packrat Pools, each pinned to its own share of its node's cores.

    driver: deploy(model, plan | profile, num_replicas=N) ──▶ serve.run(PackratReplica)
                                                               │ Ray places replicas on nodes (num_cpus = cores each)
    every replica:  claim `cores` free cores of its node (claims.py) ──▶ pin itself to them
                    plan: the given plan, or optimize(its node's profile, cores, batch)
                    Pool(model, plan): workers pinned inside the claim, warm
                    answers OIP v2 on Serve's HTTP route (/v2/...) through a PoolService
                    a watcher thread long-polls the PlanBoard ──▶ pool.reconfigure (active-passive)
    PackratDeployment.reconfigure(plan | batch) ──▶ PlanBoard (one named actor per app) ──▶ every replica

Ray Serve restarts replicas when an app is redeployed from Python, so switching plans goes through the
board, not through a redeploy; each replica keeps serving its old plan until its new one is warm.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray import serve

from packrat_lab.errors import InfeasiblePlanError

if TYPE_CHECKING:
    from packrat_lab.plan import Plan
    from packrat_lab.profiling.table import Profile
    from packrat_lab.serving.http.service import PoolService
    from packrat_lab.serving.pool import Pool

__all__ = ["PROFILE_HERE", "PackratDeployment", "PackratReplica", "PlanBoard", "deploy"]

PROFILE_HERE = "profile"  # deploy(model, "profile", ...): each replica profiles its own node first
_MODEL_ROUTE = re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?(/infer|/ready)?/?$")
_EXAMPLE = "deploy('mlp', '1x1x4', num_replicas=2)"


@ray.remote(num_cpus=0)
class PlanBoard:
    """The plan every replica of one app should serve (a version counter), and what each replica serves."""

    def __init__(self) -> None:
        self.version = 0
        self.config: dict[str, Any] = {}
        self.reports: dict[str, dict[str, Any]] = {}
        self._changed = asyncio.Condition()

    async def set(self, config: dict[str, Any]) -> int:
        """Ask every replica for `config` ({'plan': '2x1x4'} or {'batch': 8}); the new version."""
        async with self._changed:
            self.version += 1
            self.config = dict(config)
            self._changed.notify_all()
            return self.version

    async def wait(self, known: int, timeout_s: float) -> tuple[int, dict[str, Any]]:
        """Long poll: return as soon as the version differs from `known`, or after `timeout_s`."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.version != known), timeout_s)
            except asyncio.TimeoutError:
                pass
            return self.version, self.config

    def report(self, replica: str, status: dict[str, Any]) -> None:
        """A replica's current plan, cores, state and the version it applied."""
        self.reports[replica] = status

    def forget(self, replica: str) -> None:
        """A replica that shut down."""
        self.reports.pop(replica, None)

    def status(self) -> dict[str, dict[str, Any]]:
        """replica -> its last report."""
        return dict(self.reports)


def _profile_for_node(source: Any) -> Profile:
    """A Profile object, or a file path where '{hostname}' names this node's own profile."""
    from packrat_lab.profiling.table import Profile, load_profile

    if isinstance(source, Profile):
        return source
    return load_profile(str(source).format(hostname=socket.gethostname()))


def _is_plan(source: Any) -> bool:
    from packrat_lab.plan import Plan

    if isinstance(source, Plan):
        return True
    if not isinstance(source, str) or "{" in source or os.path.exists(source):
        return False
    try:
        Plan.parse(source)
    except ValueError:
        return False
    return True


def _ensure_importable() -> None:
    """Let processes the pool spawns import this same packrat_lab (Ray workers may not set PYTHONPATH)."""
    import packrat_lab

    root = str(Path(packrat_lab.__file__).resolve().parent.parent)
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *(p for p in paths if p)])


def _worker_pids(pool: Any) -> list[int]:
    """Process ids of the pool's live workers, from its stats."""
    return [w["pid"] for w in pool.stats().get("workers", []) if isinstance(w, Mapping) and w.get("pid")]


class PackratReplica:
    """One Serve replica: a core claim on its node, a Pool inside it, OIP v2 over Serve's HTTP route."""

    def __init__(
        self,
        model: Any,
        source: Any,
        cores: int,
        batch: int | None,
        board_name: str,
        max_queue_delay_ms: float,
        profile_options: Mapping[str, Any] | None = None,
    ) -> None:
        from packrat_lab.serving.claims import claim_cores, pin_process
        from packrat_lab.serving.http.service import PoolService
        from packrat_lab.serving.pool import Pool

        _ensure_importable()
        self.replica = f"{socket.gethostname()}:{os.getpid()}"
        # the node's profile is read before pinning: its host fingerprint counts the node's cores
        profile = None if _is_plan(source) or source == PROFILE_HERE else _profile_for_node(source)
        self.claim = claim_cores(cores)
        pin_process(self.claim.cores)  # the pool places its workers inside the claim (host.detect_host)
        if source == PROFILE_HERE:  # measure this node on the claimed cores, each point pinned inside them
            profile = self._measure(model, cores, dict(profile_options or {}))
        self.board = ray.get_actor(board_name)
        plan: Plan | str = source
        if profile is not None:
            from packrat_lab.optimizer import optimize

            if batch is None:
                msg = f"a profile needs batch= to plan for; example: deploy('mlp', 'node.packrat.json', batch=8, cores_per_replica={cores})"
                raise ValueError(msg)
            plan = optimize(profile, cores, batch)
        try:
            self.pool: Pool = Pool(
                model, plan, profile=profile, max_queue_delay_ms=max_queue_delay_ms, announce=False
            )
        except BaseException:
            self.claim.release()
            raise
        self.service: PoolService = PoolService(self.pool, profile=profile)
        self.version = 0  # a replica started after a reconfigure catches up through the watcher
        self.error: str | None = None
        self._stop = threading.Event()
        self._report()
        self._watcher = threading.Thread(target=self._watch, name="packrat-ray-board", daemon=True)
        self._watcher.start()

    def _measure(self, model: Any, cores: int, options: dict[str, Any]) -> Profile:
        """Profile `model` here; `options` go to packrat_lab.profile, `save` ('{hostname}' allowed) keeps it."""
        from packrat_lab.profiling.profiler import profile as measure

        save = options.pop("save", None)
        try:
            result = measure(model, cores=cores, **options)
        except BaseException:
            self.claim.release()
            raise
        if save:
            result.save(str(save).format(hostname=socket.gethostname()))
        return result

    def _report(self) -> None:
        self.board.report.remote(self.replica, self.status())

    def _watch(self) -> None:
        """Apply each new board version with an active-passive switch; report plan or error."""
        while not self._stop.is_set():
            try:
                answer: Any = ray.get(self.board.wait.remote(self.version, 5.0))
                version, config = int(answer[0]), dict(answer[1])
            except Exception:  # noqa: BLE001 - the board went away (app deleted): stop watching
                return
            if version == self.version or self._stop.is_set():
                continue
            try:
                self.pool.reconfigure(self.service.resolve_plan(config))
                self.error = None
            except Exception as exc:  # noqa: BLE001 - refused or failed to start: the old plan keeps serving
                self.error = str(exc).splitlines()[0]
            self.version = version
            self._report()

    def _state(self) -> str:
        """The pool's state as plain text (a str enum's value)."""
        return str(getattr(self.pool.state, "value", self.pool.state))

    def status(self) -> dict[str, Any]:
        """This replica's node, cores, plan, state, applied board version and last error."""
        return {
            "replica": self.replica,
            "node": socket.gethostname(),
            "cores": list(self.claim.cores),
            "plan": self.pool.plan.text,
            "state": self._state(),
            "version": self.version,
            "reconfigurations": int(self.pool.stats().get("reconfigurations", 0)),
            "workers": [int(p) for p in _worker_pids(self.pool)],
            "error": self.error,
        }

    def switch(self, plan: str) -> dict[str, Any]:
        """Reconfigure this one replica (a handle call reaches one replica; use PackratDeployment.reconfigure for all)."""
        self.pool.reconfigure(plan)
        self._report()
        return self.status()

    async def __call__(self, request: Any) -> Any:
        """OIP v2 over Serve's HTTP route: health, metadata, infer, and GET /packrat/plan for this replica."""
        from starlette.responses import JSONResponse

        from packrat_lab.serving.http.protocol import ProtocolError

        path, method = request.url.path, request.method
        root = str(request.scope.get("root_path") or "")  # Serve's route_prefix
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        ready = self.service.ready()
        if path == "/v2/health/live":
            return JSONResponse({"live": True})
        if path == "/v2/health/ready":
            return JSONResponse({"ready": ready}, 200 if ready else 503)
        if path.rstrip("/") == "/v2":
            from packrat_lab import __version__

            return JSONResponse(
                {"name": "packrat-lab", "version": __version__, "extensions": ["binary_tensor_data"]}
            )
        if path == "/packrat/plan":
            return JSONResponse(self.status())
        match = _MODEL_ROUTE.match(path)
        if match is None:
            return JSONResponse(
                {"error": f"no route {method} {path}; see GET /v2/models/{self.service.model_name}"}, 404
            )
        model, action = match.groups()
        if model != self.service.model_name:
            return JSONResponse(
                {"error": f"unknown model {model!r}; this deployment serves {self.service.model_name!r}"}, 404
            )
        if action == "/ready":
            return JSONResponse({"name": model, "ready": ready}, 200 if ready else 503)
        if action is None:
            meta = await asyncio.get_running_loop().run_in_executor(
                self.service.admin_executor, self.service.model_metadata
            )
            return JSONResponse(meta)
        arrived = time.perf_counter()
        service = self.service
        try:  # the same ceiling on requests in flight as packrat-lab serve
            service.admission.enter()
        except ProtocolError as exc:
            return JSONResponse({"error": str(exc)}, exc.status)
        try:
            return await self._infer(request, model, arrived)
        finally:
            service.admission.leave()

    async def _infer(self, request: Any, model: str, arrived: float) -> Any:
        """Decode, check, run and encode one infer request with PoolService, as the tornado route does."""
        from starlette.responses import JSONResponse, Response

        from packrat_lab.serving.http.protocol import HEADER_LENGTH, ProtocolError
        from packrat_lab.serving.http.service import ServerStopping

        service, loop = self.service, asyncio.get_running_loop()
        headers = request.headers
        body = await request.body()
        try:
            decoded, array = await loop.run_in_executor(
                service.codec_executor,
                service.decode_request,
                body,
                headers.get(HEADER_LENGTH),
                headers.get("Content-Encoding"),
            )
        except ProtocolError as exc:
            return JSONResponse({"error": str(exc)}, exc.status)
        if not service.ready():
            return JSONResponse(
                {"error": f"model {model!r} is not serving (pool state {service.state!r})"}, 503
            )
        try:
            out = await service.infer(array, arrived)
        except ServerStopping as exc:
            return JSONResponse({"error": f"request cut off: {exc}"}, 503)
        except ValueError as exc:  # the pool refused the input
            return JSONResponse({"error": str(exc) or type(exc).__name__}, 400)
        except Exception as exc:  # noqa: BLE001 - this request fails alone
            return JSONResponse({"error": f"inference failed: {type(exc).__name__}: {exc}"}, 500)
        try:
            answer, length = await loop.run_in_executor(
                service.codec_executor, service.encode_response, decoded, out, None
            )
        except ProtocolError as exc:
            return JSONResponse({"error": str(exc)}, exc.status)
        service.metrics.request_seconds.observe(time.perf_counter() - arrived)
        if length is None:
            return Response(answer, media_type="application/json")
        return Response(answer, headers={HEADER_LENGTH: str(length)}, media_type="application/octet-stream")

    def close(self) -> None:
        """Stop watching, close the pool, free the cores (once)."""
        if self._stop.is_set():
            return
        self._stop.set()
        try:
            self.board.forget.remote(self.replica)
        except Exception:  # noqa: BLE001, S110 - the board may already be gone
            pass
        self.pool.close()
        self.service.close()
        self.claim.release()

    def __del__(self) -> None:
        """Serve calls this when it stops the replica."""
        if hasattr(self, "_stop"):  # a constructor that failed has released what it took
            self.close()


@dataclass
class PackratDeployment:
    """A running deployment: `.handle`, `.url`, `reconfigure()` every replica, `status()`, `shutdown()`."""

    app: str
    handle: Any
    board: Any
    url: str
    num_replicas: int

    def status(self) -> dict[str, dict[str, Any]]:
        """replica -> {node, cores, plan, state, version, reconfigurations, error}."""
        return dict(ray.get(self.board.status.remote()))

    def reconfigure(
        self, plan: Plan | str | None = None, *, batch: int | None = None, timeout_s: float = 300.0
    ) -> dict[str, dict[str, Any]]:
        """Switch every replica active-passive to `plan` (or to its own node's optimum for `batch`); wait for all."""
        if (plan is None) == (batch is None):
            msg = "give plan= or batch=, not both; example: deployment.reconfigure('1x1x8') or reconfigure(batch=8)"
            raise ValueError(msg)
        config: dict[str, Any] = (
            {"batch": batch} if plan is None else {"plan": plan if isinstance(plan, str) else plan.text}
        )
        version = int(ray.get(self.board.set.remote(config)))
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status()
            done = [s for s in status.values() if s["version"] >= version]
            if len(done) >= self.num_replicas:
                errors = [f"{s['replica']}: {s['error']}" for s in done if s["error"]]
                if errors:
                    msg = f"replicas refused {config}: {'; '.join(errors)}"
                    raise ValueError(msg)
                return status
            if time.monotonic() > deadline:
                msg = f"{len(done)} of {self.num_replicas} replicas switched to {config} in {timeout_s:.0f} s"
                raise TimeoutError(msg)
            time.sleep(0.2)

    def shutdown(self) -> None:
        """Delete the Serve app (replicas close their pools) and its plan board."""
        serve.delete(self.app)
        ray.kill(self.board)


def _serve_address(host: str, port: int) -> tuple[str, int]:
    """Where Serve's HTTP proxy listens: a Serve started earlier keeps its own address (Ray has no public getter)."""
    try:
        from ray.serve.context import _get_global_client

        config: Any = getattr(_get_global_client(), "http_config", None)
        return str(config.host), int(config.port)
    except Exception:  # noqa: BLE001 - a Ray without that private API: the address we asked for
        return host, port


def deploy(
    model: Any,
    plan_or_profile: Any,
    *,
    num_replicas: int = 1,
    cores_per_replica: int | None = None,
    batch: int | None = None,
    name: str = "packrat",
    route_prefix: str = "/",
    http_host: str = "127.0.0.1",
    http_port: int = 8000,
    max_queue_delay_ms: float = 5.0,
    ray_actor_options: Mapping[str, Any] | None = None,
    profile_options: Mapping[str, Any] | None = None,
) -> PackratDeployment:
    """Run `model` as a Ray Serve app of `num_replicas` packrat Pools, each pinned to its node's cores.

    `plan_or_profile` is a plan ('1x1x4') every replica serves, or a profile (a Profile, or a path in
    which '{hostname}' names each node's own file) from which each replica plans for its own cores
    and `batch`, or "profile": each replica first profiles its node on its own cores
    (`profile_options` go to packrat_lab.profile; `save=` a path keeps the result). Each replica asks Ray for `cores_per_replica` CPUs (default: the plan's threads) and
    claims that many free cores of its node, so replicas sharing a node never overlap.
    `http_host`/`http_port` apply when this call starts Serve; `.url` is where Serve listens.
    """
    from packrat_lab.plan import Plan

    if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas < 1:
        msg = f"num_replicas must be a positive integer, got {num_replicas!r}; example: {_EXAMPLE}"
        raise ValueError(msg)
    if _is_plan(plan_or_profile):
        needed = Plan.coerce(plan_or_profile).total_threads
        cores = cores_per_replica or needed
        if cores < needed:
            msg = f"plan {Plan.coerce(plan_or_profile).text} needs {needed} cores but cores_per_replica={cores}; example: cores_per_replica={needed}"
            raise InfeasiblePlanError(msg)
        source: Any = Plan.coerce(plan_or_profile).text
    else:
        if cores_per_replica is None or batch is None:
            msg = "a profile needs cores_per_replica= and batch=; example: deploy('mlp', 'profiles/{hostname}.packrat.json', cores_per_replica=2, batch=8)"
            raise ValueError(msg)
        cores, source = cores_per_replica, plan_or_profile
    if not ray.is_initialized():
        ray.init()
    serve.start(http_options={"host": http_host, "port": http_port})
    board_name = f"packrat-plan-board-{name}"
    try:
        ray.kill(ray.get_actor(board_name))
    except ValueError:
        pass
    board = PlanBoard.options(name=board_name).remote()  # type: ignore[attr-defined]
    options = {"num_cpus": cores, **dict(ray_actor_options or {})}
    replica = serve.deployment(name=name, num_replicas=num_replicas, ray_actor_options=options)(
        PackratReplica
    )
    app = replica.bind(
        model, source, cores, batch, board_name, max_queue_delay_ms, dict(profile_options or {})
    )
    handle = serve.run(app, name=name, route_prefix=route_prefix)
    deadline = time.monotonic() + 60.0  # replicas report asynchronously once their pool is warm
    while len(ray.get(board.status.remote())) < num_replicas and time.monotonic() < deadline:
        time.sleep(0.1)
    http_host, http_port = _serve_address(http_host, http_port)
    host = f"[{http_host}]" if ":" in http_host else http_host
    return PackratDeployment(
        name, handle, board, f"http://{host}:{http_port}{route_prefix.rstrip('/')}", num_replicas
    )
