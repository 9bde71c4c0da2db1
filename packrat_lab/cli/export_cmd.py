"""`packrat-lab export PLAN --to torchserve|triton`: the nearest config those servers accept, and its gaps."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from packrat_lab.cli.args import positive_float

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the `export` subcommand."""
    p = subparsers.add_parser(
        "export",
        help="write a plan as TorchServe config.properties or Triton config.pbtxt",
        description="Write the nearest TorchServe or Triton configuration for PLAN (identical workers: "
        "count, threads, batch) and print what the target cannot express.",
    )
    p.add_argument(
        "plan", help="plan text (e.g. 2x1x4 or 1x2x8+2x1x4) or a JSON file from `plan --format json`"
    )
    p.add_argument("--to", required=True, choices=["torchserve", "triton"], help="target server")
    p.add_argument("-o", "--output", default=".", metavar="DIR", help="folder to write into (default: .)")
    p.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        help="zoo name or model file/directory (fills Triton's input/output), or just the name to use",
    )
    p.add_argument(
        "--profile", default=None, metavar="FILE", help="profile: pick the measured best homogeneous plan"
    )
    p.add_argument(
        "--max-queue-delay-ms",
        type=positive_float("5"),
        default=5.0,
        help="dynamic batching delay (default 5)",
    )
    p.set_defaults(func=run)


def _plan(text: str) -> Any:
    from packrat_lab.plan import Plan

    path = Path(text)
    if path.suffix == ".json" or path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            msg = f"cannot read plan file {text!r} ({exc}); example: packrat-lab plan P.packrat.json -T 2 -B 8 --format json > plan.json"
            raise ValueError(msg) from None
        return Plan.from_dict(data)
    return Plan.parse(text)


def run(args: argparse.Namespace) -> int:
    """Resolve plan, model and profile; write the files; print them and the notes."""
    from packrat_lab.export import export_plan
    from packrat_lab.workloads.registry import get_workload, workload_of_profile

    plan = _plan(args.plan)
    profile = None
    if args.profile is not None:
        from packrat_lab.profiling.table import load_profile

        profile = load_profile(args.profile, check_host=False)
    workload = None
    name = args.model
    if args.model is not None:
        try:
            workload = get_workload(args.model)
            name = workload.name
        except ValueError as exc:
            print(
                f"note: {args.model!r} is used as a name only ({str(exc).splitlines()[0]})", file=sys.stderr
            )
    elif profile is not None:
        workload = workload_of_profile(profile)
        name = workload.name
    result = export_plan(
        plan,
        args.to,
        model=name or "model",
        workload=workload,
        profile=profile,
        max_queue_delay_ms=args.max_queue_delay_ms,
    )
    for path in result.write(args.output):
        print(f"wrote {path}")
    for note in result.notes:
        print(f"note: {note}")
    return 0
