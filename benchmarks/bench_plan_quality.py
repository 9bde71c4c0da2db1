"""Plan quality against the measured oracle: DP-only and DP+measure choices vs the best of all feasible plans.

Usage: python benchmarks/bench_plan_quality.py [--models resnet50,bert,convmix] [--batches 1,2,4,8]
       [--cores 2] [--point-time 2] [--top 2] [--repeats 3] [--rounds 2] [--out FILE]

For each model: profile it (grouped), then for each B
1. DP+measure: `optimize(profile, T, B, measure_top=k)` measures its own candidates (fresh pools);
2. the oracle: every feasible plan (every distinct configuration the profiled points can build,
   each runtime setting) is measured with its instances together, plans alternated over rounds;
3. each choice is scored by the oracle run's median of the configuration it chose: chosen / oracle,
   and 'within noise' says whether that median's 95 % CI overlaps the best one's (then the oracle
   run itself cannot tell the two apart, whatever the ratio).
`convmix` is a model that is not in the zoo, defined here.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from markdown_report import emit, head, load_line, profile_parser, this_command

import packrat_lab
from packrat_lab.optimizer import optimize
from packrat_lab.optimizer.candidates import candidate_plans
from packrat_lab.profiling.measurement import median_confidence_interval
from packrat_lab.profiling.table import Profile
from packrat_lab.validation import config_key, measure_plans
from packrat_lab.workloads.registry import get_workload

ALL_PLANS = 10_000  # candidate limit high enough to list every feasible configuration on a few cores


class ConvMix(torch.nn.Module):
    """A model outside the zoo: a small conv stem, depthwise-separable blocks, and an MLP head."""

    def __init__(self, width: int = 96, blocks: int = 6) -> None:
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, width, 4, stride=4), torch.nn.GELU())
        self.blocks = torch.nn.ModuleList(
            torch.nn.Sequential(
                torch.nn.Conv2d(width, width, 7, padding=3, groups=width),
                torch.nn.BatchNorm2d(width),
                torch.nn.Conv2d(width, 4 * width, 1),
                torch.nn.GELU(),
                torch.nn.Conv2d(4 * width, width, 1),
            )
            for _ in range(blocks)
        )
        self.head = torch.nn.Sequential(
            torch.nn.Linear(width, 512), torch.nn.GELU(), torch.nn.Linear(512, 100)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x)
        return self.head(x.mean(dim=(2, 3)))


def workload_for(name: str) -> Any:
    """A zoo model by name, or the benchmark's own ConvMix."""
    if name == "convmix":
        torch.manual_seed(0)
        return get_workload(ConvMix(), example_input=torch.randn(1, 3, 128, 128), name="convmix")
    return get_workload(name)


def median(samples: Any) -> float:
    return float(statistics.median(samples))


def within_noise(samples: dict[str, tuple[float, ...]], chosen: str, best: str) -> str:
    """'yes' when the two medians' 95 % CIs (exact order statistics) overlap: the oracle cannot tell them apart."""
    if chosen == best:
        return "same plan"
    lo_c, _ = median_confidence_interval(samples[chosen])
    _, hi_b = median_confidence_interval(samples[best])
    if not (math.isfinite(lo_c) and math.isfinite(hi_b)):
        return "n too small"
    return "yes" if lo_c <= hi_b else "no"


def bench_model(name: str, args: argparse.Namespace) -> tuple[list[str], list[tuple[float, float]]]:
    """Profile, then score DP-only and DP+measure against the oracle at each B."""
    workload = workload_for(name)
    batches = [int(b) for b in args.batches.split(",")]
    start = time.perf_counter()
    profile = packrat_lab.profile(
        workload, cores=args.cores, batches=batches, point_time_s=args.point_time, warmup=args.warmup
    )
    profile_s = time.perf_counter() - start
    if args.save_dir:
        args.save_dir.mkdir(parents=True, exist_ok=True)
        profile.save(args.save_dir / f"{name}.packrat.json")
    lines = [
        f"## {name}",
        "",
        f"Profile: {len(profile.measurements)} points in {profile_s:.1f} s, {len(profile.noisy_points)} noisy.",
        "",
        (
            "| B | feasible plans | oracle (measured best) | DP-only pick | DP-only / oracle | within noise "
            "| DP+measure pick | DP+measure / oracle | within noise | expected → measured of DP pick |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for b in batches:
        fresh = Profile.from_dict(profile.to_dict())  # no co-run cache shared between B or with the oracle
        dp = optimize(fresh, args.cores, b, use_measured=False)
        measured = optimize(
            fresh,
            args.cores,
            b,
            measure_top=args.top,
            measure=lambda plans: measure_plans(workload, plans, repeats=args.repeats, rounds=args.rounds),
        )
        if args.save_dir:
            profile.corun.update(fresh.corun)
            profile.save(args.save_dir / f"{name}.packrat.json")
        everything = candidate_plans(profile, args.cores, b, dp_plan=dp, limit=ALL_PLANS)
        oracle_samples = measure_plans(workload, everything, repeats=args.repeats, rounds=args.rounds)
        oracle = {key: median(s) for key, s in oracle_samples.items()}
        best_key = min(oracle, key=lambda k: oracle[k])
        best_plan = next(p for p in everything if config_key(p) == best_key)
        dp_ratio = oracle[config_key(dp)] / oracle[best_key]
        measured_ratio = oracle[config_key(measured)] / oracle[best_key]
        ratios.append((dp_ratio, measured_ratio))
        noise_dp = within_noise(oracle_samples, config_key(dp), best_key)
        noise_measured = within_noise(oracle_samples, config_key(measured), best_key)
        lines.append(
            f"| {b} | {len(oracle)} | {best_plan.text} ({oracle[best_key]:.1f} ms) | {dp.text} | {dp_ratio:.3f} "
            f"| {noise_dp} | {measured.text} | {measured_ratio:.3f} | {noise_measured} "
            f"| {dp.expected_latency_ms:.1f} → {oracle[config_key(dp)]:.1f} ms |"
        )
        print(lines[-1], f"load {os.getloadavg()[0]:.2f}", flush=True)
    worst_dp, worst_measured = max(r[0] for r in ratios), max(r[1] for r in ratios)
    lines += [
        "",
        f"Worst chosen/oracle over B: DP-only {worst_dp:.3f}, DP+measure {worst_measured:.3f} (goal ≤ 1.05).",
        "",
    ]
    return lines, ratios


def main() -> None:
    """Run every model and print (and optionally save) the Markdown report."""
    parser = profile_parser(
        __doc__, models="resnet50,bert,convmix", batches="1,2,4,8", cores=2, point_time=2.0
    )
    parser.add_argument("--top", type=int, default=2, help="k: candidates DP+measure runs besides fat")
    parser.add_argument("--repeats", type=int, default=3, help="timed batches per plan and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--save-dir", type=Path, help="save each profile (with its co-run cache) here")
    args = parser.parse_args()
    lines = [
        *head(
            "# Plan quality: chosen plan vs the measured best of all feasible plans",
            this_command("benchmarks/bench_plan_quality.py"),
        ),
        (
            "Oracle = lowest median batch latency among every feasible configuration, each served by a pool with "
            "its instances together, plans alternated over rounds. DP+measure measured its own candidates in "
            "separate pools before; both picks are scored with the oracle run's median of the configuration "
            "they chose, so chosen / oracle >= 1."
        ),
        "",
    ]
    for name in args.models.split(","):
        more, _ = bench_model(name, args)
        lines += more
    lines.append(load_line())
    emit(lines, args.out)


if __name__ == "__main__":
    main()
