"""`packrat-lab validate PROFILE --cores T --batch B`: run the plan and its baselines for real."""

from __future__ import annotations

import argparse
from typing import Any

from packrat_lab.cli.args import positive_int


def register(sub: Any) -> None:
    """Add the `validate` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "validate",
        help="measure the Packrat plan, fat and thin side by side on this host",
        description="Run each plan through a serving pool (instances pinned, running together) on one batch of B; "
        "report measured latency, speedups and the gap to the isolated-profile prediction.",
    )
    parser.add_argument("profile", help="profile file from `packrat-lab profile`")
    parser.add_argument("--cores", "-T", type=positive_int, required=True, help="total cores T")
    parser.add_argument("--batch", "-B", type=positive_int, required=True, help="total batch B")
    parser.add_argument("--model", help="model to run (default: the one the profile recorded)")
    parser.add_argument("--repeats", type=positive_int, default=10, help="timed batches per plan")
    parser.add_argument("--rounds", type=positive_int, default=1, help="alternate the plans this many times")
    parser.add_argument("--all-cores", action="store_true", help="threads must sum to exactly T")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Plan, then measure all plans in one run and print the table."""
    from packrat_lab.comparison import compare_plans
    from packrat_lab.host import require_cores
    from packrat_lab.profiling.table import load_profile
    from packrat_lab.validation import validate
    from packrat_lab.workloads.registry import get_workload, workload_of_profile

    require_cores(args.cores)
    profile = load_profile(args.profile)
    workload = get_workload(args.model) if args.model else workload_of_profile(profile)
    plans = compare_plans(profile, args.cores, args.batch, all_cores=args.all_cores)
    report = validate(workload, plans, repeats=args.repeats, rounds=args.rounds, progress=print)
    print(report.to_markdown())
    return 0
