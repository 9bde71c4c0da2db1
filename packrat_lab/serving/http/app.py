"""Tornado routes of the Open Inference Protocol v2 (KServe v2) for one pool.

Routes (model name = the pool's workload name, e.g. 'mlp'):

    GET  /v2/health/live                 200 while the server runs
    GET  /v2/health/ready                200 when the pool state is serving or switching, else 503
    GET  /v2                             server metadata (extensions: binary_tensor_data)
    GET  /v2/models/{m}[/versions/{v}]   model metadata: input 'INPUT' [-1, *sample_shape], output 'OUTPUT'
    GET  /v2/models/{m}/ready            same rule as /v2/health/ready
    GET  /v2/models/{m}/config           Triton-style config (instances, max batch)
    POST /v2/models/{m}[/versions/{v}]/infer
                                          JSON tensors or the binary tensor extension
                                          (Inference-Header-Content-Length, binary_data_size);
                                          a 1-row request goes through pool.submit (dynamic batching),
                                          N rows through pool.infer (split by the plan)
    POST /v2/repository/index            [{"name": m, "version": "1", "state": "READY"}]

Errors are one-line `{"error": "..."}`: 400 for a bad body, shape or datatype; 403 for a Host
header a loopback server does not answer to (every route); 404 for an unknown model; 413 for a
body or JSON part over the limits (also after gzip/deflate inflation); 500 when inference fails or
a JSON answer would need NaN/Infinity (ask for binary output); 503 when the pool is not ready, the
server holds its limit of requests, or it is stopping. Management routes are in management.py.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

import tornado.web

from packrat_lab import __version__
from packrat_lab.errors import Rejected
from packrat_lab.serving.http.codec import MiB
from packrat_lab.serving.http.limits import MANAGEMENT_BODY_BYTES
from packrat_lab.serving.http.protocol import HEADER_LENGTH, ProtocolError, dumps
from packrat_lab.serving.http.service import PoolService, ServerStopping

__all__ = ["BaseHandler", "make_app", "routes"]

T = TypeVar("T")
_MODEL = r"/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>[^/]+))?"


@tornado.web.stream_request_body
class BaseHandler(tornado.web.RequestHandler):
    """JSON answers and one-line JSON errors for every route; Host check; counts each answer in the metrics.

    Bodies are streamed into `self.body` under the route's limit (413 from the Content-Length
    alone), so tornado never parses form bodies on the event loop, whatever the Content-Type.
    """

    route = "other"
    max_body_bytes: int | None = MANAGEMENT_BODY_BYTES  # None: the server's Limits.max_body_bytes

    def initialize(self, service: PoolService) -> None:
        self.service = service

    def prepare(self) -> None:
        """Every route: refuse a Host header a loopback server does not answer to (DNS rebinding)."""
        task = asyncio.current_task()
        if task is not None:  # awaited by the server's shutdown, so none is cancelled mid-answer
            self.service.tasks.add(task)
        self._body = bytearray()
        try:
            self.service.check_host(self.request.host)
            self._limit_body()
        except ProtocolError as exc:
            self.fail(exc.status, str(exc))

    def _limit_body(self) -> None:
        limit = self.max_body_bytes or self.service.limits.max_body_bytes
        connection = self.request.connection
        if connection is not None and hasattr(connection, "set_max_body_size"):
            connection.set_max_body_size(limit)
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limit:
            msg = (
                f"request body of {int(length) / MiB:.1f} MiB is above this route's {limit / MiB:g} MiB limit"
            )
            raise ProtocolError(msg, status=413)

    def data_received(self, chunk: bytes) -> None:
        if not self._finished:
            self._body += chunk

    @property
    def body(self) -> bytes:
        """The request body, streamed in under the route's limit."""
        return bytes(self._body)

    def check_xsrf_cookie(self) -> None:
        """API routes are token-protected, not cookie-protected."""

    def send_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(dumps(data))

    def fail(self, status: int, message: str) -> None:
        self.send_json({"error": message.splitlines()[0] if message else f"HTTP {status}"}, status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        reason = str(exc) if exc is not None and status_code < 500 else self._reason
        if isinstance(exc, _Unavailable):
            reason = exc.detail
        self.set_header("Content-Type", "application/json")
        self.finish(dumps({"error": (reason or f"HTTP {status_code}").splitlines()[0]}))

    def on_finish(self) -> None:
        self.service.metrics.count_request(self.route, self.get_status())

    def pool_ready(self) -> bool:
        return self.service.ready()

    def known_model(self, model: str) -> bool:
        if model != self.service.model_name:
            self.fail(404, f"unknown model {model[:80]!r}; this server serves {self.service.model_name!r}")
            return False
        return True

    async def admin(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking management call on the admin executor (never queued behind inference)."""
        try:
            result: T = await self.service.run_blocking(self.service.admin_executor, fn, *args)
        except ServerStopping:
            raise tornado.web.HTTPError(503, reason="server is stopping") from None
        return result

    async def describe(self, fn: Callable[[], T]) -> T:
        """A metadata call (it may probe the pool): a failure of the pool's is a one-line 503, not a bare 500."""
        try:
            return await self.admin(fn)
        except tornado.web.HTTPError:
            raise
        except Exception as exc:  # e.g. the probe met a dead worker: say so in one line
            raise _Unavailable(f"{self.route} unavailable: {type(exc).__name__}: {exc}") from exc

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """HTTPErrors are answers, not incidents: only unexpected exceptions are logged (with traceback)."""
        if not isinstance(value, tornado.web.HTTPError):
            super().log_exception(typ, value, tb)


class _Unavailable(tornado.web.HTTPError):
    """A management call failed for a reason of the pool's (a dead worker, a closed pool): 503, one line."""

    def __init__(self, detail: str) -> None:
        super().__init__(503)
        self.detail = detail.splitlines()[0] if detail else "unavailable"


class LiveHandler(BaseHandler):
    route = "live"

    def get(self) -> None:
        self.send_json({"live": True})


class ReadyHandler(BaseHandler):
    route = "ready"

    def get(self) -> None:
        ready = self.pool_ready()
        self.send_json({"ready": ready}, 200 if ready else 503)


class ServerMetadataHandler(BaseHandler):
    route = "server_metadata"

    def get(self) -> None:
        self.send_json({"name": "packrat-lab", "version": __version__, "extensions": ["binary_tensor_data"]})


class ModelMetadataHandler(BaseHandler):
    route = "model_metadata"

    async def get(self, model: str, version: str | None = None) -> None:
        if not self.known_model(model):
            return
        self.send_json(await self.describe(self.service.model_metadata))


class ModelReadyHandler(BaseHandler):
    route = "model_ready"

    def get(self, model: str, version: str | None = None) -> None:
        if not self.known_model(model):
            return
        ready = self.pool_ready()
        self.send_json({"name": model, "ready": ready}, 200 if ready else 503)


class ModelConfigHandler(BaseHandler):
    route = "model_config"

    async def get(self, model: str, version: str | None = None) -> None:
        if not self.known_model(model):
            return
        self.send_json(await self.describe(self.service.model_config))


class RepositoryIndexHandler(BaseHandler):
    route = "repository_index"

    def post(self) -> None:
        state = "READY" if self.pool_ready() else "UNAVAILABLE"
        self.send_json([{"name": self.service.model_name, "version": "1", "state": state}])


class InferHandler(BaseHandler):
    route = "infer"
    max_body_bytes = None
    _admitted = False

    def prepare(self) -> None:
        """Admit the request before its body streams in: at most Limits.max_in_flight bodies are held."""
        super().prepare()
        if self._finished:
            return
        try:
            self.service.admission.enter()
        except ProtocolError as exc:
            self.fail(exc.status, str(exc))
            return
        self._admitted = True

    def _leave(self) -> None:
        if self._admitted:
            self._admitted = False
            self.service.admission.leave()

    def on_finish(self) -> None:
        self._leave()
        super().on_finish()

    def on_connection_close(self) -> None:
        self._leave()
        super().on_connection_close()

    async def post(self, model: str, version: str | None = None) -> None:
        arrived = time.perf_counter()
        if not self.known_model(model):
            return
        await self._infer(model, version, arrived)

    async def _infer(self, model: str, version: str | None, arrived: float) -> None:
        service = self.service
        headers = self.request.headers
        inline = service.limits.inline_codec_bytes
        small_body = len(self.body) <= inline and not headers.get("Content-Encoding")
        try:  # decode, inflate and validate (off the event loop unless the body is small)
            request, array = await service.run_codec(
                small_body,
                service.decode_request,
                self.body,
                headers.get(HEADER_LENGTH),
                headers.get("Content-Encoding"),
            )
        except (ProtocolError, ServerStopping) as exc:
            self.fail(*_refusal(exc))
            return
        if not self.pool_ready():
            self.fail(503, f"model {model!r} is not serving (pool state {service.state!r})")
            return
        try:
            out = await service.infer(array, arrived, service.deadline_ms(request.parameters))
        except (ProtocolError, ServerStopping) as exc:
            self.fail(*_refusal(exc))
            return
        except Rejected as exc:  # the latency objective: an answer, not a server error
            self.fail(429, str(exc))
            return
        except ValueError as exc:  # the pool refused the input
            self.fail(400, str(exc) or type(exc).__name__)
            return
        except Exception as exc:  # noqa: BLE001 - a worker died or the pool closed: the client gets a clear error
            self.fail(500, f"inference failed: {type(exc).__name__}: {exc}")
            return
        accepted = headers.get("Accept-Encoding", "")
        small_answer = out.nbytes <= inline and "gzip" not in accepted and "deflate" not in accepted
        try:
            body, header_length, encoding = await service.run_codec(
                small_answer, _encode, service, request, out, version, accepted
            )
        except (ProtocolError, ServerStopping) as exc:
            self.fail(*_refusal(exc))
            return
        if encoding is not None:
            self.set_header("Content-Encoding", encoding)
        if header_length is not None:
            self.set_header(HEADER_LENGTH, str(header_length))
            self.set_header("Content-Type", "application/octet-stream")
        else:
            self.set_header("Content-Type", "application/json")
        service.metrics.request_seconds.observe(time.perf_counter() - arrived)
        self.finish(body)


def _refusal(exc: ProtocolError | ServerStopping) -> tuple[int, str]:
    """The status and message for a request the codec refused or the stopping server cut off."""
    if isinstance(exc, ServerStopping):
        return 503, f"request cut off: {exc}"
    return exc.status, str(exc)


def _encode(
    service: PoolService, request: Any, out: Any, version: str | None, accepted: str
) -> tuple[bytes, int | None, str | None]:
    """Body, binary header length and Content-Encoding of an answer (gzip/deflate only when asked)."""
    body, header_length = service.encode_response(request, out, version)
    for name, pack in (("gzip", gzip.compress), ("deflate", zlib.compress)):
        if name in accepted:
            return pack(body), header_length, name
    return body, header_length, None


def routes(service: PoolService, prefix: str = "") -> list[tuple[str, type[BaseHandler], dict[str, Any]]]:
    """Every route (v2 and management) with its handler; `prefix` lets a Jupyter extension mount them."""
    from packrat_lab.serving.http.management import management_routes

    args = {"service": service}
    v2: list[tuple[str, type[BaseHandler]]] = [
        (r"/v2/health/live", LiveHandler),
        (r"/v2/health/ready", ReadyHandler),
        (r"/v2/?", ServerMetadataHandler),
        (r"/v2/repository/index", RepositoryIndexHandler),
        (_MODEL + r"/ready", ModelReadyHandler),
        (_MODEL + r"/config", ModelConfigHandler),
        (_MODEL + r"/infer", InferHandler),
        (_MODEL + r"/?", ModelMetadataHandler),
    ]
    return [(prefix + path, handler, args) for path, handler in [*v2, *management_routes()]]


class _NotFound(BaseHandler):
    def prepare(self) -> None:
        super().prepare()
        if self._finished:
            return
        self.fail(404, f"no route {self.request.method} {self.request.path}; see GET /v2 and /packrat/plan")


_log = logging.getLogger("packrat_lab.http")


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log at debug level: a 400 must not print into the notebook cell that started the server."""
    request = handler.request
    _log.debug(
        "%d %s %s %.2fms", handler.get_status(), request.method, request.uri, 1000.0 * request.request_time()
    )


def make_app(service: PoolService) -> tornado.web.Application:
    """The tornado Application serving one pool (or a fleet: a service with its own `app_routes`)."""
    table = service.app_routes() if hasattr(service, "app_routes") else routes(service)
    return tornado.web.Application(
        table,
        default_handler_class=_NotFound,
        default_handler_args={"service": service},
        log_function=_log_request,
    )
