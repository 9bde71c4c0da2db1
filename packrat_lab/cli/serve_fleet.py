"""`packrat-lab serve --fleet fleet.toml` (or repeated `--model NAME=MODEL:PLAN`): a Fleet behind one v2 server."""

from __future__ import annotations

import argparse
from typing import Any

from packrat_lab.cli.stop_signals import serve_in_foreground, until_stopped

__all__ = ["run_fleet"]

_OPTIONS = {"auto", "slo_ms", "max_queue_delay_ms", "warmup"}


def _config(args: argparse.Namespace) -> Any:
    from packrat_lab.fleet.config import load_fleet_toml, parse_model_specs

    if args.model is not None or args.plan is not None:
        msg = f"serve takes MODEL --plan PLAN or --fleet/--model NAME=MODEL:PLAN, not both (got MODEL {args.model!r}); example: packrat-lab serve --model a=mlp:1x1x4 --model b=tiny-cnn:1x1x4"
        raise ValueError(msg)
    if args.fleet is not None and args.models:
        msg = "give --fleet FILE or --model NAME=MODEL:PLAN options, not both; example: packrat-lab serve --fleet fleet.toml"
        raise ValueError(msg)
    config = load_fleet_toml(args.fleet) if args.fleet is not None else parse_model_specs(args.models)
    unknown = sorted(set(config.options) - _OPTIONS)
    if unknown:
        msg = f"[fleet] option {unknown[0]!r} is unknown; valid: {sorted(_OPTIONS)}; example: [fleet]\\nslo_ms = 100"
        raise ValueError(msg)
    return config


def run_fleet(args: argparse.Namespace, token: str | None, limits: Any) -> int:
    """Serve the fleet until Ctrl-C, SIGTERM or POST /packrat/stop; always closes every pool."""
    from packrat_lab.fleet.announce import announce_fleet
    from packrat_lab.fleet.fleet import Fleet
    from packrat_lab.serving.http.fleet import serve_fleet

    config = _config(args)
    options = {"max_queue_delay_ms": args.max_queue_delay_ms, **config.options}
    if args.auto:
        options["auto"] = True

    server = None
    with until_stopped() as closers:
        fleet = Fleet(config.models, profiles=config.load_profiles(), announce=False, **options)
        closers.callback(fleet.close)
        server = serve_fleet(fleet, host=args.host, port=args.port, token=token, limits=limits)
        closers.callback(server.stop)
        fleet.attach_announcement(announce_fleet(fleet, server=server))
        for name, plan in fleet.plans.items():
            print(f"serving {name}: {plan.text} on cores {list(fleet.shares[name])}", flush=True)
        for name, (spec, _) in fleet.groups.items():
            print(f"group   {name}: {spec.policy} over {', '.join(spec.members)}", flush=True)
        serve_in_foreground(server, server.token if token is None else "as given")
    if server is not None:
        print(f"stopped: {server.service.summary()}", flush=True)
    return 0
