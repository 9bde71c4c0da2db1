"""Profile real models on this host, then measure the Packrat plan, fat and thin side by side.

Usage: python benchmarks/bench_profile.py [--models resnet50,bert] [--batches 1,2,4,8,16]
       [--point-time 6] [--repeats 5] [--out benchmarks/results/profile-validate.md]

For each model: the profile's wall time, the runtime-setting effect (default OpenMP vs
OMP_WAIT_POLICY=PASSIVE per point), and for each B the expected (isolated profile) and actual
(instances running together, through the serving pool) latency of each plan in one run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostinfo import host_description
from markdown_report import emit, load_line, profile_parser

import packrat_lab
from packrat_lab.comparison import compare_plans
from packrat_lab.host import detect_host
from packrat_lab.plan import Instance, Plan
from packrat_lab.profiling.table import Profile
from packrat_lab.settings import DEFAULT
from packrat_lab.validation import validate


def settings_table(profile: Profile) -> list[str]:
    """Default vs PASSIVE median per point, and which one the optimizer keeps."""
    lines = ["| threads | batch | default ms | passive ms | default / passive |", "|---|---|---|---|---|"]
    for t in profile.threads:
        for b in profile.batches:
            by_setting = {m.setting: m for m in profile.points(t, b)}
            if "default" in by_setting and "passive" in by_setting:
                d, p = by_setting["default"].median, by_setting["passive"].median
                lines.append(f"| {t} | {b} | {d:.2f} | {p:.2f} | {d / p:.2f}× |")
    return lines


def fat_default(profile: Profile, cores: int, batch: int) -> Plan | None:
    """⟨1,T,B⟩ with OpenMP's default wait policy: what an untuned deployment runs."""
    found = [m for m in profile.points(cores, batch) if m.setting == DEFAULT.name]
    if not found:
        return None
    return Plan(
        (Instance(cores, batch, DEFAULT, expected_latency_ms=found[0].median),),
        found[0].median,
        "fat-default-omp",
    )


def bench_model(
    model: str, batches: list[int], cores: int, point_time: float, repeats: int, warmup: int
) -> list[str]:
    """Profile one model and validate its plans for each B; returns Markdown lines."""
    out = [f"## {model}", ""]
    start = time.perf_counter()
    profile = packrat_lab.profile(model, cores=cores, batches=batches, point_time_s=point_time, warmup=warmup)
    wall = time.perf_counter() - start
    noisy = len(profile.noisy_points)
    out += [
        (
            f"Profile: {len(profile.measurements)} points (threads 1..{cores} × batches {batches} × settings "
            f"{sorted(profile.settings)}), wall time {wall:.1f} s, {noisy} point(s) flagged noisy."
        ),
        "",
        "Runtime setting effect (median latency of one isolated instance):",
        "",
        *settings_table(profile),
        "",
    ]
    speedups = []
    for batch in batches:
        plans = compare_plans(profile, cores, batch)
        chosen = [p for p in plans if p.name in ("packrat", "fat", "thin")]
        extra = fat_default(profile, cores, batch)
        if extra is not None and extra.instances[0].setting != plans[1].instances[0].setting:
            chosen.append(extra)
        report = validate(model, chosen, repeats=repeats, rounds=2)
        out += [report.to_markdown(), ""]
        speedups.append(report.speedup("packrat") or float("nan"))
        print(report.to_markdown(), flush=True)
    mean = sum(speedups) / len(speedups)
    out += [f"Mean measured speedup of the Packrat plan over fat (B in {batches}): {mean:.2f}×", ""]
    return out


def main() -> None:
    """Run the benchmark and print (and optionally save) the Markdown report."""
    parser = profile_parser(
        __doc__,
        models="resnet50,bert",
        batches="1,2,4,8,16",
        cores=detect_host().usable_cores,
        point_time=6.0,
    )
    parser.add_argument("--repeats", type=int, default=4, help="timed batches per plan and round (2 rounds)")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    lines = [
        "# Profile and validate: Packrat plan vs fat and thin, measured in one run",
        "",
        host_description(),
        "",
        (
            f"Command: `python benchmarks/bench_profile.py --models {args.models} --batches {args.batches} "
            f"--cores {args.cores} --point-time {args.point_time} --repeats {args.repeats}`"
        ),
        "",
        (
            "Expected = slowest instance's isolated median latency from the profile; actual = median batch latency "
            "with all instances running together in a serving pool (shared-memory transport included), plans "
            "alternated over 2 rounds; identical configurations are measured once and share their samples."
        ),
        "",
    ]
    for model in args.models.split(","):
        lines += bench_model(model, batches, args.cores, args.point_time, args.repeats, args.warmup)
    lines.append(load_line())
    emit(lines, args.out)


if __name__ == "__main__":
    main()
