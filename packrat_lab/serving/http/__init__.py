"""HTTP front end of a pool: Open Inference Protocol v2 routes, management routes, Prometheus metrics."""

from __future__ import annotations

from packrat_lab.serving.http.server import Server, serve_pool

__all__ = ["Server", "serve_pool"]
