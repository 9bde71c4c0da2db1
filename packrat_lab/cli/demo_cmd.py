"""`packrat-lab demo`: the headless main job: profile a small model here, plan, validate, write report.html."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from packrat_lab.cli.args import batch_list, positive_float, positive_int

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the `demo` subcommand."""
    p = subparsers.add_parser(
        "demo",
        help="profile a small built-in model on this host, plan it against fat/thin/homogeneous, validate, write report.html",
        description="The headless main job for machines without a browser: a short profile of a small zoo model on "
        "this host's cores, the Packrat plan against the baselines for a few batch sizes, a real validation run, "
        "and a standalone HTML report.",
    )
    p.add_argument("--model", default="mlp", help="zoo model (default mlp; tiny-cnn is also quick)")
    p.add_argument(
        "--out",
        default="packrat-demo",
        metavar="DIR",
        help="folder for profile.packrat.json and report.html (default ./packrat-demo)",
    )
    p.add_argument(
        "--cores", type=positive_int, default=None, help="cores T to use (default: all usable cores)"
    )
    p.add_argument(
        "--batch",
        type=batch_list,
        default=[1, 2, 4, 8],
        metavar="B,B",
        help="per-instance batch sizes to profile (default 1,2,4,8)",
    )
    p.add_argument(
        "--plan-batch",
        type=batch_list,
        default=None,
        metavar="B,B",
        help="total batches B to plan for (default: 4,8,16)",
    )
    p.add_argument(
        "--point-time",
        type=positive_float("1.0"),
        default=1.0,
        metavar="S",
        help="time cap per profile point (default 1 s)",
    )
    p.add_argument(
        "--time-budget",
        type=positive_float("1.0"),
        default=90.0,
        metavar="S",
        help="stop profiling after S seconds (default 90)",
    )
    p.add_argument(
        "--settings",
        default="default,passive",
        metavar="S,S",
        help="runtime settings to profile (default default,passive)",
    )
    p.add_argument("--no-validate", action="store_true", help="skip measuring the plans for real")
    p.set_defaults(func=run)


def _say(text: str) -> None:
    print(text, flush=True)


def _plan_tables(profile: Any, cores: int, batches: list[int]) -> dict[int, list[Any]]:
    """Plan vs baselines per B, printed as tables; B values the profile cannot serve are skipped with a note."""
    from packrat_lab.cli.plan_cmd import format_table
    from packrat_lab.comparison import compare_plans, comparison_rows
    from packrat_lab.errors import PackratError

    found: dict[int, list[Any]] = {}
    for batch in batches:
        try:
            plans = compare_plans(profile, cores, batch)
        except PackratError as exc:
            _say(f"B={batch}: no plan ({str(exc).splitlines()[0]})")
            continue
        found[batch] = plans
        _say(format_table(comparison_rows(plans), cores, batch))
        _say("")
    return found


def _validation_batch(tables: dict[int, list[Any]]) -> int:
    """The largest B where the plan differs from a fat baseline (the interesting comparison), else the largest B."""

    def interesting(plans: list[Any]) -> bool:
        fat = next((p for p in plans if p.name == "fat"), None)
        return fat is not None and plans[0].text != fat.text

    candidates = [b for b, plans in tables.items() if interesting(plans)]
    return max(candidates or tables)


def _validate(model: str, plans: list[Any]) -> Any:
    """Measure the plans for real when validation and the pool exist; None (and why) otherwise."""
    missing = [
        m
        for m in ("packrat_lab.validation", "packrat_lab.serving.pool")
        if importlib.util.find_spec(m) is None
    ]
    if missing:
        _say(f"validation skipped: {', '.join(missing)} not available in this install")
        return None
    from packrat_lab import validate

    unique: dict[str, Any] = {}
    for plan in plans:  # the same plan twice measures nothing new; the first name (packrat) is kept
        unique.setdefault(plan.text, plan)
    report = validate(
        model, list(unique.values()), repeats=10, warmup=2, progress=lambda line: _say(f"  {line}")
    )
    _say(report.to_markdown())
    return report


def run(args: argparse.Namespace) -> int:
    """Profile, plan, validate, report; prints each step and where it wrote."""
    from packrat_lab.cli.profile_cmd import summary_table
    from packrat_lab.host import detect_host
    from packrat_lab.profiling.profiler import profile
    from packrat_lab.report import write_report

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cores = args.cores or detect_host().usable_cores
    _say(
        f"packrat-lab demo: profiling {args.model} on {cores} cores, batches {args.batch}, "
        f"≤{args.point_time:g} s per point, budget {args.time_budget:g} s"
    )

    def progress(done: int, total: int, m: Any) -> None:
        _say(
            f"  [{done}/{total}] t={m.threads} b={m.batch} {m.setting}: {m.median:.2f} ms{' (noisy)' if m.noisy else ''}"
        )

    result = profile(
        args.model,
        cores=cores,
        batches=args.batch,
        settings=args.settings,
        point_time_s=args.point_time,
        time_budget_s=args.time_budget,
        progress=progress,
    )
    if not result.measurements:
        msg = f"no point finished within --time-budget {args.time_budget:g}; example: --time-budget 120"
        raise ValueError(msg)
    _say(summary_table(result))
    profile_path = result.save(out / "profile.packrat.json")
    _say(f"saved {profile_path}\n")

    plan_batches = args.plan_batch or [4, 8, 16]
    tables = _plan_tables(result, cores, plan_batches)
    measured = None
    if tables and not args.no_validate:
        batch = _validation_batch(tables)
        _say(f"validating the plans for B={batch} (each in its own pool, instances running together):")
        measured = _validate(args.model, tables[batch])
    report_batch = (measured.batch if measured is not None else _validation_batch(tables)) if tables else None
    path = write_report(result, out / "report.html", cores=cores, batch=report_batch, measured=measured)
    _say(f"\nwrote {path.resolve()}")
    _say(f"open it in a browser, or run: packrat-lab report {profile_path} -o other.html")
    sys.stdout.flush()
    return 0
