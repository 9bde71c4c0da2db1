"""HTTP front end of a pool: Open Inference Protocol v2 routes, management routes, Prometheus metrics.

Concurrency: who owns what.

    caller thread (notebook cell, `packrat-lab serve` main thread)
        serve_pool() -> Server: binds the socket, starts the server thread, returns.
        Server.stop(): asks the loop to stop, joins the thread (5 s), shuts the executors down.
    server thread "packrat-http-PORT": one asyncio/tornado event loop. It alone touches tornado,
        sockets, handler state, PoolService._waiting/tasks. It never decodes, encodes, validates,
        inflates or calls the pool's blocking methods; it reads pool.state (an attribute) for the
        readiness routes and calls pool.submit (which only queues).
    PoolService.codec_executor (2 threads "packrat-http-codec"): inflate (capped), JSON decode
        (strict), vectorised validation, answer encoding and compression. json.loads holds the
        GIL for its whole parse, so a JSON part above 1 MiB is handed to the JsonDecoder helper
        process (one spawned process, started on first use; decoder.py) and the codec thread
        only waits; Limits.max_json_bytes (16 MiB) bounds the rest.
    PoolService.executor (8 threads "packrat-http-infer"): blocking pool.infer of multi-row requests.
        A stuck pool fills it; nothing else runs there.
    PoolService.admin_executor (4 threads "packrat-http-admin"): management and metadata routes
        (stats, events, metrics, plan get/set, auto, stop, model metadata/config), so inference can
        never starve them.
    pool threads: settle the futures of pool.submit / executor jobs. The loop never awaits those
        futures directly: PoolService._wait relays the outcome with call_soon_threadsafe into a
        separate asyncio future, so a cut-off request never cancels the pool's future (no
        InvalidStateError in the pool) and a result arriving after the loop closed is dropped.

Admission: at most Limits.max_in_flight inference requests are held, from their headers on, so at
most that many bodies are buffered (503 past it).
Stopping: tornado stops accepting; Admission refuses (503); every in-flight wait fails with
ServerStopping (503 "request cut off"); handler tasks get 2 s to write that answer; connections close;
the loop ends. Nothing is cancelled under a handler, so nothing prints a traceback.

Trust: a loopback bind answers only Host 127.0.0.1/localhost/[::1] with its port (DNS rebinding);
another bind is warned about on stderr and in logging. Mutating routes need the token. Plans are
text naming the server's own runtime settings; a request can never define environment variables.
"""

from __future__ import annotations

from packrat_lab.serving.http.limits import Limits
from packrat_lab.serving.http.server import Server, serve_pool

__all__ = ["Limits", "Server", "serve_pool"]
