"""The DP proposes, measurement disposes: run the best candidates for real and keep the fastest.

Isolated profile points miss what co-running instances do to each other (shared caches, memory
bandwidth), and that gap is often larger than the gap between near-optimal plans. So the top k
candidates by expected latency, plus fat, are served for real with their instances together; what
they measure is cached in the profile (keyed by the whole configuration) for later plans.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from packrat_lab.errors import ProfileMissingPointError
from packrat_lab.optimizer.baselines import fat_plan
from packrat_lab.optimizer.candidates import candidate_plans, setting_variants
from packrat_lab.plan import Plan, parse_plan
from packrat_lab.profiling.corun import CoRunMeasurement
from packrat_lab.profiling.table import Profile
from packrat_lab.validation import config_key

__all__ = ["MeasureFn", "choose_by_measurement", "measured_best"]

# plans -> {config_key: batch latencies in ms}, instances running together (validation.measure_plans)
MeasureFn = Callable[[Sequence[Plan]], Mapping[str, Sequence[float]]]


def _default_measure(profile: Profile, model: Any, repeats: int, rounds: int) -> MeasureFn:
    """Measure through real serving pools, plans alternated over `rounds`."""

    def measure(plans: Sequence[Plan]) -> Mapping[str, Sequence[float]]:
        from packrat_lab.validation import measure_plans
        from packrat_lab.workloads.registry import workload_of_profile

        workload = model if model is not None else workload_of_profile(profile)
        return measure_plans(workload, plans, repeats=repeats, rounds=rounds)

    return measure


def choose_by_measurement(
    profile: Profile,
    dp_plan: Plan,
    cores: int,
    batch: int,
    top: int,
    *,
    all_cores: bool = False,
    statistic: str = "median",
    measure: MeasureFn | None = None,
    model: Any = None,
    repeats: int = 5,
    rounds: int = 2,
) -> Plan:
    """Measure the `top` candidates by expected latency, the DP plan under each other setting, and fat.

    Configurations already in the profile's co-run cache are not measured again; the fastest wins.
    """
    if top < 1:
        msg = f"measure_top must be at least 1 candidate, got {top!r}; example: optimize(profile, 2, 8, measure_top=3)"
        raise ValueError(msg)
    contenders = candidate_plans(
        profile, cores, batch, dp_plan=dp_plan, all_cores=all_cores, statistic=statistic, limit=top
    )
    contenders += setting_variants(profile, dp_plan, statistic)
    try:
        contenders.append(fat_plan(profile, cores, batch, statistic=statistic))
    except ProfileMissingPointError:  # no fat point measured: compare the candidates only
        pass
    distinct = {config_key(p): p for p in reversed(contenders)}  # earlier (better-ranked) names win
    missing = [p for key, p in distinct.items() if key not in profile.corun]
    if missing:
        run = measure or _default_measure(profile, model, repeats, rounds)
        measured = run(missing)
        for plan in missing:
            samples = tuple(float(s) for s in measured[config_key(plan)])
            profile.record_corun(
                CoRunMeasurement(config_key(plan), plan.text, batch, samples, plan.expected_latency_ms)
            )
    return _fastest(profile, list(distinct.values()), dp_plan, chosen_by="measurement")


def _fastest(profile: Profile, plans: list[Plan], dp_plan: Plan, chosen_by: str) -> Plan:
    """The plan whose cached co-run median is lowest, with every contender's figures on its meta."""
    by_config = {config_key(p): p for p in plans}
    rows: list[dict[str, Any]] = sorted(
        (
            {
                "plan": p.text,
                "name": p.name,
                "expected_ms": p.expected_latency_ms,
                "measured_ms": profile.corun[key].median_ms,
                "samples": len(profile.corun[key].samples_ms),
                "config": key,
            }
            for key, p in by_config.items()
        ),
        key=lambda r: (r["measured_ms"], r["config"]),
    )
    best = by_config[rows[0]["config"]]
    meta = {
        **dict(best.meta),
        "chosen_by": chosen_by,
        "chosen_from": best.name,
        "expected_ms": best.expected_latency_ms,
        "measured_ms": rows[0]["measured_ms"],
        "dp_plan": dp_plan.text,
        "dp_expected_ms": dp_plan.expected_latency_ms,
        "candidates": rows,
    }
    return replace(best, name="packrat", meta=meta)


def measured_best(
    profile: Profile, dp_plan: Plan, cores: int, batch: int, all_cores: bool = False
) -> Plan | None:
    """The fastest cached co-run configuration for (cores, B) when the DP's own plan is among them, else None."""
    fits = [
        m
        for m in profile.coruns(batch)
        if (threads := parse_plan(m.plan).total_threads) <= cores and (threads == cores or not all_cores)
    ]
    if config_key(dp_plan) not in {m.config for m in fits}:
        return None
    plans = [_plan_of(profile, m) for m in fits]
    return _fastest(profile, plans, dp_plan, chosen_by="cached co-run measurement")


def _plan_of(profile: Profile, measurement: CoRunMeasurement) -> Plan:
    """Rebuild a cached configuration's plan, settings resolved against the profile's."""
    plan = parse_plan(measurement.plan).with_settings(profile.settings)
    expected = measurement.expected_ms
    return replace(
        plan,
        expected_latency_ms=None if expected is None or math.isnan(expected) else expected,
        name="cached",
    )
