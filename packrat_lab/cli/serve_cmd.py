"""`packrat-lab serve MODEL --plan 2x1x4`: a pool behind an Open Inference Protocol v2 server, in the foreground."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path
from typing import Any

from packrat_lab.cli.args import positive_float, positive_int
from packrat_lab.cli.model_args import MODEL_HELP, add_model_arguments, model_options
from packrat_lab.cli.stop_signals import serve_in_foreground, until_stopped

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the `serve` subcommand."""
    p = subparsers.add_parser(
        "serve",
        help="serve a model with a plan over HTTP (KServe v2 / Triton protocol) until Ctrl-C",
        description="Start a pool for MODEL with PLAN and serve it on HTTP (Open Inference Protocol v2, "
        "management routes under /packrat/, Prometheus at /metrics). Ctrl-C closes the pool cleanly.",
    )
    p.add_argument("model", nargs="?", help=MODEL_HELP)
    add_model_arguments(p)
    p.add_argument("--fleet", default=None, metavar="FILE", help="serve a fleet of models from a TOML file")
    p.add_argument(
        "--model",
        dest="models",
        action="append",
        default=[],
        metavar="NAME=MODEL:PLAN",
        help="serve several models as a fleet (repeat), e.g. --model a=mlp:1x1x4 --model b=tiny-cnn:1x1x4",
    )
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
        "--grpc-port",
        type=int,
        default=None,
        help="also serve OIP v2 over gRPC here (0: free port; [grpc] extra)",
    )
    p.add_argument(
        "--token-file",
        default=None,
        metavar="PATH",
        help="read the management token from this file (mode 0600); or set PACKRAT_LAB_TOKEN; "
        "default: a random one, printed",
    )
    p.add_argument("--token", default=None, help=argparse.SUPPRESS)  # refused: argv is public in /proc
    p.add_argument(
        "--max-batch",
        type=positive_int,
        default=None,
        help="largest plan batch the management route accepts (default: the profile's largest "
        "batch x cores, else 4096)",
    )
    p.add_argument(
        "--body-timeout",
        type=positive_float("60"),
        default=60.0,
        metavar="S",
        help="seconds a client may take to send a body (default 60)",
    )
    p.add_argument(
        "--idle-timeout",
        type=positive_float("60"),
        default=60.0,
        metavar="S",
        help="seconds an idle keep-alive connection stays open (default 60)",
    )
    p.add_argument(
        "--max-queue-delay-ms", type=float, default=5.0, help="dynamic batcher's max wait (default 5)"
    )
    p.add_argument(
        "--slo-ms",
        type=positive_float("50"),
        default=None,
        metavar="MS",
        help="latency objective: refuse (429) a request predicted to miss it, drop one that can no longer "
        "make it; a request's OIP v2 'timeout' parameter (microseconds) overrides it",
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


TOKEN_ENV = "PACKRAT_LAB_TOKEN"


def read_token(token_file: str | None, environ: Any = os.environ) -> str | None:
    """The management token from --token-file (must be private to its owner) or $PACKRAT_LAB_TOKEN."""
    if token_file is None:
        return environ.get(TOKEN_ENV) or None
    path = Path(token_file)
    mode = path.stat().st_mode  # FileNotFoundError: one line from the CLI
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        msg = f"token file {token_file} has mode {stat.filemode(mode)}, readable by others; run: chmod 600 {token_file}"
        raise ValueError(msg)
    token = path.read_text().strip()
    if not token:
        msg = f"token file {token_file} is empty; write a token into it, e.g. python -c 'import secrets; print(secrets.token_urlsafe())'"
        raise ValueError(msg)
    return token


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C, SIGTERM or POST /packrat/stop; always closes the pool and prints a summary."""
    from packrat_lab.serving.announce import announce
    from packrat_lab.serving.http.server import Limits, serve_pool
    from packrat_lab.serving.pool import Pool

    if args.token is not None:
        msg = f"--token is refused: a command line is readable by every local user; set {TOKEN_ENV} or use --token-file PATH"
        raise ValueError(msg)
    token = read_token(args.token_file)
    limits = Limits(
        body_timeout_s=args.body_timeout, idle_timeout_s=args.idle_timeout, max_batch=args.max_batch
    )
    if args.fleet is not None or args.models:  # several models: packrat_lab/cli/serve_fleet.py
        from packrat_lab.cli.serve_fleet import run_fleet

        return run_fleet(args, token, limits)
    if args.model is None:
        msg = "serve needs MODEL (example: packrat-lab serve mlp --plan 2x1x4) or --fleet FILE / --model NAME=MODEL:PLAN"
        raise ValueError(msg)

    profile = None
    if args.profile is not None:
        from packrat_lab.profiling.table import load_profile

        profile = load_profile(args.profile)
    plan = _initial_plan(args, profile)
    if args.auto and profile is None:
        msg = "--auto needs --profile FILE (the optimizer plans from it)"
        raise ValueError(msg)
    server = None
    with until_stopped() as closers:
        from packrat_lab.workloads.registry import get_workload

        pool = Pool(
            get_workload(args.model, **model_options(args)),
            plan,
            profile=profile,
            max_queue_delay_ms=args.max_queue_delay_ms,
            auto=args.auto,
            slo_ms=args.slo_ms,
            announce=False,  # this server is the one JupyterLab's sidebar should talk to
        )
        closers.callback(pool.close)
        server = serve_pool(pool, host=args.host, port=args.port, token=token, profile=profile, limits=limits)
        closers.callback(server.stop)
        announce(pool, server=server)
        if args.grpc_port is not None:  # same PoolService, so gRPC shares HTTP's checks and metrics
            from packrat_lab.serving.grpc import serve_grpc

            grpc_server = serve_grpc(server.service, host=args.host, port=args.grpc_port)
            closers.callback(grpc_server.stop)
            print(f"grpc  {grpc_server.address}", flush=True)
        print(f"serving {pool.workload.name} with plan {pool.plan.text} ({pool.plan})", flush=True)
        given = f"from {args.token_file}" if args.token_file else f"from ${TOKEN_ENV}"
        serve_in_foreground(server, server.token if token is None else given)
    if server is not None:
        print(f"stopped: {server.service.summary()}", flush=True)
    return 0
