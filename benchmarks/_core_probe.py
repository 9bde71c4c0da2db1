"""One A/B sample of the serving core (run by bench_core_ab.py under either source tree); prints JSON.

Uses only the public Pool API that both the old and the new core have, so the same probe measures
both: transport overhead of a 1x1xb pool (pool.infer median minus the worker's own model time) and
one live switch under steady open-loop load (switch duration, longest gap, p99, losses).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import threading
import time
from concurrent.futures import Future
from typing import Any

import torch

from packrat_lab import Pool
from packrat_lab.workloads.registry import get_workload


def transport(model: str, batch: int, iters: int) -> dict[str, float]:
    """Median pool.infer latency and (mean − worker model mean) for a 1x1xb pool."""
    workload = get_workload(model)
    x = workload.example_input(batch, seed=1)
    with Pool(workload, f"1x1x{batch}", warmup=5, announce=False) as pool:
        for _ in range(10):
            pool.infer(x)
        before = pool.stats()["workers"][0]
        lat = []
        for _ in range(iters):
            start = time.perf_counter()
            pool.infer(x)
            lat.append((time.perf_counter() - start) * 1000.0)
        after = pool.stats()["workers"][0]
    served = after["served"] - before["served"]
    worker_ms = (after["mean_run_ms"] * after["served"] - before["mean_run_ms"] * before["served"]) / served
    return {"median_ms": statistics.median(lat), "transport_ms": statistics.mean(lat) - worker_ms}


def switch_under_load(model: str, rate: float, plans: list[str], steady: float) -> dict[str, Any]:
    """Open-loop single samples at `rate`/s while the pool switches through `plans`."""
    workload = get_workload(model)
    samples = workload.example_input(64, seed=3)
    records: list[tuple[float, float, bool]] = []
    lock = threading.Lock()
    stop = threading.Event()
    sent = [0]
    with Pool(workload, plans[0], warmup=3, announce=False) as pool:

        def done(future: Future[torch.Tensor], due: float) -> None:
            with lock:
                records.append((due, time.perf_counter(), future.exception() is None))

        def send() -> None:
            start = time.perf_counter()
            for k in itertools.count():
                if stop.is_set():
                    return
                due = start + k / rate
                if (delay := due - time.perf_counter()) > 0:
                    time.sleep(delay)
                future = pool.submit(samples[k % 64])
                sent[0] += 1
                future.add_done_callback(lambda f, d=due: done(f, d))

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        time.sleep(steady)
        switches = []
        for text in plans[1:]:
            t0 = time.perf_counter()
            pool.reconfigure(text)
            switches.append((t0, time.perf_counter()))
            time.sleep(steady)
        stop.set()
        sender.join()
        time.sleep(0.5)
    ok = [(d, e) for d, e, good in records if good]
    windows = []
    for lo, hi in switches:
        inside = sorted(e for d, e in ok if lo <= e < hi)
        ends = [lo, *inside, hi]
        lat = sorted((e - d) * 1000.0 for d, e in ok if lo <= e < hi)
        windows.append(
            {
                "duration_s": hi - lo,
                "gap_ms": max(b - a for a, b in itertools.pairwise(ends)) * 1000.0,
                "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None,
            }
        )
    failed = sum(1 for *_, good in records if not good)
    return {
        "sent": sent[0],
        "answered": len(ok),
        "failed": failed,
        "lost": sent[0] - len(ok) - failed,
        "switches": windows,
        "median_ms": statistics.median((e - d) * 1000.0 for d, e in ok),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("transport", "switch"))
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iters", type=int, default=150)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--plans", default="2x1x4,1x2x8@passive,2x1x4")
    parser.add_argument("--steady", type=float, default=2.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out: dict[str, Any] = {"pid": os.getpid(), "load": os.getloadavg()[0]}
    if args.what == "transport":
        out.update(transport(args.model, args.batch, args.iters))
    else:
        out.update(switch_under_load(args.model, args.rate, args.plans.split(","), args.steady))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
