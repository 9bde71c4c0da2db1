"""The pool with Packrat's DP plan against the pool with the fat plan, at the same offered load, over HTTP.

Usage: python benchmarks/bench_pool_vs_fat.py [--model mlp] [--batch 4] [--profile FILE]
       [--rates 100,200] [--duration 10] [--out benchmarks/results/pool-vs-fat.md]

Each plan is served by a real Pool behind the real v2 server; the load generator sends single
samples (Poisson arrivals, open loop) so the pool's dynamic batcher forms batches of up to B.
Without --profile the model is profiled first (threads 1..cores, batches up to B).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostinfo import host_description

from packrat_lab.host import detect_host
from packrat_lab.loadgen import LoadReport, run_load
from packrat_lab.plan import Plan
from packrat_lab.profiling.table import Profile, load_profile


def get_profile(args: argparse.Namespace, cores: int) -> Profile:
    """The given profile, or a fresh short one of threads 1..cores and powers of two up to B."""
    if args.profile:
        return load_profile(args.profile)
    import packrat_lab

    batches = [b for b in (1, 2, 4, 8, 16, 32, 64) if b <= args.batch] + (
        [args.batch] if args.batch & (args.batch - 1) else []
    )
    return packrat_lab.profile(
        args.model, cores=cores, batches=sorted(set(batches)), point_time_s=args.point_time
    )


def serve_and_load(model: str, plan: Plan, rates: list[float], duration: float, via: str) -> list[LoadReport]:
    """Start a pool with `plan`, offer each rate in turn over HTTP or straight to pool.submit."""
    from packrat_lab.serving.http import serve_pool
    from packrat_lab.serving.pool import Pool

    with Pool(model, plan) as pool:
        if via == "pool":
            run_load(pool, rate=min(rates), duration_s=1.0, seed=99)  # warm
            return [run_load(pool, rate=r, duration_s=duration, seed=k) for k, r in enumerate(rates)]
        with serve_pool(pool) as server:
            run_load(server.url, rate=min(rates), duration_s=1.0, seed=99)  # warm the HTTP path
            return [run_load(server.url, rate=r, duration_s=duration, seed=k) for k, r in enumerate(rates)]


def fmt(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--batch", type=int, default=4, help="B: the batch both plans serve")
    parser.add_argument("--profile", default=None, help="profile file (default: profile now)")
    parser.add_argument(
        "--point-time", type=float, default=3.0, help="seconds per profile point when profiling"
    )
    parser.add_argument(
        "--rates",
        default=None,
        help="offered loads in req/s, e.g. 100,200 (default: 50%% and 90%% of the fat plan's expected capacity)",
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument(
        "--via",
        choices=("http", "pool"),
        default="http",
        help="requests over the v2 server or to pool.submit",
    )
    parser.add_argument("--save-profile", default=None, metavar="FILE", help="save the profile made here")
    parser.add_argument("--out", default="benchmarks/results/pool-vs-fat.md")
    args = parser.parse_args()

    from packrat_lab.optimizer import fat_plan, optimize

    cores = detect_host().usable_cores
    profile = get_profile(args, cores)
    if args.save_profile:
        profile.save(args.save_profile)
    plans = {"packrat": optimize(profile, cores, args.batch), "fat": fat_plan(profile, cores, args.batch)}
    fat_capacity = plans["fat"].expected_throughput or 100.0
    rates = (
        [float(r) for r in args.rates.split(",")]
        if args.rates
        else [round(0.5 * fat_capacity), round(0.9 * fat_capacity)]
    )

    rows: list[dict[str, Any]] = []
    for label, plan in plans.items():
        for report in serve_and_load(args.model, plan, rates, args.duration, args.via):
            rows.append({"label": label, "plan": plan, "report": report})
            print(
                f"{label:8s} {plan.text:12s} rate {report.rate:7.1f}  p50 {fmt(report.p50_ms)} ms  p99 {fmt(report.p99_ms)} ms  "
                f"{report.throughput_rps:.1f} req/s  errors {report.errors}",
                flush=True,
            )

    lines = [
        f"# Pool with the Packrat plan vs the fat plan ({args.via}): {args.model}, B = {args.batch}",
        "",
        host_description(),
        "",
        f"Command: `python benchmarks/bench_pool_vs_fat.py --model {args.model} --batch {args.batch} "
        f"--duration {args.duration:g} --via {args.via}{' --rates ' + args.rates if args.rates else ''}`. "
        "Single-sample requests (Poisson arrivals, open loop, latency from the scheduled send time) "
        + ("through the v2 HTTP server " if args.via == "http" else "straight to pool.submit ")
        + "into the pool's dynamic batcher (max batch B, 5 ms max queue delay); client, server and "
        "workers share the host's cores.",
        "",
        "| plan | ⟨i,t,b⟩ | expected batch latency ms | offered req/s | completed | errors | p50 ms | p99 ms | throughput req/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        plan, report = row["plan"], row["report"]
        lines.append(
            f"| {row['label']} | {plan} | {fmt(plan.expected_latency_ms)} | {report.rate:g} | {report.completed} | "
            f"{report.errors} | {fmt(report.p50_ms)} | {fmt(report.p99_ms)} | {report.throughput_rps:.1f} |"
        )
    lines += [
        "",
        (
            "Expected latency is the plan's slowest instance in the isolated profile; instances running "
            "together slow each other, so measured batch latency is higher."
        ),
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
