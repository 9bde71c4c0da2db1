"""serve_grpc: the Open Inference Protocol v2 gRPC service for one PoolService, on its own loop thread.

RPCs: ServerLive, ServerReady, ServerMetadata, ModelReady, ModelMetadata, ModelConfig,
RepositoryIndex, ModelInfer (others answer UNIMPLEMENTED). Decoding, input checks, metadata and
inference are PoolService's, so gRPC and HTTP answer alike: a bad request is INVALID_ARGUMENT with
the same one-line message HTTP puts in its 400, an unknown model NOT_FOUND, a pool that is not
serving UNAVAILABLE, a failed inference INTERNAL; the server keeps serving after each.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from packrat_lab import __version__
from packrat_lab.errors import Rejected
from packrat_lab.serving.grpc.codec import decode_inputs, encode_response
from packrat_lab.serving.http.protocol import ProtocolError, Tensor
from packrat_lab.serving.http.service import OUTPUT_NAME, ServerStopping
from packrat_lab.serving.loop_thread import LoopThread, host_port

if TYPE_CHECKING:
    from packrat_lab.serving.http.service import PoolService

__all__ = ["MAX_MESSAGE_BYTES", "GrpcServer", "OipServicer", "serve_grpc"]

MAX_MESSAGE_BYTES = 100 * 1024 * 1024  # Limits.max_body_bytes' default, so both doors take the same sizes
# the HTTP status a refusal carries (ProtocolError.status) <-> the gRPC code that means the same
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
}
GRPC_CODE = {status: code for code, status in HTTP_STATUS.items()}


def code_for(status: int) -> grpc.StatusCode:
    """The gRPC code for an HTTP status (other 4xx: INVALID_ARGUMENT, other 5xx: INTERNAL)."""
    return GRPC_CODE.get(
        status, grpc.StatusCode.INVALID_ARGUMENT if status < 500 else grpc.StatusCode.INTERNAL
    )


def pool_ready(service: PoolService) -> bool:
    """Readiness as HTTP answers it (PoolService.ready: serving, or switching while the old plan answers)."""
    return service.ready()


class OipServicer(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]  # RPC names are the stub's
    """The v2 RPCs answered from a PoolService (the same object the HTTP routes use)."""

    def __init__(self, service: PoolService) -> None:
        self.service = service

    def _count(self, route: str, code: grpc.StatusCode) -> None:
        """Count an answer in the server's metrics next to HTTP's: route grpc_*, the HTTP status it equals."""
        self.service.metrics.count_request(f"grpc_{route}", HTTP_STATUS.get(code, 500))

    async def _fail(self, context: Any, route: str, code: grpc.StatusCode, message: str) -> NoReturn:
        """Answer `code` with a one-line message (context.abort raises, so nothing after it runs)."""
        self._count(route, code)
        await context.abort(code, message)
        raise AssertionError  # unreachable: abort raised

    async def _check_model(self, context: Any, route: str, name: str) -> None:
        if name != self.service.model_name:
            message = f"unknown model {name!r}; this server serves {self.service.model_name!r}"
            await self._fail(context, route, grpc.StatusCode.NOT_FOUND, message)

    async def ServerLive(self, request: Any, context: Any) -> Any:
        self._count("live", grpc.StatusCode.OK)
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        self._count("ready", grpc.StatusCode.OK)
        return pb.ServerReadyResponse(ready=pool_ready(self.service))

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        self._count("server_metadata", grpc.StatusCode.OK)
        return pb.ServerMetadataResponse(name="packrat-lab", version=__version__, extensions=[])

    async def ModelReady(self, request: Any, context: Any) -> Any:
        await self._check_model(context, "model_ready", request.name)
        self._count("model_ready", grpc.StatusCode.OK)
        return pb.ModelReadyResponse(ready=pool_ready(self.service))

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        await self._check_model(context, "model_metadata", request.name)
        loop = asyncio.get_running_loop()
        meta = await loop.run_in_executor(self.service.admin_executor, self.service.model_metadata)
        self._count("model_metadata", grpc.StatusCode.OK)
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["outputs"]],
        )

    async def ModelConfig(self, request: Any, context: Any) -> Any:
        from tritonclient.grpc import model_config_pb2 as mc

        await self._check_model(context, "model_config", request.name)
        loop = asyncio.get_running_loop()
        config = await loop.run_in_executor(self.service.admin_executor, self.service.model_config)
        self._count("model_config", grpc.StatusCode.OK)

        def tensors(kind: Any, entries: list[dict[str, Any]]) -> list[Any]:
            return [
                kind(name=e["name"], data_type=mc.DataType.Value(e["data_type"]), dims=e["dims"])
                for e in entries
            ]

        message = mc.ModelConfig(
            name=config["name"],
            platform=config["platform"],
            max_batch_size=config["max_batch_size"],
            input=tensors(mc.ModelInput, config["input"]),
            output=tensors(mc.ModelOutput, config["output"]),
            instance_group=[
                mc.ModelInstanceGroup(count=g["count"], kind=mc.ModelInstanceGroup.KIND_CPU)
                for g in config["instance_group"]
            ],
        )
        return pb.ModelConfigResponse(config=message)

    async def RepositoryIndex(self, request: Any, context: Any) -> Any:
        self._count("repository_index", grpc.StatusCode.OK)
        state = "READY" if pool_ready(self.service) else "UNAVAILABLE"
        index = pb.RepositoryIndexResponse.ModelIndex(name=self.service.model_name, version="1", state=state)
        return pb.RepositoryIndexResponse(models=[index])

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        arrived = time.perf_counter()
        service = self.service
        await self._check_model(context, "infer", request.model_name)
        try:  # the same ceiling on requests in flight as HTTP, and refusal once stopping
            service.admission.enter()
        except ProtocolError as exc:
            await self._fail(context, "infer", code_for(exc.status), str(exc))
        try:
            return await self._infer(request, context, arrived)
        finally:
            service.admission.leave()

    async def _infer(self, request: Any, context: Any, arrived: float) -> Any:
        service = self.service
        loop = asyncio.get_running_loop()
        try:  # decode and check off the event loop, in the pool HTTP decodes in
            array = await loop.run_in_executor(service.codec_executor, _checked_input, service, request)
        except ProtocolError as exc:
            await self._fail(context, "infer", code_for(exc.status), str(exc))
        if not pool_ready(service):
            message = f"model {request.model_name!r} is not serving (pool state {service.state!r})"
            await self._fail(context, "infer", grpc.StatusCode.UNAVAILABLE, message)
        code, message = grpc.StatusCode.OK, ""
        try:
            out = await service.infer(array, arrived, service.deadline_ms(_request_parameters(request)))
        except ServerStopping as exc:
            code, message = grpc.StatusCode.UNAVAILABLE, f"request cut off: {exc}"
        except ProtocolError as exc:
            code, message = code_for(exc.status), str(exc)
        except Rejected as exc:  # the latency objective: counted as HTTP's 429, not as a server error
            self.service.metrics.count_request("grpc_infer", 429)
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc).splitlines()[0])
        except ValueError as exc:  # the pool refused the input
            code, message = (
                grpc.StatusCode.INVALID_ARGUMENT,
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )
        except Exception as exc:  # noqa: BLE001 - a worker died or the pool closed: this request fails alone
            code, message = grpc.StatusCode.INTERNAL, f"inference failed: {type(exc).__name__}: {exc}"
        if code != grpc.StatusCode.OK:
            await self._fail(context, "infer", code, message)
        service.remember_output(out)
        response = encode_response(
            request.model_name, request.model_version, request.id, [Tensor(OUTPUT_NAME, out)]
        )
        service.metrics.request_seconds.observe(time.perf_counter() - arrived)
        self._count("infer", grpc.StatusCode.OK)
        return response


def _request_parameters(request: Any) -> Any:
    """The request's `parameters` map as plain values, as HTTP's JSON gives them (for `timeout`)."""
    return {
        name: getattr(p, p.WhichOneof("parameter_choice") or "int64_param")
        for name, p in request.parameters.items()
    }


def _checked_input(service: PoolService, request: Any) -> Any:
    """The request's one input array, checked by PoolService as HTTP checks it; ProtocolError if bad."""
    array = service.check_input(decode_inputs(request))
    unknown = [o.name for o in request.outputs if o.name != OUTPUT_NAME]
    if unknown:
        msg = f"model {request.model_name!r} has no output {unknown[0]!r}; valid: [{OUTPUT_NAME!r}]"
        raise ProtocolError(msg)
    return array


class GrpcServer(LoopThread):
    """A running gRPC server for one PoolService: `.address`, `.port`, `.stop()`; a context manager."""

    def __init__(
        self, service: PoolService, host: str, port: int, max_message_bytes: int = MAX_MESSAGE_BYTES
    ) -> None:
        self.service = service
        self.max_message_bytes = max_message_bytes
        self.host = host
        self.port = port
        super().__init__("packrat-grpc")

    @property
    def address(self) -> str:
        """host:port as tritonclient.grpc.InferenceServerClient takes it, e.g. 127.0.0.1:8001."""
        return host_port(self.host, self.port)

    async def _main(self) -> None:
        options = [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
        server = grpc.aio.server(options=options)
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(OipServicer(self.service), server)
        try:
            bound = server.add_insecure_port(self.address)
        except RuntimeError:
            bound = 0
        if not bound:
            msg = f"cannot listen for gRPC on {self.address}; example: --grpc-port 0 for a free port"
            raise ValueError(msg)
        self.port = bound
        await server.start()
        await self._serve_until_stopped()
        await server.stop(grace=1.0)

    def _describe(self) -> str:
        return f"{self.address} model={self.service.model_name!r}"


def serve_grpc(
    service: PoolService,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    max_message_bytes: int | None = None,
) -> GrpcServer:
    """Serve `service` (an HTTP server's `.service`, or a new PoolService) over gRPC; port 0 picks one.

    A message past `max_message_bytes` (default: the service's Limits.max_body_bytes, as HTTP) is
    refused with RESOURCE_EXHAUSTED.
    """
    if max_message_bytes is None:
        max_message_bytes = int(service.limits.max_body_bytes)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        msg = f"gRPC port must be 0..65535, got {port!r}; example: 8001 (0 picks a free port)"
        raise ValueError(msg)
    if not isinstance(max_message_bytes, int) or isinstance(max_message_bytes, bool) or max_message_bytes < 1:
        msg = f"max_message_bytes must be a positive integer, got {max_message_bytes!r}; example: {MAX_MESSAGE_BYTES}"
        raise ValueError(msg)
    return GrpcServer(service, host, port, max_message_bytes).start()
