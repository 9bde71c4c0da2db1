"""Profiling wall time: one process per (threads, setting) with batches taking turns vs one process per point.

Usage: python benchmarks/bench_profile_grouped.py [--models resnet50,bert] [--batches 1,2,4,8,16]
       [--cores 2] [--point-time 6] [--warmup 3] [--plan-batches 16] [--out FILE]

For each model both profilers run in one session, one after the other (order alternated per model),
and the plans the DP picks from each profile for B = 1..plan-batches are printed side by side.
Where the plans differ, the table shows how much slower the grouped pick is by the per-point profile.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from markdown_report import emit, head, load_line, profile_parser, this_command

import packrat_lab
from packrat_lab.optimizer import solve_table
from packrat_lab.plan import Plan
from packrat_lab.profiling.table import Profile


def plan_latency(profile: Profile, plan: Plan) -> float:
    """The plan's expected latency (slowest instance, best setting per point) under `profile`."""
    return max(profile.best(i.threads, i.batch).median for i in plan.instances)


def bench_model(model: str, args: argparse.Namespace, flip: bool) -> tuple[list[str], float]:
    """Profile `model` both ways; Markdown lines and the wall-time ratio."""
    batches = [int(b) for b in args.batches.split(",")]
    walls: dict[bool, float] = {}
    profiles: dict[bool, Profile] = {}
    for grouped in (True, False) if flip else (False, True):
        start = time.perf_counter()
        profiles[grouped] = packrat_lab.profile(
            model,
            cores=args.cores,
            batches=batches,
            point_time_s=args.point_time,
            warmup=args.warmup,
            group_batches=grouped,
        )
        walls[grouped] = time.perf_counter() - start
        if args.save_dir:
            args.save_dir.mkdir(parents=True, exist_ok=True)
            profiles[grouped].save(
                args.save_dir / f"{model}-{'grouped' if grouped else 'per-point'}.packrat.json"
            )
        print(f"{model} grouped={grouped}: {walls[grouped]:.1f} s, load {os.getloadavg()[0]:.2f}", flush=True)
    ratio = walls[False] / walls[True]
    lines = [
        f"## {model}",
        "",
        "| profiler | points | processes | wall s | noisy points |",
        "|---|---|---|---|---|",
    ]
    for grouped, label in (
        (False, "one process per point (before)"),
        (True, "grouped by (threads, setting) (after)"),
    ):
        p = profiles[grouped]
        procs = len({m.meta.get("pid") for m in p.measurements})
        lines.append(
            f"| {label} | {len(p.measurements)} | {procs} | {walls[grouped]:.1f} | {len(p.noisy_points)} |"
        )
    lines += ["", f"Speed-up of grouped profiling: **{ratio:.2f}×**", ""]
    lines += [
        (
            "| B | plan (per point) | plan (grouped) | same ⟨i,t,b⟩ | same with setting "
            "| grouped pick / per-point pick, by per-point profile |"
        ),
        "|---|---|---|---|---|---|",
    ]
    tables = {g: solve_table(profiles[g], args.cores, args.plan_batches) for g in (False, True)}
    same = same_shape = 0
    feasible = [b for b in range(1, args.plan_batches + 1) if tables[False].feasible(args.cores, b)]
    for b in feasible:
        a, g = tables[False].plan(args.cores, b), tables[True].plan(args.cores, b)
        equal, shape = a.text == g.text, str(a) == str(g)
        same += equal
        same_shape += shape
        cost = plan_latency(profiles[False], g) / plan_latency(profiles[False], a)
        yes = {True: "yes", False: "no"}
        lines.append(f"| {b} | {a.text} | {g.text} | {yes[shape]} | {yes[equal]} | {cost:.3f} |")
    lines += [
        "",
        f"Same plan at {same} of {len(feasible)} feasible batch sizes B <= {args.plan_batches}.",
        "",
    ]
    return lines, ratio


def main() -> None:
    """Run both profilers per model and print (and optionally save) the Markdown report."""
    parser = profile_parser(__doc__, models="resnet50,bert", batches="1,2,4,8,16", cores=2, point_time=6.0)
    parser.add_argument("--plan-batches", type=int, default=16)
    parser.add_argument("--save-dir", type=Path, help="save both profiles of each model here")
    args = parser.parse_args()
    lines = head(
        "# Grouped profiling: one process per (threads, setting) vs one process per point",
        this_command("benchmarks/bench_profile_grouped.py"),
    )
    for k, model in enumerate(args.models.split(",")):
        more, _ = bench_model(model, args, flip=bool(k % 2))
        lines += more
    lines.append(load_line())
    emit(lines, args.out)


if __name__ == "__main__":
    main()
