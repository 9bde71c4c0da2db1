"""Many models on one host, side by side: joint plan vs equal static split vs unmanaged, Poisson load.

Run: PYTHONPATH=. python benchmarks/bench_fleet.py [--models tiny-cnn,bert] [--out benchmarks/results/fleet.md]

1. Profile every model alone (threads 1..cores, a few batches).
2. Offered mix: each model's base load is half of what the queue model says one equal share of
   cores serves (so the models are equally loaded), capped at --max-rate (the in-process load
   generator's reach on a small host); objectives from --slo.
3. Arms, each a set of pools serving the models at once:
   - joint: `optimize_fleet` (cores and ⟨i,t,b⟩ per model, isolated profiles);
   - joint-corun (with --corun): each model re-profiled on its joint share while the others serve
     their base load on theirs; `optimize_fleet` on those co-run numbers;
   - equal: cores split equally, each model's best plan for its share (same queue model);
   - unmanaged: every model one instance with every thread on all cores, left to the OS.
4. For a ladder of scale factors s, every model gets s·load Poisson requests/s for --duration
   seconds at once (open loop, one sample per request through the pool's dynamic batcher). A model
   meets its QoS at s when 95 % of its requests finish within its objective and none fail.
   QPS at 95 % QoS per model: the largest s before its first miss, times its load; fleet: the
   largest s at which every model met it, times the summed load. p99 per model at s = 1.
The expected scale (queue model) is printed beside the measured one for the planned arms.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostinfo import host_description
from markdown_report import emit

LADDER = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
SLO_DEFAULT = {"tiny-cnn": 20.0, "mlp": 40.0, "resnet50": 1500.0, "bert": 1000.0}
MODEL_OPTIONS: dict[str, dict[str, Any]] = {"bert": {"seq_len": 32}}


def _workload(name: str) -> Any:
    from packrat_lab.workloads.registry import get_workload

    return get_workload(name, **MODEL_OPTIONS.get(name, {}))


def cached(cache: Path | None, key: str) -> Any:
    """A profile saved by an earlier run (--cache DIR), or None."""
    from packrat_lab.profiling.table import load_profile

    path = None if cache is None else cache / f"{key}.json"
    if path is not None and path.exists():
        print(f"using cached profile {path}", flush=True)
        return load_profile(path)
    return None


def save(cache: Path | None, key: str, prof: Any) -> None:
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        prof.save(cache / f"{key}.json")


def profile_models(
    names: list[str], cores: int, batches: tuple[int, ...], point_s: float, cache: Path | None
) -> dict[str, Any]:
    from packrat_lab.profiling.profiler import profile

    out = {}
    for name in names:
        found = cached(cache, name)
        if found is not None:
            out[name] = found
            continue
        start = time.perf_counter()
        out[name] = profile(
            _workload(name),
            threads=list(range(1, cores + 1)),
            batches=batches,
            warmup=3,
            min_samples=5,
            max_samples=40,
            point_time_s=point_s,
        )
        save(cache, name, out[name])
        print(f"profiled {name} in {time.perf_counter() - start:.0f} s", flush=True)
    return out


def start_pools(plans: dict[str, Any], *, overlap: bool) -> dict[str, Any]:
    """Pools for one arm: a Fleet (disjoint shares) or, with overlap, plain pools pinned to all cores."""
    from packrat_lab.fleet import Fleet
    from packrat_lab.serving.pool import Pool

    if not overlap:
        return {"fleet": Fleet({n: (_workload(n), p) for n, p in plans.items()}, announce=False, warmup=2)}
    return {n: Pool(_workload(n), p, announce=False, warmup=2, name=n) for n, p in plans.items()}


def targets_of(started: dict[str, Any]) -> dict[str, Any]:
    if "fleet" in started:
        fleet = started["fleet"]
        return {n: fleet.pool(n) for n in fleet.pools}
    return started


def close_all(started: dict[str, Any]) -> None:
    for pool in started.values():
        pool.close()


def run_step(
    targets: dict[str, Any], loads: dict[str, float], scale: float, duration: float
) -> dict[str, Any]:
    """Every model at scale·load at once; the LoadReport per model."""
    import threading

    from packrat_lab.loadgen import run_load

    reports: dict[str, Any] = {}

    def one(name: str, seed: int) -> None:
        reports[name] = run_load(
            targets[name],
            rate=scale * loads[name],
            duration_s=duration,
            seed=seed,
            concurrency=64,
            timeout_s=30,
        )

    threads = [threading.Thread(target=one, args=(n, k)) for k, n in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return reports


def p95(report: Any) -> float:
    import numpy as np

    return float(np.percentile(report.latencies_ms, 95)) if report.latencies_ms else float("inf")


def meets(report: Any, slo: float) -> bool:
    return report.errors == 0 and report.completed == report.scheduled and p95(report) <= slo


def measure_arm(
    label: str, started: dict[str, Any], loads: dict[str, float], slo: dict[str, float], duration: float
) -> dict[str, Any]:
    targets = targets_of(started)
    passed: dict[str, float] = dict.fromkeys(loads, 0.0)
    failed: set[str] = set()
    fleet_scale = 0.0
    p99_at_1: dict[str, float] = {}
    for scale in LADDER:
        reports = run_step(targets, loads, scale, duration)
        ok = {n: meets(r, slo[n]) for n, r in reports.items()}
        for n, good in ok.items():
            if good and n not in failed:
                passed[n] = scale
            elif not good:
                failed.add(n)
        if all(ok.values()) and fleet_scale == scale_before(scale):
            fleet_scale = scale
        if scale == 1.0:
            p99_at_1 = {n: r.p99_ms for n, r in reports.items()}
        line = ", ".join(
            f"{n} p95 {p95(r):.0f}/{slo[n]:g} ms {'ok' if ok[n] else 'MISS'}" for n, r in reports.items()
        )
        print(f"[{label}] scale {scale:g}: {line}", flush=True)
        if len(failed) == len(loads) or (scale >= 1.0 and failed == set(loads)):
            break
    return {"passed": passed, "fleet_scale": fleet_scale, "p99_at_1": p99_at_1}


def scale_before(scale: float) -> float:
    """The ladder step below `scale` (0 for the first): the fleet scale only grows while every step passed."""
    k = LADDER.index(scale)
    return 0.0 if k == 0 else LADDER[k - 1]


def main() -> None:
    from packrat_lab.host import detect_host, usable_core_count
    from packrat_lab.optimizer.fleet import model_curve, optimize_fleet
    from packrat_lab.plan import Plan

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="comma-separated zoo names (default: by core count)")
    parser.add_argument("--cores", type=int, default=None)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per load step")
    parser.add_argument("--point-s", type=float, default=1.5, help="profiling time cap per point")
    parser.add_argument("--batches", default="1,2,4,8")
    parser.add_argument("--corun", action="store_true", help="also plan from co-run profiles")
    parser.add_argument("--slo", action="append", default=[], metavar="MODEL=MS")
    parser.add_argument("--max-rate", type=float, default=120.0, help="cap on a model's base load (req/s)")
    parser.add_argument("--cache", type=Path, default=None, help="keep/reuse profiles in this folder")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    cores = args.cores or usable_core_count()
    names = (
        args.models.split(",")
        if args.models
        else (["tiny-cnn", "bert"] if cores < 3 else ["tiny-cnn", "resnet50", "bert"])
    )
    if len(names) > cores:
        msg = f"{len(names)} models need at least {len(names)} cores for disjoint shares; this run has {cores}; example: --models tiny-cnn,bert"
        raise SystemExit(msg)
    slo = {n: SLO_DEFAULT.get(n, 100.0) for n in names}
    for item in args.slo:
        key, _, value = item.partition("=")
        slo[key] = float(value)
    batches = tuple(int(b) for b in args.batches.split(","))
    host = host_description()
    started_at = time.time()

    profiles = profile_models(names, cores, batches, args.point_s, args.cache)
    share = cores // len(names)
    curves = {n: model_curve(n, profiles[n], cores, slo[n]) for n in names}
    loads = {n: min(args.max_rate, 0.5 * float(curves[n].capacity[share])) for n in names}
    if not all(v > 0 for v in loads.values()):
        raise SystemExit(
            f"some model cannot meet its objective on {share} core(s): capacities {loads}; raise --slo"
        )

    arms: dict[str, dict[str, Plan]] = {}
    expected: dict[str, float] = {}
    arms["joint"] = optimize_fleet(profiles, cores, loads, slo)
    expected["joint"] = next(iter(arms["joint"].values())).meta["scale"]
    arms["equal"] = {n: curves[n].plans[share] for n in names}  # type: ignore[misc]
    expected["equal"] = min(curves[n].capacity[share] / loads[n] for n in names)
    unmanaged = {}
    all_cores = tuple(detect_host().primary_cpus[:cores])
    for n in names:
        best = curves[n].plans[cores]
        assert best is not None
        unmanaged[n] = Plan.parse(f"1x{cores}x{best.total_batch}").with_cores([all_cores])
    arms["unmanaged"] = unmanaged

    if args.corun:
        from packrat_lab.fleet.corun import corun_profile, corun_view, interference_of

        started = start_pools(arms["joint"], overlap=False)
        fleet = started["fleet"]
        corun = {}
        try:
            for n in names:
                found = cached(args.cache, f"{n}-corun")
                if found is not None:
                    corun[n] = found
                    continue
                others = [m for m in names if m != n]
                background = [(fleet.pool(m), loads[m]) for m in others]
                level = interference_of(
                    [loads[m] for m in others], [arms["joint"][m].meta["capacity_rps"] for m in others]
                )
                t0 = time.perf_counter()
                corun[n] = corun_profile(
                    _workload(n),
                    fleet.shares[n],
                    background,
                    batches=batches,
                    interference=round(level, 3),
                    point_time_s=args.point_s,
                )
                save(args.cache, f"{n}-corun", corun[n])
                print(
                    f"co-run profiled {n} at interference {level:.2f} in {time.perf_counter() - t0:.0f} s",
                    flush=True,
                )
        finally:
            close_all(started)
        views = {n: corun_view(profiles[n], corun[n]) for n in names}
        arms["joint-corun"] = optimize_fleet(views, cores, loads, slo)
        expected["joint-corun"] = next(iter(arms["joint-corun"].values())).meta["scale"]

    results = {}
    for label, plans in arms.items():
        started = start_pools(plans, overlap=(label == "unmanaged"))
        try:
            results[label] = measure_arm(label, started, loads, slo, args.duration)
        finally:
            close_all(started)

    lines = [
        f"# Fleet: joint plan vs equal split vs unmanaged ({', '.join(names)} on {cores} cores)",
        "",
        host,
        "",
        (
            f"Command: `PYTHONPATH=. python benchmarks/bench_fleet.py --models {','.join(names)} --cores {cores} "
            f"--duration {args.duration:g}{' --corun' if args.corun else ''}` (wall {time.time() - started_at:.0f} s)."
        ),
        "",
        "Offered mix (scale 1): "
        + ", ".join(f"{n} {loads[n]:.1f} req/s within {slo[n]:g} ms (p95)" for n in names)
        + f". Ladder of scales {list(LADDER)}; {args.duration:g} s of Poisson load per step, every model at once, "
        "one sample per request through the pool's dynamic batcher; the load generator runs in the same process.",
        "",
        "| arm | plans (cores) | expected fleet scale | measured fleet scale | fleet QPS at 95 % QoS | "
        + " | ".join(f"{n} QPS at QoS" for n in names)
        + " | "
        + " | ".join(f"{n} p99 at scale 1" for n in names)
        + " |",
        "|---|---|---:|---:|---:|" + "---:|" * (2 * len(names)),
    ]
    total = sum(loads.values())
    for label, plans in arms.items():
        r = results[label]
        plan_text = "; ".join(
            f"{n} {p.text}" + (f" ({p.total_threads} cores)" if label != "unmanaged" else " (all cores)")
            for n, p in plans.items()
        )
        exp = f"{expected[label]:.2f}" if label in expected else "—"
        lines.append(
            f"| {label} | {plan_text} | {exp} | {r['fleet_scale']:g} | {r['fleet_scale'] * total:.1f} | "
            + " | ".join(f"{r['passed'][n] * loads[n]:.1f}" for n in names)
            + " | "
            + " | ".join(f"{r['p99_at_1'].get(n, float('nan')):.0f} ms" for n in names)
            + " |"
        )
    base = results["unmanaged"]["fleet_scale"]
    lines += [
        "",
        "Fleet QPS at QoS relative to unmanaged: "
        + ", ".join(
            f"{label} {results[label]['fleet_scale'] / base:.2f}×"
            if base > 0
            else f"{label} (unmanaged met no step)"
            for label in arms
        )
        + ".",
        "",
    ]
    if cores < 3:
        lines += [
            (
                f"Note: with {len(names)} models on {cores} cores the only disjoint split is one core each, so "
                "joint and equal differ only in the plan within each share; the 16-core run "
                "(benchmarks/run_fleet_16core.sh) exercises the core allocation itself."
            ),
            "",
        ]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
