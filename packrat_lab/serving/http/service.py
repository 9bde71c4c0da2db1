"""PoolService: the pool behind the HTTP routes plus what the server adds (limits, token, metrics, metadata).

Transport-free on purpose: decode/validate (`decode_request`), admission (`admission`), inference
(`infer`), encoding (`encode_response`) and plan requests (`resolve_plan`) take and return plain
values, so the tornado routes stay thin and the gRPC front can call the same functions.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import math
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from packrat_lab._numbers import positive_number
from packrat_lab.serving.http.admission import Admission
from packrat_lab.serving.http.codec import MiB, inflate
from packrat_lab.serving.http.decoder import JsonDecoder
from packrat_lab.serving.http.limits import Limits, default_max_batch
from packrat_lab.serving.http.protocol import (
    DATATYPES,
    HEADER_LENGTH,
    InferRequest,
    ProtocolError,
    Tensor,
    datatype_of,
    encode_infer_response,
)

if TYPE_CHECKING:
    from packrat_lab.plan import Plan
    from packrat_lab.settings import RuntimeSetting

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "PoolService",
    "ServerStopping",
    "event_dict",
    "jsonable",
    "state_text",
]

INPUT_NAME = "INPUT"
OUTPUT_NAME = "OUTPUT"
READY_STATES = ("serving", "switching")
_PROBE_DEADLINE_MS = 86_400_000.0  # the output-shape probe's deadline: it is never refused
_DTYPE_TO_V2 = {"float32": "FP32", "int64": "INT64"}


class ServerStopping(Exception):
    """The server stopped while this request waited for the pool."""


def state_text(state: Any) -> str:
    """A pool state (a str enum or a plain string) as its plain value, e.g. 'serving'."""
    return str(getattr(state, "value", state))


def jsonable(value: Any) -> Any:
    """A JSON-ready copy of stats/events values (Plans as dicts, NumPy scalars as numbers, NaN/inf as None)."""
    from packrat_lab.plan import Plan

    if isinstance(value, Plan):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, str):  # a str enum (pool state) as its value
        return state_text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


def event_dict(event: Any) -> dict[str, Any]:
    """One pool Event(time, kind, plan, detail) as JSON, the plan in its text form."""
    from packrat_lab.plan import Plan

    plan = getattr(event, "plan", None)
    return {
        "time": jsonable(getattr(event, "time", None)),
        "kind": str(getattr(event, "kind", "")),
        "plan": plan.text if isinstance(plan, Plan) else jsonable(plan),
        "detail": jsonable(getattr(event, "detail", None)),
    }


class PoolService:
    """Everything a route needs: the pool, limits, token, metrics, model metadata and three thread pools.

    executor: blocking `pool.infer` calls of multi-row requests. codec_executor: decoding,
    validating and encoding bodies. admin_executor: management and metadata routes, so inference
    can never starve them.
    """

    def __init__(
        self,
        pool: Any,
        *,
        token: str | None = None,
        profile: Any = None,
        max_threads: int = 8,
        limits: Limits | None = None,
        cores: int | None = None,
    ) -> None:
        from packrat_lab.serving.http.metrics import ServerMetrics
        from packrat_lab.settings import builtin_settings

        self.pool = pool
        self.token = token or secrets.token_urlsafe(24)
        self.profile = profile if profile is not None else getattr(pool, "profile", None)
        self.limits = limits or Limits()
        if cores is None:
            from packrat_lab.host import detect_host

            cores = detect_host().usable_cores
        self.cores = cores
        self.max_batch = self.limits.max_batch or default_max_batch(self.profile, cores)
        # runtime settings a plan may name: built-in plus the server's own profile's, never a request's
        self.settings: dict[str, RuntimeSetting] = {
            **builtin_settings(),
            **dict(getattr(self.profile, "settings", None) or {}),
        }
        self.executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="packrat-http-infer")
        self.codec_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="packrat-http-codec")
        self.admin_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="packrat-http-admin")
        self.admission = Admission(self.limits.max_in_flight)
        self.decoder = JsonDecoder()  # big JSON bodies are parsed in a helper process (GIL)
        self.allowed_hosts: frozenset[str] | None = None  # Host headers accepted; None: any (open bind)
        self.on_stop: Callable[[], None] | None = None  # set by the server: stops itself
        self._output: tuple[str, tuple[int, ...]] | None = None  # (datatype, per-sample shape)
        self._output_lock = threading.Lock()
        self._waiting: set[asyncio.Future[Any]] = set()  # in-flight waits (loop thread), failed on shutdown
        self._stopping = False
        self.tasks: weakref.WeakSet[asyncio.Task[Any]] = (
            weakref.WeakSet()
        )  # handler tasks, awaited on shutdown
        self.metrics = ServerMetrics()
        self.metrics.watch_pool(self)
        import torch  # noqa: F401 - imported here, not by the first request on the event loop (~1 s)

    # ---- identity and metadata
    @property
    def model_name(self) -> str:
        """The one model this server serves (the workload name)."""
        return str(self.pool.workload.name)

    @property
    def input_datatype(self) -> str:
        """v2 datatype the model takes: FP32 or INT64."""
        return _DTYPE_TO_V2.get(self.pool.workload.dtype, "FP32")

    @property
    def state(self) -> str:
        """The pool's state as plain text."""
        return state_text(getattr(self.pool, "state", "serving"))

    def ready(self) -> bool:
        """Whether the pool answers requests: serving, or switching plans (never starting/degraded/closed)."""
        return self.state in READY_STATES

    def check_token(self, headers: Mapping[str, str]) -> bool:
        """Whether a request carries the pool's token (Bearer or X-Packrat-Token)."""
        given = headers.get("X-Packrat-Token") or ""
        auth = headers.get("Authorization") or ""
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return bool(given) and secrets.compare_digest(given.encode(), self.token.encode())

    def check_host(self, host: str) -> None:
        """Refuse (ProtocolError 403) a Host header a loopback server does not answer to (DNS rebinding)."""
        if self.allowed_hosts is not None and host.lower() not in self.allowed_hosts:
            valid = min(self.allowed_hosts, key=lambda h: (not h.startswith("127."), h))
            msg = f"Host {host!r} is not this server; a loopback server answers only Host {valid} and localhost or [::1] with its port"
            raise ProtocolError(msg, status=403)

    def output_info(self) -> tuple[str, tuple[int, ...]]:
        """Output datatype and per-sample shape, learned from one probe inference (blocking, cached)."""
        with self._output_lock:
            if self._output is None:
                # metadata is no request with a deadline: under a pool SLO the probe gets a day, so a pool
                # slower than its objective still says its output (the probe counts as one on-time answer)
                patient = {"deadline_ms": _PROBE_DEADLINE_MS} if getattr(self.pool, "slo_ms", None) else {}
                probe = self.pool.infer(self.pool.workload.example_input(1), **patient)
                out = _to_numpy(probe)
                self._output = (datatype_of(out.dtype), tuple(out.shape[1:]))
            return self._output

    def model_metadata(self) -> dict[str, Any]:
        """v2 model metadata: one input of shape [-1, *sample_shape], one output (blocking on first call)."""
        out_type, out_shape = self.output_info()
        return {
            "name": self.model_name,
            "versions": ["1"],
            "platform": "pytorch_libtorch",
            "inputs": [
                {
                    "name": INPUT_NAME,
                    "datatype": self.input_datatype,
                    "shape": [-1, *self.pool.workload.sample_shape],
                }
            ],
            "outputs": [{"name": OUTPUT_NAME, "datatype": out_type, "shape": [-1, *out_shape]}],
        }

    def model_config(self) -> dict[str, Any]:
        """A Triton-style model config, enough for clients that ask for it."""
        meta = self.model_metadata()
        plan = self.pool.plan
        return {
            "name": self.model_name,
            "platform": meta["platform"],
            "max_batch_size": plan.total_batch,
            "input": [
                {
                    "name": INPUT_NAME,
                    "data_type": f"TYPE_{meta['inputs'][0]['datatype']}",
                    "dims": list(self.pool.workload.sample_shape),
                }
            ],
            "output": [
                {
                    "name": OUTPUT_NAME,
                    "data_type": f"TYPE_{meta['outputs'][0]['datatype']}",
                    "dims": meta["outputs"][0]["shape"][1:],
                }
            ],
            "instance_group": [
                {"count": c, "kind": "KIND_CPU", "threads": i.threads, "batch": i.batch}
                for c, i in plan.groups()
            ],
            "dynamic_batching": {"max_batch_size": plan.total_batch},
        }

    # ---- inference: decode and check (blocking, run in codec_executor)
    def decode_request(
        self, body: bytes, header_length: str | None, content_encoding: str | None
    ) -> tuple[InferRequest, np.ndarray]:
        """The request and its checked input array from raw body and headers; ProtocolError (4xx) if bad."""
        length: int | None = None
        if header_length is not None:
            try:
                length = int(header_length)
            except ValueError:
                msg = (
                    f"{HEADER_LENGTH} must be an integer byte count, got {header_length[:40]!r}; example: 120"
                )
                raise ProtocolError(msg) from None
        body = inflate(body, content_encoding or "identity", self.limits.max_body_bytes)
        json_bytes = len(body) if length is None else min(max(length, 0), len(body))
        if json_bytes > self.limits.max_json_bytes:
            msg = (
                f"JSON part of {json_bytes / MiB:.1f} MiB is above the {self.limits.max_json_bytes / MiB:g} MiB "
                "JSON limit; send tensors as binary data (tritonclient: binary_data=True)"
            )
            raise ProtocolError(msg, status=413)
        request = self.decoder.decode(body, length)
        array = self.check_input(request.inputs)
        unknown = [o.name for o in request.outputs if o.name != OUTPUT_NAME]
        if unknown:
            msg = f"model {self.model_name!r} has no output {unknown[0]!r}; valid: [{OUTPUT_NAME!r}]"
            raise ProtocolError(msg)
        return request, array

    def check_input(self, inputs: tuple[Tensor, ...]) -> np.ndarray:
        """The one input array, after checking name, datatype and shape against the model."""
        shape = tuple(self.pool.workload.sample_shape)
        example = f'{{"name": "{INPUT_NAME}", "datatype": "{self.input_datatype}", "shape": {[1, *shape]}}}'
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            names = [t.name for t in inputs][:4]
            msg = f"model {self.model_name!r} takes one input named {INPUT_NAME!r}, got {names}; example: {example}"
            raise ProtocolError(msg)
        array = inputs[0].array
        if inputs[0].datatype != self.input_datatype:
            msg = (
                f"input {INPUT_NAME!r} has datatype {inputs[0].datatype} but model {self.model_name!r} "
                f"takes {self.input_datatype}; example: {example}"
            )
            raise ProtocolError(msg)
        if array.ndim != len(shape) + 1 or tuple(array.shape[1:]) != shape or array.shape[0] < 1:
            msg = (
                f"input {INPUT_NAME!r} has shape {list(array.shape)} but model {self.model_name!r} "
                f"takes [N, {', '.join(map(str, shape))}] with N >= 1; example: {example}"
            )
            raise ProtocolError(msg)
        return array

    def encode_response(
        self, request: InferRequest, out: np.ndarray, version: str | None
    ) -> tuple[bytes, int | None]:
        """Answer body and binary header length (blocking; ProtocolError 500 for NaN in a JSON answer)."""
        self.remember_output(out)
        return encode_infer_response(
            self.model_name, [Tensor(OUTPUT_NAME, out)], request, model_version=version
        )

    # ---- inference: the pool (async, on the loop)
    def deadline_ms(self, params: Mapping[str, Any]) -> float | None:
        """The request parameter `timeout` (OIP v2 / Triton: microseconds) in ms, or None when absent."""
        if "timeout" not in params:
            return None
        value = params["timeout"]
        if not positive_number(value):
            msg = f'parameter timeout must be a positive number of microseconds, got {value!r}; example: {{"parameters": {{"timeout": 50000}}}}'
            raise ProtocolError(msg, status=400)
        return float(value) / 1000.0

    async def infer(self, array: np.ndarray, arrived: float, deadline_ms: float | None = None) -> np.ndarray:
        """Run checked rows through the pool without blocking the event loop.

        One row goes through `pool.submit` so concurrent single requests meet in the pool's dynamic
        batcher (Packrat's B comes from that queue); a client-formed batch goes through
        `pool.infer` in `executor`, which splits it by the plan. The wait is detached from the
        pool's future: a request cut off by shutdown fails with ServerStopping and never cancels
        the pool's future under it. `deadline_ms` (from arrival; None: the pool's SLO) is what is
        left of it when the pool takes the request; the pool refuses one predicted to miss it.
        """
        import torch

        from packrat_lab.errors import Rejected

        tensor = torch.from_numpy(array)
        self.metrics.request_rows.observe(array.shape[0])

        def left_ms() -> float | None:
            if deadline_ms is None:
                return None
            left = deadline_ms - (time.perf_counter() - arrived) * 1000.0
            if left <= 0:
                msg = f"refused: its {deadline_ms:g} ms deadline passed before the pool could take it"
                raise Rejected(msg, deadline_ms=deadline_ms)
            return left

        def objective() -> dict[str, float]:  # only when given: a pool-like without deadlines still serves
            left = left_ms()
            return {} if left is None else {"deadline_ms": left}

        if array.shape[0] == 1:
            future: concurrent.futures.Future[Any] = self.pool.submit(tensor[0], **objective())
            self.metrics.queue_seconds.observe(time.perf_counter() - arrived)
            return _to_numpy(await self._wait(future))[None, ...]

        def run() -> Any:
            self.metrics.queue_seconds.observe(time.perf_counter() - arrived)
            return self.pool.infer(tensor, **objective())

        return _to_numpy(await self.run_blocking(self.executor, run))

    async def run_codec(self, small: bool, fn: Callable[..., Any], *args: Any) -> Any:
        """Decode or encode: on the loop when `small` (a thread hop costs more), else in `codec_executor`."""
        if not small:
            return await self.run_blocking(self.codec_executor, fn, *args)
        if self._stopping:
            raise ServerStopping("server is stopping")
        return fn(*args)

    async def run_blocking(
        self, executor: concurrent.futures.Executor, fn: Callable[..., Any], *args: Any
    ) -> Any:
        """`fn(*args)` in `executor`, awaited so that shutdown fails the wait (ServerStopping), never cancels it."""
        if self._stopping:
            raise ServerStopping("server is stopping")
        try:
            future = executor.submit(fn, *args)
        except RuntimeError:  # the executor was shut down: the server is closing
            raise ServerStopping("server is stopping") from None
        return await self._wait(future)

    async def _wait(self, future: concurrent.futures.Future[Any]) -> Any:
        """Await a concurrent future through a separate asyncio future (never cancels the original)."""
        if self._stopping:
            raise ServerStopping("server is stopping")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()

        def settle(done: concurrent.futures.Future[Any]) -> None:
            if waiter.done():
                return
            if done.cancelled():
                waiter.set_exception(ServerStopping("the pool cancelled the request"))
            elif done.exception() is not None:
                waiter.set_exception(done.exception())  # type: ignore[arg-type]
            else:
                waiter.set_result(done.result())

        def relay(done: concurrent.futures.Future[Any]) -> None:
            try:
                loop.call_soon_threadsafe(settle, done)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

        self._waiting.add(waiter)
        future.add_done_callback(relay)
        try:
            return await waiter
        finally:
            self._waiting.discard(waiter)

    def stop_waiting(self) -> int:
        """Refuse new requests and fail every in-flight pool wait with ServerStopping (loop thread only)."""
        self.admission.close()
        self._stopping = True
        pending = [w for w in self._waiting if not w.done()]
        for waiter in pending:
            waiter.set_exception(ServerStopping("server is stopping"))
        return len(pending)

    def remember_output(self, out: np.ndarray) -> None:
        """Cache output datatype/shape from a real answer, so metadata needs no probe later."""
        if self._output is None and out.ndim >= 1 and out.dtype in DATATYPES.values():
            self._output = (datatype_of(out.dtype), tuple(out.shape[1:]))

    # ---- management (blocking, run in admin_executor)
    def plan_dict(self) -> dict[str, Any]:
        """The plan being served, with the pool's state."""
        return {"plan": self.pool.plan.to_dict(), "state": self.state, "model": self.model_name}

    def resolve_plan(self, body: Mapping[str, Any]) -> Plan:
        """The plan a management request asks for (see plan_requests.resolve_plan); ValueError if refused."""
        from packrat_lab.serving.http.plan_requests import resolve_plan

        return resolve_plan(body, self.settings, self.max_batch, self.profile, self.cores)

    def set_plan(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Reconfigure the pool (blocking until switched); errors leave the old plan serving."""
        self.pool.reconfigure(self.resolve_plan(body))
        return self.plan_dict()

    def set_auto(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Turn the pool's auto mode on or off from {"auto": true|false}."""
        enabled = body.get("auto")
        if not isinstance(enabled, bool):
            msg = f"'auto' must be true or false, got {_short(enabled)}; example: {{\"auto\": true}}"
            raise ValueError(msg)  # noqa: TRY004 - a bad body is a ValueError (one-line 400)
        self.pool.set_auto(enabled)
        return {"auto": enabled}

    def slo_dict(self) -> dict[str, Any]:
        """The pool's latency objective in ms (None: off)."""
        return {"model": self.model_name, "slo_ms": getattr(self.pool, "slo_ms", None)}

    def set_slo(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Change the pool's latency objective live from {"slo_ms": 50} or {"slo_ms": null} (off)."""
        example = '{"slo_ms": 50} (or {"slo_ms": null} to turn it off)'
        if set(body) != {"slo_ms"}:
            msg = f"body must hold exactly 'slo_ms', got keys {sorted(body)[:4]}; example: {example}"
            raise ValueError(msg)
        value = body["slo_ms"]
        if value is not None and not positive_number(value):
            msg = f"'slo_ms' must be a positive number of milliseconds or null (off), got {_short(value)}; example: {example}"
            raise ValueError(msg)
        if value is None and getattr(self.pool, "batching", None) == "aimd":
            msg = f"this pool batches with AIMD, which needs a latency objective; example: {example.split(' (')[0]}"
            raise ValueError(msg)
        self.pool.set_slo(None if value is None else float(value))
        return self.slo_dict()

    def stats(self) -> dict[str, Any]:
        """pool.stats() as JSON (non-finite numbers as null), plus the plan text, state and HTTP request counts."""
        data: dict[str, Any] = jsonable(self.pool.stats())
        data["plan"] = self.pool.plan.text
        data["state"] = self.state
        data["http_requests"] = {f"{r} {c}": n for (r, c), n in sorted(self.metrics.requests().items())}
        return data

    def events(self) -> list[dict[str, Any]]:
        """The pool's timeline as JSON."""
        return [event_dict(e) for e in self.pool.events()]

    def metrics_text(self) -> bytes:
        """The whole Prometheus exposition (server and pool metrics)."""
        return self.metrics.render()

    def summary(self) -> str:
        """One line for the end of `packrat-lab serve`: inference requests served and failed."""
        counts = self.metrics.requests()
        served = sum(n for (route, code), n in counts.items() if route == "infer" and code == "200")
        refused = sum(n for (route, code), n in counts.items() if route == "infer" and code == "429")
        failed = sum(
            n for (route, code), n in counts.items() if route == "infer" and code not in ("200", "429")
        )
        tail = f", {refused} refused (latency objective)" if refused else ""
        return f"served {served} inference requests, {failed} failed{tail}"

    def close(self) -> None:
        """Stop the thread pools (the pool itself belongs to whoever made it)."""
        self._stopping = True
        self.admission.close()
        self.decoder.close()
        for executor in (self.executor, self.codec_executor, self.admin_executor):
            executor.shutdown(wait=False, cancel_futures=True)


def _short(value: Any) -> str:
    """A request value for a one-line error: its JSON-like repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _to_numpy(out: Any) -> np.ndarray:
    """A model output (tensor, or a tuple/ModelOutput whose first item is the tensor) as a NumPy array."""
    if isinstance(out, (tuple, list)):
        out = out[0]
    elif isinstance(out, Mapping):
        out = next(iter(out.values()))
    if hasattr(out, "detach"):
        # a pool's answer is a CPU tensor outside autograd: one call, not three (per request, on the loop)
        out = out.numpy() if out.is_cpu and not out.requires_grad else out.detach().cpu().numpy()
    return np.asarray(out)
