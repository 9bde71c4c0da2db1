"""Runtimes side by side: eager, TorchScript, torch.compile, ONNX Runtime, OpenVINO, in fp32 and bf16.

Usage: python benchmarks/bench_backends.py [--models tiny-cnn,resnet50,bert] [--threads 1,2]
       [--backends eager,torchscript,compile,onnxruntime,openvino] [--precisions fp32,bf16]
       [--rounds 2] [--point-time 2] [--plan-batches 1,2,4,8,16] [--e2e-models tiny-cnn]
       [--skip compile-bf16,onnxruntime-bf16] [--group-timeout 600] [--repeats 20]
       [--out benchmarks/results/backends.md] [--append]

Part 1: every (model, t, backend, precision) runs in its own fresh pinned process (the profiler's
child, so the same environment and thread knobs a pool worker gets), the runtimes alternating
round by round; per point the median over rounds of each process's median latency, its ratio to
eager fp32 at the same (t, b), the error against eager fp32 on a seeded input, the conversion time
(of the first, uncached conversion into a fresh cache) and the process's peak RSS. bf16 only where
the CPU has AVX512-BF16/AMX. A runtime whose process fails or outlives --group-timeout (a cold
torch.compile of a big model can) is reported as failed for that model; the run goes on.
Part 2 (each of --e2e-models, default the first model): the best plan over all admissible runtimes
vs eager fat ⟨1,T,B⟩ at each B of --plan-batches: expected from part 1's profile, then validated in
real pools (which load part 1's conversions from the same cache), alternating. Part 1 measures an
e2e model at every plan batch and its halves, so both plans exist at each B. The 1-minute load
average is sampled every 5 s while a model runs (min / median / max in its heading). Results are
appended model by model, so an interrupted run keeps what finished.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostinfo import host_description

from packrat_lab.host import assign_cores, detect_host, fingerprint
from packrat_lab.profiling.measurement import Measurement
from packrat_lab.profiling.runner import PointFailedError, run_group
from packrat_lab.profiling.spec import PointGroup
from packrat_lab.profiling.stopping import StoppingRule
from packrat_lab.profiling.table import Profile
from packrat_lab.settings import DEFAULT
from packrat_lab.workloads.backends.base import bf16_supported
from packrat_lab.workloads.backends.cache import CACHE_ENV
from packrat_lab.workloads.backends.names import resolve_choices
from packrat_lab.workloads.registry import get_workload

BATCHES = {"tiny-cnn": (1, 2, 4, 8), "resnet50": (1, 8), "bert": (1,)}


def cpu_flags() -> str:
    """The CPU flags that decide bf16 (as /proc/cpuinfo reports them)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    wanted = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni")
    return ", ".join(f"{f}={'yes' if f in flags else 'no'}" for f in wanted)


class LoadSampler:
    """The 1-minute load average every `every_s` seconds while a model runs: how noisy the host was."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _run(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> str:
        """'min / median / max over n samples' of the load average."""
        self._stop.set()
        self._thread.join()
        s = self.samples + [os.getloadavg()[0]]
        return f"{min(s):.2f} / {statistics.median(s):.2f} / {max(s):.2f} over {len(s)} samples"


def model_batches(model: str, args: argparse.Namespace) -> tuple[int, ...]:
    """Part 1's batches: the model's own, plus every plan batch and its half for an end-to-end model."""
    found = set(BATCHES.get(model, (1, 8)))
    if model in args.e2e_models:
        found |= set(args.plan_batches) | {b // 2 for b in args.plan_batches if b % 2 == 0}
    return tuple(sorted(found))


def measure_model(
    model: str, args: argparse.Namespace, cache: str
) -> tuple[Profile, dict[str, str], dict[str, float]]:
    """Part 1 for one model: alternating fresh processes; a Profile of per-round medians."""
    workload = get_workload(model)
    precisions = [p for p in args.precisions.split(",") if p != "bf16" or bf16_supported()]
    choices = tuple(c for c in resolve_choices(args.backends, precisions) if c.key not in args.skip)
    batches = model_batches(model, args)
    rule = StoppingRule(0.02, 5, args.max_samples, args.point_time)
    runs: dict[tuple[int, int, str], list[Measurement]] = {}
    failures: dict[str, str] = {}
    convert_first: dict[str, float] = {}
    convert_mb: dict[str, float] = {}  # peak RSS right after the first (uncached) conversion
    for rnd in range(args.rounds):
        for t in args.threads:
            for choice in choices:
                if choice.key in failures:
                    continue
                group = PointGroup(
                    workload.spec,
                    t,
                    batches,
                    DEFAULT,
                    assign_cores([t])[0],
                    rule,
                    warmup_min=2,
                    warmup_max=5,
                    backend=choice,
                    cache_dir=cache,
                )
                started = time.perf_counter()
                try:
                    got = run_group(group, timeout_s=args.group_timeout)
                except PointFailedError as exc:
                    failures[choice.key] = str(exc).split("; child stderr:")[0]
                    print(f"  {model} {choice.key}: FAILED {failures[choice.key]}", flush=True)
                    continue
                for m in got:
                    runs.setdefault((t, m.batch, choice.key), []).append(m)
                    if "convert_s" in m.meta and not m.meta.get("cache_hit", True):
                        convert_first.setdefault(choice.key, float(m.meta["convert_s"]))
                        if "convert_peak_rss_mb" in m.meta:
                            convert_mb.setdefault(choice.key, float(m.meta["convert_peak_rss_mb"]))
                print(
                    f"  round {rnd + 1} {model} t={t} {choice.key}: "
                    + ", ".join(f"b={m.batch} {m.median:.2f} ms" for m in got)
                    + f" ({time.perf_counter() - started:.0f} s)",
                    flush=True,
                )
    prof = Profile(
        model,
        [],
        {"default": DEFAULT},
        fingerprint(detect_host()),
        {"backend_failures": failures, "convert_peak_rss_mb": convert_mb},
    )
    for found in runs.values():
        first = found[0]
        medians = tuple(m.median for m in found)
        meta = dict(first.meta)
        meta["peak_rss_mb"] = max(float(m.meta.get("peak_rss_mb", 0.0)) for m in found)
        meta["round_medians_ms"] = list(medians)
        prof.add(
            Measurement(
                first.threads,
                first.batch,
                "default",
                medians,
                stop_reason="summary",
                meta=meta,
                backend=first.backend,
                precision=first.precision,
            )
        )
    return prof, failures, convert_first


def table(prof: Profile, convert_first: dict[str, float]) -> list[str]:
    """Markdown rows: one per (t, b, runtime)."""
    converted_mb: dict[str, float] = dict(prof.meta.get("convert_peak_rss_mb", {}))
    lines = [
        "| t | b | runtime | median ms (per round) | vs eager fp32 | max abs err | rel err | top-1 | within tol | conversion s | RSS after conversion MB | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in sorted(
        prof.measurements, key=lambda m: (m.threads, m.batch, m.backend_key != "eager", m.backend_key)
    ):
        eager = [
            o
            for o in prof.measurements
            if (o.threads, o.batch, o.backend_key) == (m.threads, m.batch, "eager")
        ]
        ratio = f"{eager[0].median / m.median:.2f}×" if eager else "—"
        acc = m.accuracy
        rounds = " / ".join(f"{v:.2f}" for v in m.meta.get("round_medians_ms", []))
        lines.append(
            f"| {m.threads} | {m.batch} | {m.backend_key} | {m.median:.2f} ({rounds}) | {ratio} | "
            + (f"{acc.max_abs:.2g} | {acc.max_rel:.3%} | " if acc else "— | — | ")
            + (f"{acc.top1:.0%} | " if acc and acc.top1 is not None else "— | ")
            + ("yes" if prof.admissible(m) else "**no**")
            + f" | {convert_first.get(m.backend_key, m.meta.get('convert_s', 0.0)):.2f} | "
            + (f"{converted_mb[m.backend_key]:.0f}" if m.backend_key in converted_mb else "—")
            + f" | {m.meta.get('peak_rss_mb', 0):.0f} |"
        )
    return lines


def end_to_end(model: str, prof: Profile, args: argparse.Namespace, cores: int) -> list[str]:
    """Part 2: best plan over all admissible runtimes vs eager fat, expected and validated in real pools."""
    from packrat_lab.optimizer import fat_plan, optimize
    from packrat_lab.validation import validate

    lines = [
        "| B | best plan (all runtimes) | expected ms | eager fat | expected ms | expected speedup | measured best ms | measured eager fat ms | measured speedup |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for batch in args.plan_batches:
        if batch not in prof.batches:
            continue
        try:
            best = optimize(prof, cores=cores, batch=batch, use_measured=False)
            fat = fat_plan(prof.only_backend("eager"), cores=cores, batch=batch)
        except Exception as exc:  # noqa: BLE001 - a missing point is reported, the rest goes on
            lines.append(f"| {batch} | {type(exc).__name__}: {exc} | | | | | | | |")
            continue
        best = type(best)(best.instances, best.expected_latency_ms, "best", best.meta)
        print(f"  validating B={batch}: {best.text} vs {fat.text}", flush=True)
        try:
            report = validate(model, [best, fat], repeats=args.repeats, rounds=2, baseline="fat")
        except Exception as exc:  # noqa: BLE001 - a plan that cannot be served is reported, the rest goes on
            lines.append(
                f"| {batch} | `{best.text}` | {best.expected_latency_ms or 0.0:.2f} | `{fat.text}` | "
                f"{fat.expected_latency_ms or 0.0:.2f} | | {type(exc).__name__}: {exc} | | |"
            )
            continue
        b_ms, f_ms = report.by_name("best").median_ms, report.by_name("fat").median_ms
        exp_best, exp_fat = best.expected_latency_ms or 0.0, fat.expected_latency_ms or 0.0
        lines.append(
            f"| {batch} | `{best.text}` | {exp_best:.2f} | `{fat.text}` | {exp_fat:.2f} | "
            f"{exp_fat / exp_best:.2f}× | {b_ms:.2f} | {f_ms:.2f} | {f_ms / b_ms:.2f}× |"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="tiny-cnn,resnet50,bert")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--backends", default="eager,torchscript,compile,onnxruntime,openvino")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--point-time", type=float, default=2.0)
    parser.add_argument("--max-samples", type=int, default=40)
    parser.add_argument("--plan-batches", default="1,2,4,8,16")
    parser.add_argument(
        "--skip", default="", help="runtime keys left out, e.g. compile-bf16 (to fit a time box)"
    )
    parser.add_argument(
        "--e2e-models", default=None, help="models with the end-to-end part (default: the first)"
    )
    parser.add_argument(
        "--group-timeout", type=float, default=None, help="seconds per process (default: the runner's)"
    )
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/results/backends.md")
    parser.add_argument("--append", action="store_true", help="add to --out (a second command's models)")
    args = parser.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    args.plan_batches = [int(b) for b in args.plan_batches.split(",") if b]
    args.skip = {k for k in args.skip.split(",") if k}
    models = args.models.split(",")
    args.e2e_models = models[:1] if args.e2e_models is None else [m for m in args.e2e_models.split(",") if m]
    cores = min(max(args.threads), detect_host().usable_cores)
    out = Path(args.out)
    cache = tempfile.mkdtemp(prefix="packrat-bench-cache-")  # fresh: the first conversion is really timed
    os.environ[CACHE_ENV] = cache  # validation pools load part 1's conversions instead of converting anew
    header = [
        "# Runtimes side by side (eager, TorchScript, torch.compile, ONNX Runtime, OpenVINO; fp32 and bf16)",
        "",
        host_description(),
        "",
        f"CPU flags: {cpu_flags()}; bf16 measured: {'yes' if bf16_supported() else 'no (no native bf16)'}.",
        "",
        "Command: `python " + " ".join(sys.argv) + "`",
        "",
        (
            "Each (model, t, runtime) ran in its own fresh pinned process per round, the runtimes alternating;"
            " the median column is the median over rounds of each process's median (per-round values in"
            " brackets). Errors are against eager fp32 on a seeded input (relative = max |Δ| / max |y|);"
            " 'within tol' applies the default accuracy_tol 1 %. Conversion is the first, uncached conversion"
            " (for compile: the first compiled call, at batch 2; every other batch size recompiles during"
            " warm-up) and the converting process's peak RSS right after it; peak RSS is the measuring"
            " process's after warm-up."
        ),
        "",
    ]
    if args.append:
        header = [f"Command: `python {' '.join(sys.argv)}` — {host_description()}", "", header[-2], ""]
    with out.open("a" if args.append else "w") as f:
        f.write("\n".join(header) + "\n")
    for model in models:
        started = time.perf_counter()
        print(f"{model} (load average {os.getloadavg()[0]:.2f})", flush=True)
        load_before = os.getloadavg()[0]
        sampler = LoadSampler()
        prof, failures, convert_first = measure_model(model, args, cache)
        part1_s = time.perf_counter() - started
        section = [
            f"## {model} (load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after)",
            "",
        ]
        section += table(prof, convert_first)
        if failures:
            section += ["", "Failed runtimes: " + "; ".join(f"{k2}: {v}" for k2, v in failures.items())]
        if model in args.e2e_models and args.plan_batches:
            section += [
                "",
                f"### End to end on {cores} cores: best plan over all admissible runtimes vs eager fat",
                "",
            ]
            section += end_to_end(model, prof, args, cores)
        section += [
            "",
            (
                f"Wall time: part 1 {part1_s:.0f} s, total {time.perf_counter() - started:.0f} s; "
                f"1-minute load average during {model} (min / median / max): {sampler.stop()}."
            ),
        ]
        with out.open("a") as f:
            f.write("\n".join(section) + "\n\n")
        print("\n".join(section), flush=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
