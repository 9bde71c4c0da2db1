"""A live plan switch under steady load: timeline, longest gap without a completion, p99, losses.

Usage: python benchmarks/bench_reconfigure.py [--model mlp] [--rate 200] [--plans 2x1x4,1x2x8@passive,2x1x4]
       [--steady 3]

Single samples arrive open-loop at a fixed rate through pool.submit (the dynamic batcher forms the
batches). The pool starts on the first plan; after `--steady` seconds it switches to each next
plan in turn, with `--steady` seconds between switches. Latency counts from the scheduled send
time. A switch window runs from its passive-start to its stopped event.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from hostinfo import host_description

from packrat_lab import Pool
from packrat_lab.serving.stats import percentile
from packrat_lab.workloads.registry import get_workload


class OpenLoop:
    """Sends one sample every 1/rate s from a thread; records (scheduled, done, ok) per request."""

    def __init__(self, pool: Pool, rate: float) -> None:
        self.pool, self.period = pool, 1.0 / rate
        self.samples = pool.workload.example_input(64, seed=3)
        self.records: list[tuple[float, float, bool]] = []
        self.sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.perf_counter()
        k = 0
        while not self._stop.is_set():
            due = start + k * self.period
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            future = self.pool.submit(self.samples[k % 64])
            self.sent += 1
            future.add_done_callback(lambda f, d=due: self._done(f, d))
            k += 1

    def _done(self, future: Future[torch.Tensor], due: float) -> None:
        with self._lock:
            self.records.append((due, time.perf_counter(), future.exception() is None))

    def __enter__(self) -> OpenLoop:  # noqa: PYI034 - no typing_extensions dependency
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def window_stats(
    records: list[tuple[float, float, bool]], lo: float, hi: float
) -> tuple[int, float | None, float | None, float]:
    """Completions in [lo, hi): count, p50 ms, p99 ms, longest gap ms between completions."""
    done = sorted((end, (end - due) * 1000.0) for due, end, ok in records if ok and lo <= end < hi)
    lat = [ms for _, ms in done]
    ends = [lo] + [end for end, _ in done] + [hi]
    gap = max(b - a for a, b in itertools.pairwise(ends)) * 1000.0
    return len(done), percentile(lat, 50), percentile(lat, 99), gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--plans", default="2x1x4,1x2x8@passive,2x1x4")
    parser.add_argument("--steady", type=float, default=3.0)
    args = parser.parse_args()
    plans = args.plans.split(",")
    workload = get_workload(args.model)
    wall0, perf0 = time.time(), time.perf_counter()
    with Pool(workload, plans[0], warmup=3) as pool, OpenLoop(pool, args.rate) as load:
        t_begin = time.perf_counter()
        time.sleep(args.steady)
        switch_times = []
        for text in plans[1:]:
            t0 = time.perf_counter()
            pool.reconfigure(text)
            switch_times.append((t0, time.perf_counter()))
            time.sleep(args.steady)
        t_end = time.perf_counter()
    events = pool.events()
    stats = pool.stats()
    to_perf = lambda wall: wall - wall0 + perf0
    records = load.records
    print("# Reconfiguration under steady load\n")
    print(host_description() + "\n")
    print(f"Command: `python benchmarks/bench_reconfigure.py {' '.join(sys.argv[1:])}`".rstrip())
    print(
        f"\nModel {args.model}, {args.rate:g} single-sample requests/s open loop through pool.submit "
        f"(max queue delay 5 ms), plans {' → '.join(plans)}, {args.steady:g} s steady between switches.\n"
    )
    print("## Timeline (seconds from load start)\n")
    print("| t s | event | plan | detail |")
    print("|---|---|---|---|")
    for e in events:
        if e.kind in (
            "passive-start",
            "warm",
            "switch",
            "drained",
            "stopped",
            "worker-failed",
            "worker-replaced",
        ):
            detail = {k: v for k, v in e.detail.items() if k != "pool"}
            print(f"| {to_perf(e.time) - t_begin:.3f} | {e.kind} | {e.plan} | {detail} |")
    print("\n## Latency and gaps\n")
    print("| window | completions | p50 ms | p99 ms | longest gap without a completion ms |")
    print("|---|---|---|---|---|")
    starts = [to_perf(e.time) for e in events if e.kind == "passive-start"]
    stops = [to_perf(e.time) for e in events if e.kind == "stopped"]
    windows = [("steady (before first switch)", t_begin + 0.5, starts[0])]
    for k, (lo, hi) in enumerate(zip(starts, stops)):
        windows.append((f"switch {k + 1}: {plans[k]} → {plans[k + 1]} ({hi - lo:.2f} s)", lo, hi))
        nxt = starts[k + 1] if k + 1 < len(starts) else t_end
        windows.append((f"steady on {plans[k + 1]}", hi, nxt))
    for label, lo, hi in windows:
        n, p50, p99, gap = window_stats(records, lo, hi)
        fmt = lambda v: "—" if v is None else f"{v:.2f}"
        print(f"| {label} | {n} | {fmt(p50)} | {fmt(p99)} | {gap:.1f} |")
    ok = sum(1 for r in records if r[2])
    failed = sum(1 for r in records if not r[2])
    print(
        f"\nRequests sent {load.sent}, answered {ok}, failed {failed}, lost {load.sent - ok - failed} "
        f"(pool stats: served {stats['served']}, failed {stats['failed']}, lost {stats['lost']}). "
        f"Batch sizes formed: {stats['batch_histogram']}. "
        f"reconfigure() call durations: {', '.join(f'{b - a:.2f} s' for a, b in switch_times)}."
    )
    print(
        f"Median latency over the whole run {statistics.median((e - d) * 1000 for d, e, k in records if k):.2f} ms."
    )


if __name__ == "__main__":
    main()
