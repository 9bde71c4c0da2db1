"""Transport overhead: one batch through a one-instance pool (1x1xb) against the same model in-process.

Usage: python benchmarks/bench_transport.py [--models mlp,tiny-cnn] [--batches 1,8,32] [--iters 60] [--rounds 4]

In-process means this process, pinned to the worker's core with one intra-op thread, calling the
model directly. Pool means `pool.infer(x)` with the worker on that core: shared-memory input
write, pipe message, model run, output copy back, thread hand-off. Blocks of both alternate (the
idle worker only polls its pipe), and medians come from all blocks. Goal from the issue:
pool ≤ in-process + max(0.5 ms, 3 %).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from hostinfo import host_description

from packrat_lab import Pool
from packrat_lab.workloads.registry import get_workload


def timed(fn: object, x: torch.Tensor, iters: int) -> list[float]:
    """Latencies in ms of `iters` calls."""
    out = []
    for _ in range(iters):
        start = time.perf_counter()
        fn(x)  # type: ignore[operator]
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def worker_totals(pool: Pool) -> tuple[int, float]:
    """(pieces served, model ms summed) of the pool's one worker, as it reports them."""
    worker = pool.stats()["workers"][0]
    served = int(worker["served"])
    return served, float(worker["mean_run_ms"] or 0.0) * served


def measure(model_name: str, batch: int, iters: int, rounds: int) -> dict[str, float]:
    """Medians for one (model, b): in-process, pool, their paired difference, and transport alone.

    Calls alternate one by one (in-process, then pool) so a noisy neighbour hits both alike; the
    worker reports its own model time, so pool minus that is the transport and dispatch cost.
    """
    workload = get_workload(model_name)
    x = workload.example_input(batch, seed=1)
    model = workload.build()
    everything = set(os.sched_getaffinity(0))
    local: list[float] = []
    pooled: list[float] = []
    with Pool(workload, f"1x1x{batch}", warmup=5) as pool:
        core = set(pool.plan.instances[0].cores)
        timed(pool.infer, x, 10)
        served, run_ms = worker_totals(pool)  # the worker's own model time, for the transport column
        with torch.inference_mode():
            for _ in range(iters * rounds):
                os.sched_setaffinity(0, core)
                local += timed(model, x, 1)
                os.sched_setaffinity(0, everything)
                pooled += timed(pool.infer, x, 1)
        served_after, run_ms_after = worker_totals(pool)
        worker_ms = (run_ms_after - run_ms) / (served_after - served)
    base, through = statistics.median(local), statistics.median(pooled)
    return {
        "local": base,
        "pool": through,
        "paired": statistics.median(p - q for p, q in zip(pooled, local)),
        "transport": statistics.mean(pooled) - worker_ms,
        "goal": base + max(0.5, 0.03 * base),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,tiny-cnn")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--iters", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("# Transport overhead: pool (1x1xb) vs in-process\n")
    print(host_description() + "\n")
    print(f"Command: `python benchmarks/bench_transport.py {' '.join(sys.argv[1:])}`".rstrip() + "\n")
    print(
        "| model | b | in-process median ms | pool median ms | overhead ms | ratio | "
        "median paired overhead ms | pool mean − worker model mean ms | "
        "goal ms (in-process + max(0.5 ms, 3 %)) | meets goal |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            r = measure(name, batch, args.iters, args.rounds)
            ok = "yes" if r["pool"] <= r["goal"] else "no"
            print(
                f"| {name} | {batch} | {r['local']:.3f} | {r['pool']:.3f} | {r['pool'] - r['local']:+.3f} | "
                f"{r['pool'] / r['local']:.3f} | {r['paired']:+.3f} | {r['transport']:+.3f} | {r['goal']:.3f} | {ok} |",
                flush=True,
            )


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
