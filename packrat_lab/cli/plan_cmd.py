"""`packrat-lab plan PROFILE --cores T --batch B`: the Packrat plan against the baselines."""

from __future__ import annotations

import argparse
import json
from typing import Any

from packrat_lab.cli.args import positive_int


def register(sub: Any) -> None:
    """Add the `plan` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "plan",
        help="pick ⟨instances, threads, batch⟩ for T cores and batch B from a profile",
        description="Solve Packrat's DP on a saved profile (or a threads,batch,latency_ms CSV) and compare with fat, thin and best homogeneous plans.",
    )
    parser.add_argument("profile", help="profile file (.packrat.json from `packrat-lab profile`, or a CSV)")
    parser.add_argument("--cores", "-T", type=positive_int, required=True, help="total cores T")
    parser.add_argument("--batch", "-B", type=positive_int, required=True, help="total batch B")
    parser.add_argument(
        "--all-cores", action="store_true", help="threads must sum to exactly T (the paper's code)"
    )
    parser.add_argument("--statistic", default="median", choices=["median", "mean", "p90", "p99"])
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.add_argument(
        "--measure",
        type=positive_int,
        metavar="K",
        help="run the K best plans by expected latency plus fat for real (instances together) and keep the "
        "measured fastest; results are cached in the profile file",
    )
    parser.set_defaults(func=run)


def format_table(rows: list[dict[str, Any]], cores: int, batch: int, warning: str | None = None) -> str:
    """A plain-text table for the terminal; every number is expected (from the profile), and says so."""
    width = max(12, *(len(r["config"]) for r in rows))
    lines = [
        f"T={cores} cores, B={batch} (expected from isolated profile points, not measured)",
        f"{'plan':<12} {'⟨i,t,b⟩':<{width}} {'expected ms':>12} {'expected/s':>10} {'expected vs fat':>16}",
    ]
    for r in rows:
        speed = r["speedup_vs_fat"]
        lines.append(
            f"{r['plan']:<12} {r['config']:<{width}} {r['expected_latency_ms']:>12.2f} "
            f"{r['expected_throughput']:>10.1f} {'' if speed is None else f'{speed:.2f}×':>16}"
        )
    if warning:
        lines.append(f"warning: {rows[0]['plan']} plan is {warning}")
    return "\n".join(lines)


def check_cores(profile: Any, cores: int) -> None:
    """Plans may not use more cores than the profile measured threads for (they would be guesses)."""
    if cores > profile.max_threads:
        msg = (
            f"--cores {cores} is more than the {profile.max_threads} cores this profile measured; "
            f"plan within them (example: --cores {profile.max_threads}) or profile on a bigger host"
        )
        raise ValueError(msg)


def measured_lines(plan: Any) -> list[str]:
    """Expected vs measured batch latency of every plan measured for the choice."""
    lines = ["measured with instances together (median batch latency):"]
    for row in plan.meta.get("candidates", []):
        mark = "*" if row["plan"] == plan.text else " "
        expected = "—" if row["expected_ms"] is None else f"{row['expected_ms']:.2f}"
        lines.append(
            f"{mark} {row['plan']:<24} expected {expected:>10} ms   measured {row['measured_ms']:>10.2f} ms"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    """Load, solve (and measure with --measure), print."""
    from packrat_lab.comparison import compare_plans, comparison_rows
    from packrat_lab.optimizer import optimize
    from packrat_lab.plan_confidence import plan_confidence
    from packrat_lab.profiling.table import load_profile

    profile = load_profile(args.profile)
    check_cores(profile, args.cores)
    if args.measure and not profile.meta.get("workload"):
        msg = f"--measure needs a profile that records its model (saved by `packrat-lab profile`), not {args.profile!r}; example: packrat-lab profile mlp -o mlp.packrat.json"
        raise ValueError(msg)
    plans = compare_plans(profile, args.cores, args.batch, all_cores=args.all_cores, statistic=args.statistic)
    if args.measure:
        plans[0] = optimize(
            profile,
            args.cores,
            args.batch,
            all_cores=args.all_cores,
            statistic=args.statistic,
            measure_top=args.measure,
        )
        profile.save(args.profile)  # the co-run measurements are cached for later plans
    fat = next((p for p in plans if p.name == "fat"), None)
    confidence = plan_confidence(profile, plans[0], fat)
    if args.format == "json":
        out = plans[0].to_dict()
        out["baselines"] = {p.name: p.to_dict() for p in plans[1:]}
        out["confidence"] = {
            "warning": confidence.warning(),
            "noisy_points": list(confidence.noisy_points),
            "within_ci_of_fat": confidence.within_ci,
        }
        if args.measure:
            out["measured"] = plans[0].meta.get("candidates", [])
        print(json.dumps(out, indent=1, ensure_ascii=False))
    else:
        print(format_table(comparison_rows(plans), args.cores, args.batch, confidence.warning()))
        if args.measure:
            print("\n".join(measured_lines(plans[0])))
    return 0
