"""The pool under load while workers are killed, stopped and resumed and plans switch: nothing lost, nothing wrong.

Usage: python benchmarks/bench_faults.py [--model mlp] [--rate 150] [--duration 60] [--seed 1]

Single samples arrive open-loop at `--rate`/s through pool.submit, and one closed-loop caller sends
5-row batches through pool.infer. A seeded chaos thread, every 1.5–3 s, does one of: SIGKILL a
worker, SIGKILL a worker and then its replacement while it starts, SIGSTOP a worker for 3 s (past
the hang deadline, so it is killed and replaced) then SIGCONT, or switch the plan. Every answer is
compared with the in-process model's answer for its input. Prints requests sent / answered /
failed with a named error / lost / wrong, the longest gap between completions, and what the pool
recorded (restarts, hung workers, reruns).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import random
import signal
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

PLANS = ["2x1x4", "1x2x8@passive", "1x1x8", "2x1x4"]


class Ledger:
    """Every request: when it was due, when it finished, and how (ok / wrong / error type)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.done: list[tuple[float, float, str]] = []

    def record(self, due: float, outcome: str) -> None:
        with self.lock:
            self.done.append((due, time.perf_counter(), outcome))


def check(out: torch.Tensor, want: torch.Tensor) -> str:
    return "ok" if torch.allclose(out, want, rtol=1e-4, atol=1e-5) else "wrong"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    workload = get_workload(args.model)
    samples = workload.example_input(64, seed=3)
    with torch.inference_mode():
        reference = workload.build()(samples)
    ledger = Ledger()
    stop = threading.Event()
    actions: collections.Counter[str] = collections.Counter()
    rng = random.Random(args.seed)
    with Pool(workload, PLANS[0], warmup=2, announce=False) as pool:

        def on_done(future: Future[torch.Tensor], due: float, k: int) -> None:
            exc = future.exception()
            ledger.record(due, type(exc).__name__ if exc else check(future.result(), reference[k]))

        def open_loop() -> None:
            start = time.perf_counter()
            for n in itertools.count():
                if stop.is_set():
                    return
                due = start + n / args.rate
                if (delay := due - time.perf_counter()) > 0:
                    time.sleep(delay)
                k = n % 64
                with ledger.lock:
                    ledger.sent += 1
                pool.submit(samples[k]).add_done_callback(lambda f, d=due, k=k: on_done(f, d, k))

        def closed_loop() -> None:
            for n in itertools.count():
                if stop.is_set():
                    return
                ks = [(n * 5 + j) % 64 for j in range(5)]
                with ledger.lock:
                    ledger.sent += 1
                due = time.perf_counter()
                try:
                    out = pool.infer(samples[ks], timeout=120)
                    ledger.record(due, check(out, reference[ks]))
                except Exception as exc:  # noqa: BLE001 - counted by type
                    ledger.record(due, type(exc).__name__)

        def pids() -> list[int]:
            return [w["pid"] for w in pool.stats()["workers"] if w["pid"] and w["state"] == "ready"]

        def chaos() -> None:
            plans = itertools.cycle(PLANS[1:])
            while not stop.wait(rng.uniform(1.5, 3.0)):
                action = rng.choice(["kill", "kill-twice", "stop", "switch"])
                victims = pids()
                if action != "switch" and not victims:
                    continue
                victim = rng.choice(victims) if victims else 0
                actions[action] += 1
                if action == "kill":
                    os.kill(victim, signal.SIGKILL)
                elif action == "kill-twice":
                    os.kill(victim, signal.SIGKILL)
                    deadline = time.monotonic() + 10
                    while time.monotonic() < deadline:  # the replacement, while it starts
                        fresh = [
                            w["pid"] for w in pool.stats()["workers"] if w["state"] == "starting" and w["pid"]
                        ]
                        if fresh:
                            os.kill(fresh[0], signal.SIGKILL)
                            break
                        time.sleep(0.01)
                elif action == "stop":
                    os.kill(victim, signal.SIGSTOP)
                    time.sleep(3.0)
                    try:
                        os.kill(victim, signal.SIGCONT)
                    except ProcessLookupError:
                        pass  # killed as hung meanwhile
                else:
                    pool.reconfigure(next(plans))

        threads = [threading.Thread(target=f, daemon=True) for f in (open_loop, closed_loop, chaos)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(args.duration)
        stop.set()
        for t in threads:
            t.join(180)
        settle = time.monotonic() + 120
        while time.monotonic() < settle and len(ledger.done) < ledger.sent:
            time.sleep(0.1)
        stats = pool.stats()
        kinds = collections.Counter(e.kind for e in pool.events())
    outcomes = collections.Counter(o for _, _, o in ledger.done)
    ends = sorted(end for _, end, o in ledger.done if o == "ok")
    gap = max((b - a for a, b in itertools.pairwise([t0, *ends])), default=0.0) * 1000.0
    lat = [(end - due) * 1000.0 for due, end, o in ledger.done if o == "ok"]
    errors = {k: v for k, v in outcomes.items() if k not in ("ok", "wrong")}
    print("# Faults under load\n")
    print(host_description() + "\n")
    print(f"Command: `python benchmarks/bench_faults.py {' '.join(sys.argv[1:])}`".rstrip() + "\n")
    print(
        f"Model {args.model}, plans cycling {' → '.join(PLANS)}, {args.rate:g} single samples/s open loop "
        f"+ one closed-loop caller of 5-row batches, {args.duration:g} s, chaos seed {args.seed}.\n"
    )
    print(
        "| sent | answered | failed with a named error | lost | wrong | longest gap between answers ms | p50 ms | p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {ledger.sent} | {outcomes['ok']} | {sum(errors.values())} {dict(errors) or ''} | "
        f"{ledger.sent - len(ledger.done)} | {outcomes['wrong']} | {gap:.0f} | "
        f"{percentile(lat, 50):.1f} | {percentile(lat, 99):.1f} |"
    )
    print(f"\nChaos actions: {dict(actions)}.")
    print(
        f"Pool: worker restarts {stats['worker_restarts']}, hung workers killed {stats['hung_workers']}, "
        f"pieces rerun {stats['reruns']}, plan switches {stats['reconfigurations']}, pool lost {stats['lost']}; "
        f"events {dict(sorted((k, v) for k, v in kinds.items() if k.startswith(('worker', 'piece', 'switch', 'reconfigure'))))}."
    )


if __name__ == "__main__":
    main()
