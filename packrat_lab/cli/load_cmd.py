"""`packrat-lab load URL --rate R`: offer open-loop load to a v2 server (or a local pool) and print latency."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from packrat_lab.cli.args import positive_float, positive_int

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the `load` subcommand."""
    p = subparsers.add_parser(
        "load",
        help="send requests at a rate to a v2 URL or a local pool; print p50, p99, throughput, errors",
        description="Open-loop load: requests at --rate per second (Poisson arrivals by default) for --duration "
        "seconds against a v2 server URL (127.0.0.1/localhost only unless --allow-remote) or a pool "
        "started here with --pool MODEL:PLAN.",
    )
    p.add_argument(
        "url", nargs="?", default=None, help="server URL, e.g. http://127.0.0.1:8000 or .../v2/models/mlp"
    )
    p.add_argument(
        "--pool",
        default=None,
        metavar="MODEL:PLAN",
        help="start a local pool instead, e.g. mlp:2x1x4 or mypkg.models:build:2x1x4",
    )
    p.add_argument("--rate", type=positive_float("50"), required=True, help="requests per second, e.g. 50")
    p.add_argument(
        "--duration",
        type=positive_float("50"),
        default=10.0,
        metavar="S",
        help="seconds of load (default 10)",
    )
    p.add_argument(
        "--poisson",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Poisson arrivals (default) or evenly spaced (--no-poisson)",
    )
    p.add_argument(
        "--concurrency", type=positive_int, default=16, help="most requests in flight (default 16)"
    )
    p.add_argument("--batch", type=positive_int, default=1, help="rows per request (default 1)")
    p.add_argument("--model", default=None, help="model name on the server (default: the first it lists)")
    p.add_argument("--seed", type=int, default=0, help="seed of arrivals and inputs (default 0)")
    p.add_argument(
        "--timeout",
        type=positive_float("50"),
        default=30.0,
        metavar="S",
        help="per-request timeout and drain time (default 30)",
    )
    p.add_argument("--allow-remote", action="store_true", help="allow a URL that is not 127.0.0.1/localhost")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the load and print the report."""
    from packrat_lab.loadgen import run_load

    if (args.url is None) == (args.pool is None):
        msg = "give either a URL (example: http://127.0.0.1:8000) or --pool MODEL:PLAN (example: mlp:2x1x4)"
        raise ValueError(msg)
    options: dict[str, Any] = {
        "rate": args.rate,
        "duration_s": args.duration,
        "poisson": args.poisson,
        "concurrency": args.concurrency,
        "seed": args.seed,
        "batch": args.batch,
        "timeout_s": args.timeout,
    }
    if args.url is not None:
        try:
            report = run_load(args.url, model=args.model, allow_remote=args.allow_remote, **options)
        except OSError as exc:  # nothing listens there, or the connection broke before any request
            reason = exc.strerror or str(exc) or type(exc).__name__
            print(
                f"packrat-lab load: error: cannot reach {args.url} ({reason}); is `packrat-lab serve` running there?",
                file=sys.stderr,
            )
            return 1
    else:
        model, sep, plan = args.pool.rpartition(":")  # MODEL may hold a colon itself: 'pkg.mod:build:2x1x4'
        if not sep or not model or not plan:
            msg = f"--pool {args.pool!r} is not MODEL:PLAN; example: mlp:2x1x4"
            raise ValueError(msg)
        from packrat_lab.serving.pool import Pool

        with Pool(model, plan) as pool:
            report = run_load(pool, **options)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0 if report.errors == 0 else 1
