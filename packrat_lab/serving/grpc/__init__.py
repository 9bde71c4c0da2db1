"""Open Inference Protocol v2 over gRPC (the `[grpc]` extra): the same pool and PoolService as HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from packrat_lab.serving.grpc.server import GrpcServer, serve_grpc

__all__ = ["GrpcServer", "serve_grpc"]


def __getattr__(name: str) -> Any:
    """Import grpcio only when a server is asked for."""
    if name in __all__:
        from packrat_lab.extras import require

        require("grpc", "grpc", "OIP v2 over gRPC")
        require("tritonclient.grpc.service_pb2_grpc", "grpc", "OIP v2 over gRPC")
        from packrat_lab.serving.grpc import server

        return getattr(server, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
