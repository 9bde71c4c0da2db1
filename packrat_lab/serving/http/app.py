"""Tornado routes of the Open Inference Protocol v2 (KServe v2) for one pool.

Routes (model name = the pool's workload name, e.g. 'mlp'):

    GET  /v2/health/live                 200 while the server runs
    GET  /v2/health/ready                200 when the pool serves, 503 otherwise
    GET  /v2                             server metadata (extensions: binary_tensor_data)
    GET  /v2/models/{m}[/versions/{v}]   model metadata: input 'INPUT' [-1, *sample_shape], output 'OUTPUT'
    GET  /v2/models/{m}/ready            200 when the pool serves
    GET  /v2/models/{m}/config           Triton-style config (instances, max batch)
    POST /v2/models/{m}[/versions/{v}]/infer
                                          JSON tensors or the binary tensor extension
                                          (Inference-Header-Content-Length, binary_data_size);
                                          a 1-row request goes through pool.submit (dynamic batching),
                                          N rows through pool.infer (split by the plan)
    POST /v2/repository/index            [{"name": m, "version": "1", "state": "READY"}]

Errors are `{"error": "..."}`: 400 for a bad body, shape or datatype, 404 for an unknown model,
503 when the pool is closed. Management routes (/packrat/..., /metrics) are in management.py.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
import zlib
from typing import Any

import tornado.httputil
import tornado.web

from packrat_lab import __version__
from packrat_lab.serving.http.protocol import (
    HEADER_LENGTH,
    ProtocolError,
    Tensor,
    decode_infer_request,
    encode_infer_response,
)
from packrat_lab.serving.http.service import OUTPUT_NAME, PoolService

__all__ = ["BaseHandler", "make_app", "routes"]

_MODEL = r"/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>[^/]+))?"


class BaseHandler(tornado.web.RequestHandler):
    """JSON answers and JSON errors for every route; counts each answer in the metrics."""

    route = "other"

    def initialize(self, service: PoolService) -> None:
        self.service = service

    def check_xsrf_cookie(self) -> None:
        """API routes are token-protected, not cookie-protected."""

    def send_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def fail(self, status: int, message: str) -> None:
        self.send_json({"error": message}, status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        reason = str(exc) if exc is not None and status_code < 500 else self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": reason or f"HTTP {status_code}"}))

    def on_finish(self) -> None:
        self.service.metrics.count_request(self.route, self.get_status())

    def pool_ready(self) -> bool:
        state = str(getattr(self.service.pool, "state", "serving")).lower()
        return state not in ("closed", "closing", "stopped", "failed", "starting")

    def known_model(self, model: str) -> bool:
        if model != self.service.model_name:
            self.fail(404, f"unknown model {model!r}; this server serves {self.service.model_name!r}")
            return False
        return True


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
        loop = asyncio.get_running_loop()
        meta = await loop.run_in_executor(self.service.executor, self.service.model_metadata)
        self.send_json(meta)


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
        loop = asyncio.get_running_loop()
        self.send_json(await loop.run_in_executor(self.service.executor, self.service.model_config))


class RepositoryIndexHandler(BaseHandler):
    route = "repository_index"

    def post(self) -> None:
        state = "READY" if self.pool_ready() else "UNAVAILABLE"
        self.send_json([{"name": self.service.model_name, "version": "1", "state": state}])


class InferHandler(BaseHandler):
    route = "infer"

    async def post(self, model: str, version: str | None = None) -> None:
        arrived = time.perf_counter()
        if not self.known_model(model):
            return
        try:
            header = self.request.headers.get(HEADER_LENGTH)
            try:
                header_length = int(header) if header is not None else None
            except ValueError:
                msg = f"{HEADER_LENGTH} must be an integer byte count, got {header!r}; example: 120"
                raise ProtocolError(msg) from None
            request = decode_infer_request(_decompress(self.request), header_length)
            array = self.service.check_input(request.inputs)
            unknown = [o.name for o in request.outputs if o.name != OUTPUT_NAME]
            if unknown:
                msg = f"model {model!r} has no output {unknown[0]!r}; valid: [{OUTPUT_NAME!r}]"
                raise ProtocolError(msg)
        except ProtocolError as exc:
            self.fail(exc.status, str(exc))
            return
        if not self.pool_ready():
            self.fail(503, f"model {model!r} is not serving (pool state {self.service.pool.state!r})")
            return
        try:
            out = await self.service.infer(array, arrived)
        except ValueError as exc:  # the pool refused the input
            self.fail(400, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return
        except Exception as exc:  # noqa: BLE001 - a worker died or the pool closed: the client gets a clear error
            self.fail(500, f"inference failed: {type(exc).__name__}: {exc}")
            return
        self.service.remember_output(out)
        body, header_length = encode_infer_response(
            model, [Tensor(OUTPUT_NAME, out)], request, model_version=version
        )
        body = self._compress(body)
        if header_length is not None:
            self.set_header(HEADER_LENGTH, str(header_length))
            self.set_header("Content-Type", "application/octet-stream")
        else:
            self.set_header("Content-Type", "application/json")
        self.service.metrics.request_seconds.observe(time.perf_counter() - arrived)
        self.finish(body)

    def _compress(self, body: bytes) -> bytes:
        """gzip or deflate the answer only when the client asked (tritonclient's response compression)."""
        accepted = self.request.headers.get("Accept-Encoding", "")
        for name, pack in (("gzip", gzip.compress), ("deflate", zlib.compress)):
            if name in accepted:
                self.set_header("Content-Encoding", name)
                return pack(body)
        return body


def _decompress(request: tornado.httputil.HTTPServerRequest) -> bytes:
    """The request body, inflated if sent with Content-Encoding gzip or deflate (tritonclient can)."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    try:
        if encoding == "gzip":
            return gzip.decompress(request.body)
        if encoding == "deflate":
            return zlib.decompress(request.body)
    except (OSError, zlib.error, EOFError) as exc:
        msg = f"request body is not valid {encoding} data ({exc}); send it uncompressed or fix the encoding"
        raise ProtocolError(msg) from None
    if encoding not in ("identity", ""):
        msg = f"Content-Encoding {encoding!r} is not supported; valid: gzip, deflate, identity"
        raise ProtocolError(msg)
    return request.body


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
        self.fail(404, f"no route {self.request.method} {self.request.path}; see GET /v2 and /packrat/plan")


_log = logging.getLogger("packrat_lab.http")


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log at debug level: a 400 must not print into the notebook cell that started the server."""
    request = handler.request
    _log.debug(
        "%d %s %s %.2fms", handler.get_status(), request.method, request.uri, 1000.0 * request.request_time()
    )


def make_app(service: PoolService) -> tornado.web.Application:
    """The tornado Application serving one pool."""
    return tornado.web.Application(
        routes(service),
        default_handler_class=_NotFound,
        default_handler_args={"service": service},
        log_function=_log_request,
    )
