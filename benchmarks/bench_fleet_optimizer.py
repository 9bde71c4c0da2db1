"""optimize_fleet vs exhaustive search: 4 models × 16 cores, synthetic Amdahl-shaped profiles.

Run: PYTHONPATH=. python benchmarks/bench_fleet_optimizer.py [--out benchmarks/results/fleet-optimizer.md]
Both use the same queue model; the exhaustive search simulates every batch bound on every core
count and tries every core split, the optimizer prunes bounds that cannot win and allocates by
a DP over models. Side by side: wall time of the whole search and of the core allocation alone,
and whether the scale factors agree.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from itertools import product
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostinfo import host_description
from markdown_report import emit

from packrat_lab.optimizer.fleet import allocate, exhaustive_fleet, model_curve, optimize_fleet
from packrat_lab.profiling.table import Profile, profile_from_latencies

BATCHES = (1, 2, 4, 8, 16, 32)
MODELS = {  # name: (ms per sample at 1 thread, parallel fraction, load req/s, slo ms)
    "light": (0.5, 0.4, 1500.0, 30.0),
    "medium": (6.0, 0.8, 150.0, 100.0),
    "heavy": (25.0, 0.95, 60.0, 150.0),
    "other": (3.0, 0.7, 300.0, 80.0),
}


def synthetic(name: str, base: float, parallel: float, seed: int, cores: int) -> Profile:
    rng = random.Random(seed)
    return profile_from_latencies(
        name,
        {
            (t, b): base * b**0.85 * ((1 - parallel) + parallel / t) * (1 + 0.05 * rng.random()) + 0.3
            for t in range(1, cores + 1)
            for b in BATCHES
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    host = host_description()
    profiles = {n: synthetic(n, b, p, k, args.cores) for k, (n, (b, p, _, _)) in enumerate(MODELS.items())}
    loads = {n: v[2] for n, v in MODELS.items()}
    slo = {n: v[3] for n, v in MODELS.items()}

    start = time.perf_counter()
    plans = optimize_fleet(profiles, args.cores, loads, slo)
    t_opt = time.perf_counter() - start
    start = time.perf_counter()
    best, split = exhaustive_fleet(profiles, args.cores, loads, slo)
    t_ex = time.perf_counter() - start

    curves = [model_curve(n, profiles[n], args.cores, slo[n]) for n in MODELS]
    start = time.perf_counter()
    scale, alloc = allocate(curves, [loads[n] for n in MODELS], args.cores)
    t_alloc = time.perf_counter() - start
    start = time.perf_counter()
    brute = max(
        min(c.capacity[k] / loads[c.name] for c, k in zip(curves, s, strict=True))
        for s in product(range(1, args.cores + 1), repeat=len(curves))
        if sum(s) <= args.cores
    )
    t_brute = time.perf_counter() - start
    equal_split = min(c.capacity[args.cores // len(curves)] / loads[c.name] for c in curves)

    opt_scale = next(iter(plans.values())).meta["scale"]
    lines = [
        f"# optimize_fleet vs exhaustive search ({len(MODELS)} models × {args.cores} cores)",
        "",
        host,
        "",
        f"Command: `PYTHONPATH=. python benchmarks/bench_fleet_optimizer.py --cores {args.cores}`",
        "",
        "Synthetic profiles (latency = base·b^0.85·((1−p)+p/t)·(1+5 % noise)+0.3 ms, batches "
        f"{list(BATCHES)}, threads 1..{args.cores}); loads and objectives per model: "
        + ", ".join(f"{n} {v[2]:g} req/s within {v[3]:g} ms" for n, v in MODELS.items())
        + ". Queue model: 1500 Poisson arrivals, batcher delay 5 ms, 95th percentile.",
        "",
        "| search | wall time | scale factor | cores per model |",
        "|---|---:|---:|---|",
        f"| optimize_fleet (pruned curves + DP over models) | {t_opt:.2f} s | {opt_scale:.4f} | "
        + ", ".join(f"{n} {p.meta['fleet_cores']} ({p.text})" for n, p in plans.items())
        + " |",
        f"| exhaustive (every bound simulated, every split) | {t_ex:.2f} s | {best:.4f} | "
        + ", ".join(f"{n} {c}" for n, c in split.items())
        + " |",
        f"| core allocation alone: DP over models | {t_alloc * 1000:.2f} ms | {scale:.4f} | {alloc} |",
        f"| core allocation alone: every split | {t_brute * 1000:.2f} ms | {brute:.4f} | |",
        f"| equal split ({args.cores // len(curves)} cores each), same curves | — | {equal_split:.4f} | |",
        "",
        (
            f"Speed-up of the whole search: {t_ex / t_opt:.1f}×; of the allocation: {t_brute / max(t_alloc, 1e-9):.0f}×. "
            f"Scale factors agree: {abs(opt_scale - best) <= 1e-9 * best}."
        ),
        "",
    ]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
