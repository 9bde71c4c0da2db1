"""`packrat-lab report PROFILE -o report.html`: a standalone HTML report of a saved profile."""

from __future__ import annotations

import argparse
from typing import Any

from packrat_lab.cli.args import positive_int

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the `report` subcommand."""
    p = subparsers.add_parser(
        "report",
        help="write a standalone HTML report of a profile (surface, plan vs baselines, plan map, noisy points)",
        description="Render a saved profile (JSON from `packrat-lab profile -o`, or a threads,batch,latency_ms CSV) "
        "as one HTML file that opens offline.",
    )
    p.add_argument("profile", help="profile file, e.g. mlp.packrat.json or packrat-paper-bert.csv")
    p.add_argument(
        "--cores",
        "-T",
        type=positive_int,
        default=None,
        help="total cores T for the plans (default: largest thread count profiled)",
    )
    p.add_argument(
        "--batch",
        "-B",
        type=positive_int,
        default=None,
        help="total batch B for plan vs baselines (default: largest batch profiled)",
    )
    p.add_argument(
        "-o",
        "--output",
        default="report.html",
        metavar="FILE",
        help="where to write the HTML (default report.html)",
    )
    p.add_argument("--title", default=None, help="page title (default: 'packrat_lab report: MODEL')")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the profile, write the report, say where."""
    from packrat_lab.profiling.table import load_profile
    from packrat_lab.report import write_report

    profile = load_profile(args.profile)
    path = write_report(profile, args.output, cores=args.cores, batch=args.batch, title=args.title)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB; open it in a browser, works offline)")
    return 0
