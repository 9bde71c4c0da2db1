"""`packrat-lab serve MODEL --plan 2x1x4`: a pool behind an Open Inference Protocol v2 server, in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from packrat_lab.cli.args import positive_int
from packrat_lab.cli.model_args import MODEL_HELP, add_model_arguments, model_options

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the `serve` subcommand."""
    p = subparsers.add_parser(
        "serve",
        help="serve a model with a plan over HTTP (KServe v2 / Triton protocol) until Ctrl-C",
        description="Start a pool for MODEL with PLAN and serve it on HTTP (Open Inference Protocol v2, "
        "management routes under /packrat/, Prometheus at /metrics). Ctrl-C closes the pool cleanly.",
    )
    p.add_argument("model", help=MODEL_HELP)
    add_model_arguments(p)
    p.add_argument(
        "--plan",
        default=None,
        help="plan text, e.g. 2x1x4 or 1x2x8+2x1x4 (default: the optimizer's plan for --batch)",
    )
    p.add_argument(
        "--profile", default=None, metavar="FILE", help="profile file: enables {'batch': B} plans and --auto"
    )
    p.add_argument(
        "--batch", type=positive_int, default=None, help="with --profile and no --plan: plan for this batch"
    )
    p.add_argument(
        "--auto", action="store_true", help="reconfigure automatically when the estimated batch changes"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument(
        "--token", default=None, help="token for management routes (default: a random one, printed)"
    )
    p.add_argument(
        "--max-queue-delay-ms", type=float, default=5.0, help="dynamic batcher's max wait (default 5)"
    )
    p.set_defaults(func=run)


def _initial_plan(args: argparse.Namespace, profile: Any) -> Any:
    if args.plan is not None:
        return args.plan
    if profile is None or args.batch is None:
        msg = "give --plan (example: --plan 2x1x4), or --profile FILE with --batch B"
        raise ValueError(msg)
    from packrat_lab.host import detect_host
    from packrat_lab.optimizer import optimize

    return optimize(profile, detect_host().usable_cores, args.batch)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C, SIGTERM or POST /packrat/stop; always closes the pool."""
    from packrat_lab.serving.announce import announce
    from packrat_lab.serving.http.server import serve_pool
    from packrat_lab.serving.pool import Pool

    profile = None
    if args.profile is not None:
        from packrat_lab.profiling.table import load_profile

        profile = load_profile(args.profile)
    plan = _initial_plan(args, profile)
    if args.auto and profile is None:
        msg = "--auto needs --profile FILE (the optimizer plans from it)"
        raise ValueError(msg)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    server = None
    pool = None
    try:
        from packrat_lab.workloads.registry import get_workload

        pool = Pool(
            get_workload(args.model, **model_options(args)),
            plan,
            profile=profile,
            max_queue_delay_ms=args.max_queue_delay_ms,
            auto=args.auto,
            announce=False,  # this server is the one JupyterLab's sidebar should talk to
        )
        server = serve_pool(pool, host=args.host, port=args.port, token=args.token, profile=profile)
        announce(pool, server=server)
        print(f"serving {pool.workload.name} with plan {pool.plan.text} ({pool.plan})", flush=True)
        print(f"url   {server.url}", flush=True)
        print(f"token {server.token}", flush=True)
        print("Ctrl-C to stop", flush=True)
        server.wait()
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.stop()
        if pool is not None:
            pool.close()
        signal.signal(signal.SIGTERM, previous)
    return 0
