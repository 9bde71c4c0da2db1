"""Work-conserving vs lockstep dispatch (issue 12): the same plan, the same load, alternating blocks.

Usage: python benchmarks/bench_dispatch.py [--models tiny-cnn:2x1x2,resnet50:2x1x1] [--rounds 3]
       [--seconds 6] [--out benchmarks/results/dispatch.md]

Per model, two pools serve the same plan on the same cores, one per dispatch mode; both stay up
and the measurement blocks alternate (order flipping each round), so a noisy neighbour hits both.
Rows: p50/p99 at low load (Poisson at a quarter of the calibrated saturation), saturation
throughput (closed loop, 4 clients per instance, one sample each through `pool.submit`), and the
plan's batch latency at full B (`pool.infer` of B rows, a path both modes share: it must not move).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostinfo import host_description

from packrat_lab import Pool
from packrat_lab.loadgen import LoadReport, run_load
from packrat_lab.workloads.registry import get_workload

MODES = ("lockstep", "work-conserving")


def saturation(pool: Pool, seconds: float) -> float:
    """Closed loop: 4 clients per instance, each sending its next sample when answered; answers/s."""
    clients = 4 * len(pool.plan.instances)
    samples = pool.workload.example_input(clients, seed=3)
    stop = time.perf_counter() + seconds
    answered = [0] * clients

    def client(k: int) -> None:
        while time.perf_counter() < stop:
            pool.submit(samples[k]).result(timeout=60)
            answered[k] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(answered) / (time.perf_counter() - start)


def low_load(pool: Pool, rate: float, seconds: float, seed: int) -> LoadReport:
    """Open-loop Poisson arrivals at `rate` (well below saturation), long enough for about 30 requests."""
    duration = max(seconds, 30.0 / rate)
    return run_load(pool, rate=rate, duration_s=duration, poisson=True, concurrency=64, seed=seed)


def median(values: list[float]) -> float:
    """Median of the finite values (a block with no answer reads NaN and is left out)."""
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def batch_latency_ms(pool: Pool, calls: int) -> list[float]:
    """`pool.infer` of the plan's full B rows, one call at a time."""
    x = pool.workload.example_input(pool.plan.total_batch, seed=5)
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        pool.infer(x)
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def bench_model(name: str, plan: str, rounds: int, seconds: float) -> list[str]:
    """Markdown rows for one model; prints progress as it goes."""
    workload = get_workload(name)
    pools = {mode: Pool(workload, plan, dispatch=mode, announce=False, warmup=3) for mode in MODES}  # type: ignore[arg-type]
    try:
        calib = saturation(pools["work-conserving"], seconds)
        rate = max(0.5, 0.25 * calib)
        print(
            f"{name} {plan}: calibration {calib:.1f} req/s -> low load {rate:.2f} req/s",
            flush=True,
        )
        got: dict[str, dict[str, list[float]]] = {
            m: {"p50": [], "p99": [], "sat": [], "batch": []} for m in MODES
        }
        ratios: dict[str, list[float]] = {"p50": [], "p99": [], "sat": [], "batch": []}
        for r in range(rounds):
            order = MODES if r % 2 == 0 else MODES[::-1]
            this: dict[str, dict[str, float]] = {}
            for mode in order:
                pool = pools[mode]
                low = low_load(pool, rate, seconds, seed=100 + r)
                sat = saturation(pool, seconds)
                batch = statistics.median(batch_latency_ms(pool, 30))
                this[mode] = {"p50": low.p50_ms, "p99": low.p99_ms, "sat": sat, "batch": batch}
                for key, value in this[mode].items():
                    got[mode][key].append(value)
                print(
                    f"  round {r + 1} {mode:15s} low-load p50 {low.p50_ms:8.2f} p99 {low.p99_ms:8.2f} ms "
                    f"(errors {low.errors}), saturation {sat:8.2f} req/s, "
                    f"B-batch {batch:8.2f} ms",
                    flush=True,
                )
            old, new = this["lockstep"], this["work-conserving"]
            ratios["p50"].append(old["p50"] / new["p50"])
            ratios["p99"].append(old["p99"] / new["p99"])
            ratios["sat"].append(new["sat"] / old["sat"])
            ratios["batch"].append(old["batch"] / new["batch"])
    finally:
        for pool in pools.values():
            pool.close()
    labels = {
        "p50": f"p50 at {rate:.2f} req/s (ms)",
        "p99": f"p99 at {rate:.2f} req/s (ms)",
        "sat": "saturation, closed loop (req/s)",
        "batch": f"`infer` of B={pools['lockstep'].plan.total_batch} rows, median (ms)",
    }
    rows = []
    for key, label in labels.items():
        per_round = ", ".join(f"{x:.2f}×" for x in ratios[key])
        rows.append(
            f"| {name} `{plan}` | {label} | {median(got['lockstep'][key]):.2f} | "
            f"{median(got['work-conserving'][key]):.2f} | {median(ratios[key]):.2f}× | {per_round} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny-cnn:2x1x2,resnet50:2x1x1")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    header = host_description()
    print(header, flush=True)
    rows = []
    for item in args.models.split(","):
        name, _, plan = item.partition(":")
        rows += bench_model(name, plan or "2x1x1", args.rounds, args.seconds)
    table = [
        "| model, plan | row | lockstep | work-conserving | median ratio (>1: work-conserving better) | per round |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    text = "\n".join(table)
    print(text)
    if args.out is not None:
        command = "python benchmarks/bench_dispatch.py " + " ".join(sys.argv[1:])
        args.out.write_text(
            f"# Dispatch: work-conserving vs lockstep\n\n{header}\n\nCommand: `{command}`\n\n{text}\n"
        )


if __name__ == "__main__":
    main()
