"""Pool latency with and without a Lab attached and redrawing, side by side in one run.

Usage: python benchmarks/bench_lab_overhead.py [--model mlp] [--plan 1x1x1] [--rate 20] [--duration 15]
       [--rounds 2] [--out benchmarks/results/lab-overhead.md]

One `packrat-lab serve` process serves the plan for the whole run. Each round offers the same
seeded load twice from a separate `packrat-lab load` process: once with nothing else attached, once
with a Lab Serve step (ServeController + ServeStep with its live FigureWidget timeline) attached to
the same server, polling its stats every 0.25 s and redrawing (throttled, incremental) in this
process. Arms alternate so machine drift spreads over both. Reported: the load generator's p50/p99
(client side, from each request's scheduled time) and the pool's own p50/p99 from /packrat/stats.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostinfo import host_description

from packrat_lab.plan import Plan
from packrat_lab.ui.remote import RemotePool, start_server


class _Attach:
    """A Backend whose serve() attaches to the benchmark's server instead of starting one."""

    def __init__(self, pool: RemotePool) -> None:
        self._pool = pool

    def serve(self, model: Any, plan: Plan, profile: Any) -> RemotePool:
        return RemotePool(self._pool.url, self._pool.token)


def offer_load(url: str, rate: float, duration: float, seed: int) -> dict[str, Any]:
    """`packrat-lab load` in its own process; its JSON report."""
    out = subprocess.run(
        [sys.executable, "-m", "packrat_lab.cli", "load", url, "--rate", str(rate)]
        + ["--duration", str(duration), "--seed", str(seed), "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=duration + 120,
    )
    if out.returncode not in (0, 1):
        msg = f"load failed: {out.stderr.strip()[-300:]}"
        raise RuntimeError(msg)
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def run_arm(pool: RemotePool, lab: bool, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One arm: the load, with or without a Lab Serve step attached and redrawing."""
    step = controller = None
    redraws = 0
    if lab:
        from packrat_lab.ui.serve_controller import ServeController
        from packrat_lab.ui.serve_step import ServeStep

        controller = ServeController(_Attach(pool))  # type: ignore[arg-type]
        step = ServeStep(controller, model=lambda: args.model, known_plans=dict)
        original = step.draw

        def counted() -> None:
            nonlocal redraws
            redraws += 1
            original()

        step.redraw.action = counted
        controller.start(args.model, Plan.parse(args.plan), sample_interval_s=0.25)
        controller.join()
    try:
        report = offer_load(pool.url, args.rate, args.duration, seed)
        stats = pool.stats()
    finally:
        if controller is not None and step is not None:
            controller.detach()  # the benchmark's server keeps serving
            step.redraw.cancel()
    return {
        "lab": lab,
        "client_p50": report["p50_ms"],
        "client_p99": report["p99_ms"],
        "pool_p50": stats.get("p50_ms"),
        "pool_p99": stats.get("p99_ms"),
        "completed": report["completed"],
        "errors": report["errors"],
        "throughput": report["throughput_rps"],
        "redraws": redraws,
    }


def run_old_design(args: argparse.Namespace) -> dict[str, Any]:
    """The Lab before issue 9, emulated: pool, load and a full timeline rebuild per sample in one process.

    Load went out in 1 s run_load chunks with the same seed each second; each stats sample (every
    0.33 s) rebuilt the whole plotly timeline. Latencies are the load generator's, as the widget saw them.
    """
    import threading

    from packrat_lab.loadgen import run_load
    from packrat_lab.plots import plot_timeline, timeline_info
    from packrat_lab.serving.pool import Pool
    from packrat_lab.ui.figures import new_widget, show_figure

    figure = new_widget(height=560)
    samples: list[dict[str, Any]] = []
    stop = threading.Event()
    redraws = 0

    with Pool(args.model, args.plan, announce=False) as pool:
        run_load(pool, rate=args.rate, duration_s=1.0)  # warm

        def sampler() -> None:
            nonlocal redraws
            while not stop.wait(0.33):
                stats = pool.stats()
                samples.append({"time": time.time(), **{k: stats.get(k) for k in ("p50_ms", "p99_ms")}})
                show_figure(figure, plot_timeline(timeline_info(samples[-180:], window_s=60)))
                redraws += 1

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        latencies: list[float] = []
        completed = errors = 0
        deadline = time.monotonic() + args.duration
        while time.monotonic() < deadline:
            report = run_load(pool, rate=args.rate, duration_s=1.0)  # seed 0 every second, as before
            latencies += list(report.latencies_ms)
            completed, errors = completed + report.completed, errors + report.errors
        stop.set()
        thread.join(5)
        stats = pool.stats()
    import numpy as np

    return {
        "lab": "old",
        "client_p50": float(np.percentile(latencies, 50)) if latencies else None,
        "client_p99": float(np.percentile(latencies, 99)) if latencies else None,
        "pool_p50": stats.get("p50_ms"),
        "pool_p99": stats.get("p99_ms"),
        "completed": completed,
        "errors": errors,
        "throughput": completed / args.duration,
        "redraws": redraws,
    }


def fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--plan", default="1x1x1")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/lab-overhead.md")
    parser.add_argument(
        "--old-design", action="store_true", help="also run the pre-issue-9 in-kernel Lab, emulated, once"
    )
    args = parser.parse_args()

    load_before = os.getloadavg()
    pool = start_server(args.model, Plan.parse(args.plan))
    rows: list[dict[str, Any]] = []
    try:
        offer_load(pool.url, args.rate, 2.0, 99)  # warm the server and the HTTP path
        for k in range(args.rounds):
            for lab in (False, True) if k % 2 == 0 else (True, False):
                row = run_arm(pool, lab, args, seed=k)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        pool.close()
    if args.old_design:
        row = run_old_design(args)
        rows.append(row)
        print(json.dumps(row), flush=True)
    load_after = os.getloadavg()

    def mean(lab: bool, key: str) -> float:
        values = [r[key] for r in rows if r["lab"] is lab and r[key] is not None]  # 'old' rows excluded
        return sum(values) / len(values) if values else float("nan")

    command = " ".join(["python", *sys.argv])
    lines = [
        "# Pool latency with and without a Lab attached and redrawing",
        "",
        host_description(),
        "",
        f"Command: `{command}`",
        f"Load average before {load_before[0]:.2f} / after {load_after[0]:.2f} (1 min) on a shared host.",
        "",
        (
            f"`{args.model}` served as `{args.plan}` by one `packrat-lab serve` process; `packrat-lab load` sends "
            f"{args.rate:g} req/s (Poisson, seeded) for {args.duration:g} s per arm from its own process; arms "
            "alternate. 'Lab' = a Serve step (controller + FigureWidget timeline) in the benchmark process polling "
            "/packrat/stats every 0.25 s and redrawing at most twice a second."
        ),
        "",
        "| round | Lab attached | client p50 ms | client p99 ms | pool p50 ms | pool p99 ms | completed | errors | redraws |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows):
        attached = "old design (in-kernel)" if r["lab"] == "old" else "yes" if r["lab"] else "no"
        lines.append(
            f"| {i // 2 + 1} | {attached} | {fmt(r['client_p50'])} | {fmt(r['client_p99'])} | "
            f"{fmt(r['pool_p50'])} | {fmt(r['pool_p99'])} | {r['completed']} | {r['errors']} | {r['redraws']} |"
        )
    if args.old_design:
        lines += [
            "",
            (
                "'old design': the Lab before issue 9, emulated in this process: an in-process Pool, load in 1 s "
                "`run_load` chunks with seed 0 every second, and a full timeline rebuild per 0.33 s stats sample; "
                f"it ran for {args.duration:g} s after the arms above (the new design's server had stopped)."
            ),
        ]
    ratio_p50 = mean(True, "client_p50") / mean(False, "client_p50")
    ratio_p99 = mean(True, "client_p99") / mean(False, "client_p99")
    lines += [
        "",
        (
            f"Mean over rounds, with Lab / without: client p50 {ratio_p50:.2f}×, client p99 {ratio_p99:.2f}×; "
            f"pool p99 {mean(True, 'pool_p99'):.2f} vs {mean(False, 'pool_p99'):.2f} ms."
        ),
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
