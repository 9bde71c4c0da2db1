"""Latency SLOs under load: no admission vs admission, fixed batch vs Packrat's estimator vs AIMD, in one run.

Usage: python benchmarks/bench_slo.py [--model mlp] [--batch 8] [--slo-ms 40] [--duration 5]
       [--loads 0.5,1.0,1.5] [--profile FILE] [--out benchmarks/results/slo.md]

One in-process open-loop generator (seeded Poisson arrivals, and bursty on/off arrivals with the
same mean: Poisson at twice the rate during 250 ms on, nothing during 250 ms off) submits single
samples with `pool.submit` at their scheduled times; latency counts from the scheduled time. The
plan is the optimizer's for `--batch` on this host's cores (from a short profile unless --profile)
and its capacity is measured first (a flood of requests through the fixed-batch pool). Every
configuration runs every pattern and load in turn on one pool:

- fixed: the plan's B, no auto mode; packrat: auto mode (the estimator's B drives the optimizer);
  aimd: `batching="aimd"` (the batcher's B follows AIMD toward a third of the SLO);
- each without admission (no deadline: every request runs) and with admission (`slo_ms`).

Per run: SLO attainment (answered within the SLO / offered), goodput (answered within the SLO per
second), p99 of answered (admitted) requests, the share refused or dropped, the pool's prediction
error p50/p99. The goal: with admission, p99 of admitted within the SLO at 150 % load while goodput
stays ≥ 90 % of the no-admission goodput at 100 % load.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from hostinfo import host_description

from packrat_lab.loadgen import arrival_times

BURST_PERIOD_S = 0.5  # on/off: on for the first half of each period


@dataclass
class RunResult:
    config: str
    pattern: str
    load: float
    offered: int
    on_time: int
    answered: int
    refused: int
    dropped: int
    failed: int
    p99_answered_ms: float
    attainment: float
    goodput_rps: float
    refused_share: float
    prediction_p50_ms: float | None
    prediction_p99_ms: float | None
    refusal_call_p50_ms: float | None
    refusal_call_p99_ms: float | None


def schedule(rate: float, duration: float, pattern: str, seed: int) -> np.ndarray:
    """Arrival offsets: Poisson at `rate`, or on/off with the same mean (2×rate while on)."""
    if pattern == "poisson":
        return arrival_times(rate, duration, poisson=True, seed=seed)
    times = arrival_times(2 * rate, duration, poisson=True, seed=seed)
    return times[(times % BURST_PERIOD_S) < BURST_PERIOD_S / 2]


def offer(pool: Any, inputs: list[Any], times: np.ndarray, slo_ms: float, drain_s: float) -> dict[str, Any]:
    """Submit one sample per scheduled time (open loop) and record each outcome and latency."""
    from packrat_lab.errors import DeadlineDropped, Rejected

    n = len(times)
    latency = np.full(n, np.nan)
    outcome = [""] * n
    refusal_call_ms: list[float] = []
    done = threading.Semaphore(0)

    def settle(i: int, due: float, future: Any) -> None:
        exc = future.exception()
        if exc is None:
            latency[i] = (time.perf_counter() - due) * 1000.0
            outcome[i] = "ok"
        elif isinstance(exc, DeadlineDropped):
            outcome[i] = "dropped"
        elif isinstance(exc, Rejected):
            outcome[i] = "refused"
        else:
            outcome[i] = "failed"
        done.release()

    start = time.perf_counter() + 0.05
    for i, offset in enumerate(times):
        due = start + float(offset)
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        called = time.perf_counter()
        future = pool.submit(inputs[i % len(inputs)])
        if future.done() and isinstance(future.exception(), Rejected):
            refusal_call_ms.append((time.perf_counter() - called) * 1000.0)
        future.add_done_callback(lambda f, i=i, due=due: settle(i, due, f))
    deadline = time.perf_counter() + drain_s
    for _ in range(n):
        if not done.acquire(timeout=max(0.0, deadline - time.perf_counter())):
            break
    return {"latency": latency, "outcome": outcome, "refusal_call_ms": refusal_call_ms}


def summarize(
    config: str,
    pattern: str,
    load: float,
    duration: float,
    slo_ms: float,
    got: dict[str, Any],
    stats: dict[str, Any],
) -> RunResult:
    outcome = got["outcome"]
    latency = got["latency"]
    answered = np.array([x for x, o in zip(latency, outcome) if o == "ok"])
    offered = len(outcome)
    on_time = int(np.sum(answered <= slo_ms)) if len(answered) else 0
    refused = outcome.count("refused")
    dropped = outcome.count("dropped")
    calls = got["refusal_call_ms"]
    return RunResult(
        config,
        pattern,
        load,
        offered,
        on_time,
        len(answered),
        refused,
        dropped,
        offered - len(answered) - refused - dropped,
        float(np.percentile(answered, 99)) if len(answered) else math.nan,
        on_time / offered if offered else math.nan,
        on_time / duration,
        (refused + dropped) / offered if offered else math.nan,
        stats.get("prediction_error_p50_ms"),
        stats.get("prediction_error_p99_ms"),
        float(np.percentile(calls, 50)) if calls else None,
        float(np.percentile(calls, 99)) if calls else None,
    )


def measure_capacity(pool: Any, inputs: list[Any], seconds: float = 3.0) -> float:
    """Samples per second the pool answers under open-loop overload (this generator running, no deadlines).

    A closed-loop flood reads higher: it leaves out what the generator itself costs on a small host.
    """
    window = 4 * pool.plan.total_batch
    pending: list[Any] = [pool.submit(inputs[k % len(inputs)]) for k in range(window)]
    t0 = time.perf_counter()
    answered = 0
    while time.perf_counter() < t0 + 1.0:  # a first guess from a short closed-loop flood
        pending.pop(0).result(60)
        answered += 1
        pending.append(pool.submit(inputs[answered % len(inputs)]))
    for f in pending:
        f.result(60)
    guess = answered / (time.perf_counter() - t0)
    times = schedule(1.5 * guess, seconds, "poisson", seed=7)
    stamps: list[float] = []
    start = time.perf_counter() + 0.05
    futures = []
    for i, offset in enumerate(times):
        delay = start + float(offset) - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        future = pool.submit(inputs[i % len(inputs)])
        future.add_done_callback(lambda _f: stamps.append(time.perf_counter()))
        futures.append(future)
    for f in futures:
        f.result(120)
    inside = [t for t in stamps if start + 0.5 <= t <= start + seconds]  # saturated part of the run
    return len(inside) / (seconds - 0.5)


def make_pool(config: str, model: str, plan: Any, profile: Any, slo_ms: float) -> Any:
    from packrat_lab.serving.aimd import AIMDBatchSize
    from packrat_lab.serving.pool import Pool

    batching, admission = config.split("+")
    kwargs: dict[str, Any] = {"announce": False, "slo_ms": slo_ms if admission == "admission" else None}
    if batching == "packrat":
        kwargs.update(profile=profile, auto=True, auto_hysteresis_s=0.5, auto_min_interval_s=2.0)
    elif batching == "aimd":
        kwargs["batching"] = "aimd"
        if admission != "admission":  # AIMD still needs its objective; no deadline per request
            kwargs["aimd"] = AIMDBatchSize(slo_ms / 3, start=plan.total_batch, max_batch=max(profile.batches))
    return Pool(model, plan, **kwargs)


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--slo-ms", type=float, default=40.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--loads", default="0.5,1.0,1.5")
    parser.add_argument("--patterns", default="poisson,bursty")
    parser.add_argument(
        "--configs",
        default="fixed+none,fixed+admission,packrat+none,packrat+admission,aimd+none,aimd+admission",
    )
    parser.add_argument("--profile", default=None)
    parser.add_argument("--out", default="benchmarks/results/slo.md")
    args = parser.parse_args()

    import packrat_lab
    from packrat_lab.host import usable_core_count
    from packrat_lab.optimizer import optimize
    from packrat_lab.profiling.table import load_profile
    from packrat_lab.workloads.registry import get_workload

    host = host_description()
    load_start = os.getloadavg()
    cores = usable_core_count()
    batches = sorted({b for b in (1, 2, 4, 8, 16, 32) if b <= 2 * args.batch} | {args.batch})
    profile = (
        load_profile(args.profile)
        if args.profile
        else packrat_lab.profile(args.model, cores=cores, batches=batches, point_time_s=0.5, max_samples=30)
    )
    plan = optimize(profile, cores=cores, batch=args.batch)
    workload = get_workload(args.model)
    inputs = list(workload.example_input(16, seed=3))
    loads = [float(x) for x in args.loads.split(",")]
    patterns = args.patterns.split(",")
    configs = args.configs.split(",")

    from packrat_lab.serving.pool import Pool

    with Pool(args.model, plan, announce=False) as pool:
        capacity = measure_capacity(pool, inputs, 3.0)
    print(f"plan {plan.text}  capacity {capacity:.0f} samples/s  SLO {args.slo_ms:g} ms", flush=True)

    results: list[RunResult] = []
    for config in configs:
        with make_pool(config, args.model, plan, profile, args.slo_ms) as pool:
            offer(pool, inputs, schedule(0.5 * capacity, 1.0, "poisson", seed=99), args.slo_ms, 30.0)  # warm
            for pattern in patterns:
                for k, load in enumerate(loads):
                    times = schedule(load * capacity, args.duration, pattern, seed=1000 + k)
                    got = offer(pool, inputs, times, args.slo_ms, drain_s=args.duration * 4 + 30)
                    result = summarize(
                        config, pattern, load, args.duration, args.slo_ms, got, dict(pool.stats())
                    )
                    results.append(result)
                    print(
                        f"{config:18} {pattern:8} {load:4.0%}  attain {result.attainment:6.1%}  goodput "
                        f"{result.goodput_rps:7.1f}/s  p99 {fmt(result.p99_answered_ms):>8} ms  refused "
                        f"{result.refused_share:6.1%}  plan {pool.plan.text}",
                        flush=True,
                    )
                    while pool.stats()["in_flight"]:
                        time.sleep(0.05)
                    time.sleep(0.3)
    load_end = os.getloadavg()
    write(args, host, load_start, load_end, plan, capacity, results)


def verdict(
    results: list[RunResult], slo_ms: float, pattern: str, batching: str, capacity: float, load: float = 1.5
) -> str:
    """The issue's goal at `load` (× capacity): p99 of admitted within the SLO, goodput ≥ 90 % of none at 100 %."""
    by = {(r.config, r.load): r for r in results if r.pattern == pattern}
    adm = by.get((f"{batching}+admission", load))
    base = by.get((f"{batching}+none", 1.0))
    if adm is None or base is None:
        return "not run"
    p99_ok = adm.p99_answered_ms <= slo_ms
    ratio = adm.goodput_rps / base.goodput_rps if base.goodput_rps else math.nan
    good_ok = ratio >= 0.9
    at = f"{load:.0%}".replace("%", " %")
    return (
        f"{'met' if p99_ok and good_ok else 'gap'}: p99 of admitted at {at} {fmt(adm.p99_answered_ms)} ms "
        f"({'≤' if p99_ok else '>'} {slo_ms:g} ms); goodput at {at} with admission {adm.goodput_rps:.1f}/s = "
        f"{ratio:.0%} of no-admission goodput at 100 % ({base.goodput_rps:.1f}/s; goal ≥ 90 %), "
        f"{adm.goodput_rps / capacity:.0%} of the measured capacity"
    )


def write(
    args: argparse.Namespace,
    host: str,
    load_start: tuple[float, float, float],
    load_end: tuple[float, float, float],
    plan: Any,
    capacity: float,
    results: list[RunResult],
) -> None:
    lines = [
        "# Latency SLOs: admission, drops, AIMD (bench_slo.py)",
        "",
        host,
        (
            f"Load average (1/5/15 min) at start {load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}, "
            f"at end {load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f} (this host is shared: other jobs ran meanwhile)."
        ),
        "",
        (
            f"Command: `python benchmarks/bench_slo.py --model {args.model} --batch {args.batch} --slo-ms {args.slo_ms:g} "
            f"--duration {args.duration:g} --loads {args.loads}`"
        ),
        "",
        (
            f"Model {args.model}, plan {plan.text} (the optimizer's for B={args.batch} from a short profile), measured "
            f"capacity {capacity:.0f} samples/s (answered per second by the fixed-batch pool under open-loop overload at 1.5× a closed-loop flood's rate, this generator running), SLO {args.slo_ms:g} ms, "
            f"{args.duration:g} s per run, single samples through pool.submit from one open-loop generator "
            "(latency from each request's scheduled time). `none` = no deadline (every request runs); "
            "`admission` = `slo_ms`: refused at once if predicted to miss, dropped if it can no longer finish in time."
        ),
        "",
        (
            "| config | pattern | load | offered | attainment | goodput (/s) | p99 answered (ms) | refused+dropped | "
            "dropped | late | pred. err p50/p99 (ms) | refusal call p50/p99 (ms) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        late = r.answered - r.on_time
        lines.append(
            f"| {r.config} | {r.pattern} | {r.load:.0%} | {r.offered} | {r.attainment:.1%} | {r.goodput_rps:.1f} | "
            f"{fmt(r.p99_answered_ms)} | {r.refused_share:.1%} | {r.dropped} | {late} | "
            f"{fmt(r.prediction_p50_ms, '.2f')}/{fmt(r.prediction_p99_ms, '.2f')} | "
            f"{fmt(r.refusal_call_p50_ms, '.3f')}/{fmt(r.refusal_call_p99_ms, '.3f')} |"
        )
    lines += ["", "## Goal", ""]
    over = sorted({r.load for r in results if r.load >= 1.5})  # the goal's 150 %, and any heavier load run
    for pattern in sorted({r.pattern for r in results}):
        for batching in ("fixed", "packrat", "aimd"):
            for load in over:
                said = verdict(results, args.slo_ms, pattern, batching, capacity, load)
                if said != "not run":
                    lines.append(f"- {pattern}, {batching}: {said}")
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
