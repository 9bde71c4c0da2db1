"""Is batch execution predictable on this host (Clockwork's premise)? Tail over median of an isolated worker.

Usage: python benchmarks/bench_predictability.py [--models mlp,tiny-cnn,resnet50] [--runs 1000]
       [--out benchmarks/results/predictability.md]

For each (model, threads t, batch b) a spawned process pinned to cores 0..t-1 with t intra-op
threads builds the model, warms it, then times `--runs` batch executions (resnet50: a tenth of
them); nothing else of the pool runs. The same point is measured quiet, then with a noisy
neighbour: a process that streams a 64 MiB array (memory bandwidth, shared cache) pinned to the
core after the worker's (the worker's own core when t takes every core). Reported: p50, p99/p50
and p99.9/p50 (nearest rank; with n samples p99.9 is the max when n < 1000), and how the median
moves with the neighbour. What admission can promise is bounded by these tails.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostinfo import host_description

POINTS = {
    "mlp": [(1, 1), (1, 8), (2, 8)],
    "tiny-cnn": [(1, 1), (1, 8), (2, 8)],
    "resnet50": [(1, 1), (2, 1), (2, 2)],
}


def _time_batches(
    model: str, threads: int, batch: int, cores: list[int], runs: int, out: mp.Queue[list[float]]
) -> None:
    os.sched_setaffinity(0, cores)
    import torch

    from packrat_lab.workloads.registry import get_workload

    torch.set_num_threads(threads)
    workload = get_workload(model)
    net = workload.build()
    x = workload.example_input(batch, seed=1)
    samples = []
    with torch.inference_mode():
        for _ in range(max(5, runs // 20)):
            net(x)
        for _ in range(runs):
            start = time.perf_counter()
            net(x)
            samples.append((time.perf_counter() - start) * 1000.0)
    out.put(samples)


def _neighbour(core: int) -> None:
    os.sched_setaffinity(0, [core])
    import numpy as np

    a = np.ones(8 * 1024 * 1024)  # 64 MiB of float64
    b = np.empty_like(a)
    while True:
        np.copyto(b, a)
        a += 1.0


def measure(model: str, threads: int, batch: int, runs: int, noisy: bool) -> list[float]:
    ctx = mp.get_context("spawn")
    usable = sorted(os.sched_getaffinity(0))
    cores = usable[:threads]
    neighbour = None
    if noisy:
        spare = [c for c in usable if c not in cores]
        neighbour = ctx.Process(target=_neighbour, args=((spare or cores)[0],), daemon=True)
        neighbour.start()
    try:
        queue: mp.Queue[list[float]] = ctx.Queue()
        proc = ctx.Process(target=_time_batches, args=(model, threads, batch, cores, runs, queue))
        proc.start()
        samples: list[float] = queue.get(timeout=1800)
        proc.join(30)
    finally:
        if neighbour is not None:
            neighbour.terminate()
            neighbour.join(10)
    return samples


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100.0 * len(ordered)) - 1))
    return ordered[rank]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,tiny-cnn,resnet50")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--out", default="benchmarks/results/predictability.md")
    args = parser.parse_args()
    host = host_description()
    load_start = os.getloadavg()
    cores = len(os.sched_getaffinity(0))
    rows = []
    for model in args.models.split(","):
        runs = args.runs // 10 if model == "resnet50" else args.runs
        for threads, batch in POINTS[model]:
            if threads > cores:
                continue
            quiet = measure(model, threads, batch, runs, noisy=False)
            noisy = measure(model, threads, batch, runs, noisy=True)
            q50, n50 = quantile(quiet, 50), quantile(noisy, 50)
            row = (
                f"| {model} | {threads} | {batch} | {len(quiet)} | {q50:.2f} | {quantile(quiet, 99) / q50:.2f} | "
                f"{quantile(quiet, 99.9) / q50:.2f} | {n50:.2f} | {quantile(noisy, 99) / n50:.2f} | "
                f"{quantile(noisy, 99.9) / n50:.2f} | {n50 / q50:.2f} |"
            )
            print(row, flush=True)
            rows.append(row)
    load_end = os.getloadavg()
    lines = [
        "# Predictability of batch execution (bench_predictability.py)",
        "",
        host,
        (
            f"Load average (1/5/15 min) at start {load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}, "
            f"at end {load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f} (a shared host: other jobs ran meanwhile)."
        ),
        "",
        f"Command: `python benchmarks/bench_predictability.py --models {args.models} --runs {args.runs}`",
        "",
        (
            "One pinned process per point times batch executions of the model alone (resnet50: a tenth of the runs). "
            "Noisy: a neighbour process streams a 64 MiB array on the next core (on the worker's own core when the "
            "worker takes every core)."
        ),
        "",
        (
            "| model | t | b | n | quiet p50 (ms) | quiet p99/p50 | quiet p99.9/p50 | noisy p50 (ms) | noisy p99/p50 "
            "| noisy p99.9/p50 | noisy/quiet p50 |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
