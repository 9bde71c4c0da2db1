"""HTTP front end of a pool: Open Inference Protocol v2 routes, management routes, Prometheus metrics."""

from __future__ import annotations

from packrat_lab.serving.http.limits import Limits
from packrat_lab.serving.http.server import Server, serve_pool

__all__ = ["Limits", "Server", "serve_pool"]
