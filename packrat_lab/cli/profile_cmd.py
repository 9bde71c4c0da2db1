"""`packrat-lab profile MODEL`: measure L[t][b] on this host, show a summary, save the profile."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packrat_lab.cli.args import batch_list, positive_float, positive_int
from packrat_lab.cli.model_args import MODEL_HELP, add_model_arguments, model_options

if TYPE_CHECKING:
    from packrat_lab.profiling.measurement import Measurement
    from packrat_lab.profiling.table import Profile

__all__ = ["register", "run", "summary_table"]


def _names(text: str, valid: Collection[str] | None, msg: str) -> list[str]:
    """The comma-separated names in `text` (each in `valid` unless None); ArgumentTypeError(msg) if not."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names or (valid is not None and any(n not in valid for n in names)):
        raise argparse.ArgumentTypeError(msg)
    return names


def _settings(text: str) -> list[str]:
    """argparse type for 'default,passive'."""
    return _names(text, None, f"{text!r} names no setting; example: default,passive")


def _backends(text: str) -> list[str]:
    """argparse type for 'eager,onnxruntime,openvino' (names checked here, one line on error)."""
    from packrat_lab.workloads.backends.names import BACKENDS

    msg = f"{text!r} names no known backend; valid: {', '.join(BACKENDS)}; example: eager,onnxruntime"
    return _names(text, BACKENDS, msg)


def _precision(text: str) -> float | list[str]:
    """'fp32,bf16' picks numeric precisions; a number keeps its old meaning (the CI target, as --target-precision)."""
    from packrat_lab.workloads.backends.names import PRECISIONS

    try:
        return positive_float("0.02")(text)
    except argparse.ArgumentTypeError:
        pass
    msg = f"{text!r} is no precision; valid: {', '.join(PRECISIONS)}; example: --precision fp32,bf16"
    return _names(text, PRECISIONS, msg)


def register(subparsers: Any) -> None:
    """Add the `profile` subcommand."""
    p = subparsers.add_parser(
        "profile",
        help="measure a model's latency for every threads × batch × runtime setting",
        description="Measure each (threads, batch, setting) point in a fresh pinned process and save the profile.",
    )
    p.add_argument("model", help=MODEL_HELP)
    add_model_arguments(p)
    p.add_argument(
        "--cores", type=positive_int, default=None, help="profile threads 1..N (default: all usable cores)"
    )
    p.add_argument(
        "--threads", type=batch_list, default=None, metavar="T,T", help="exact thread counts, e.g. 1,2,4"
    )
    p.add_argument(
        "--batch",
        type=batch_list,
        default=None,
        metavar="B,B",
        help="batch sizes, e.g. 1,2,4,8 (default: powers of two up to --max-batch)",
    )
    p.add_argument(
        "--max-batch", type=positive_int, default=16, help="largest power-of-two batch (default 16)"
    )
    p.add_argument(
        "--settings",
        type=_settings,
        default=None,
        metavar="S,S",
        help="runtime settings, e.g. default,passive (default: both)",
    )
    p.add_argument(
        "--point-time",
        type=positive_float("10"),
        default=10.0,
        metavar="S",
        help="time cap per point in seconds (default 10)",
    )
    p.add_argument(
        "--time-budget",
        type=positive_float("10"),
        default=None,
        metavar="S",
        help="stop starting new points after S seconds",
    )
    p.add_argument(
        "--backends",
        type=_backends,
        default=None,
        metavar="B,B",
        help="runtimes to measure: eager, torchscript, compile, onnxruntime, openvino (default: eager)",
    )
    p.add_argument(
        "--precision",
        type=_precision,
        default=None,
        metavar="P,P",
        help="numeric precisions: fp32, bf16 (default fp32; a number here is the old --target-precision)",
    )
    p.add_argument(
        "--accuracy-tol",
        type=positive_float("0.01"),
        default=None,
        metavar="REL",
        help="relative error vs eager fp32 beyond which a runtime is excluded (default 0.01)",
    )
    p.add_argument(
        "--cache-dir", default=None, metavar="DIR", help="conversion cache (default ~/.cache/packrat_lab)"
    )
    p.add_argument(
        "--target-precision",
        type=positive_float("0.02"),
        default=0.02,
        help="target half-width of the median's 95%% CI (default 0.02)",
    )
    p.add_argument(
        "--seq-len",
        type=positive_int,
        default=None,
        help="sequence length for bert/gpt2 or a Hugging Face text model",
    )
    p.add_argument(
        "--torchscript",
        action="store_true",
        help="profile the TorchScript-traced model (as the Packrat paper did)",
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="FILE",
        help="save the profile as JSON (name it NAME.packrat.json to open it in JupyterLab's profile viewer)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Profile with a tqdm bar, print the summary, save if asked."""
    from tqdm.auto import tqdm

    from packrat_lab.profiling.profiler import profile
    from packrat_lab.workloads.backends.accuracy import DEFAULT_ACCURACY_TOL

    options: dict[str, Any] = model_options(args)
    numeric = args.precision if isinstance(args.precision, list) else None
    target = args.precision if isinstance(args.precision, float) else args.target_precision
    if args.seq_len is not None:
        options["seq_len"] = args.seq_len
    bar: Any = None

    def progress(done: int, total: int, m: Measurement) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=f"profile {args.model}", unit="point", file=sys.stderr)
        bar.set_postfix_str(f"t={m.threads} b={m.batch} {m.setting} {m.backend_key} {m.median:.2f} ms")
        bar.update(done - bar.n)

    try:
        result = profile(
            args.model,
            cores=args.cores,
            threads=args.threads,
            batches=args.batch,
            max_batch=args.max_batch,
            settings=args.settings,
            point_time_s=args.point_time,
            time_budget_s=args.time_budget,
            precision=target,
            progress=progress,
            torchscript=args.torchscript,
            backends=args.backends,
            precisions=numeric,
            accuracy_tol=DEFAULT_ACCURACY_TOL if args.accuracy_tol is None else args.accuracy_tol,
            cache_dir=args.cache_dir,
            **options,
        )
    finally:
        if bar is not None:
            bar.close()
    print(summary_table(result))
    path = result.save(args.output or default_output(result.model))
    print(f"saved {path.resolve()} (next: packrat-lab plan {path} --cores T --batch B)")
    return 0


def default_output(model: str) -> Path:
    """./MODEL.packrat.json for a profile saved without -o (file-safe, never overwriting another model's)."""
    name = Path(model).name
    name = Path(name).stem if name.endswith((".pt", ".pth")) else name
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "model"
    return Path(f"{stem}.packrat.json")


def summary_table(result: Profile) -> str:
    """Best median latency per threads × batch, the winning setting (and backend), '*' where noisy."""
    if not result.measurements:
        return f"{result.model}: no points measured"
    header = ["threads \\ batch", *(str(b) for b in result.batches)]
    rows = [header]
    for t in result.threads:
        row = [str(t)]
        for b in result.batches:
            if not result.points(t, b):
                row.append("-")
                continue
            best = result.best(t, b)
            mark = "*" if best.noisy else ""
            runtime = "" if best.backend_key == "eager" else f" {best.backend_key}"
            row.append(f"{best.median:.2f} {best.setting}{runtime}{mark}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    meta = result.meta
    notes = [f"{result.model}: best median latency in ms (winning runtime setting and backend), * = noisy"]
    notes.append(f"{meta.get('points', len(result.measurements))} points in {meta.get('wall_s', 0):.1f} s")
    if meta.get("stopped"):
        notes[-1] += f", stopped early ({meta['stopped']})"
    return "\n".join([notes[0], *lines, notes[1], *backend_lines(result)])


def backend_lines(result: Profile) -> list[str]:
    """One line per runtime other than eager fp32: its error against eager fp32, admitted or why not."""
    if result.backends == ["eager"] and not result.meta.get("backend_failures"):
        return []
    accuracy = result.backend_accuracy()
    excluded = result.excluded_backends()
    lines = [f"runtimes vs eager fp32 (accuracy_tol {result.accuracy_tol:g}):"]
    for key in sorted(set(result.backends) | set(excluded)):
        if key == "eager":
            continue
        found = accuracy.get(key)
        error = "" if found is None else f"{found.describe()}; "
        verdict = f"EXCLUDED ({excluded[key]})" if key in excluded else "admitted"
        lines.append(f"  {key}: {error}{verdict}")
    return lines
