"""Plain JSON views for the sidebar and the profile viewer: a pool's or fleet's status, a profile's surface and plan map."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from packrat_lab.registry import PoolEntry

if TYPE_CHECKING:
    from packrat_lab.profiling.table import Profile

__all__ = ["fleet_view", "pool_view", "profile_view", "slo_view", "strip_secrets"]

_SECRET_KEYS = frozenset({"token", "authorization", "auth", "secret"})


def strip_secrets(value: Any) -> Any:
    """A copy of JSON data without any key that could carry a credential."""
    if isinstance(value, Mapping):
        return {k: strip_secrets(v) for k, v in value.items() if str(k).lower() not in _SECRET_KEYS}
    if isinstance(value, list):
        return [strip_secrets(v) for v in value]
    return value


def _number(data: Mapping[str, Any], *keys: str) -> float | None:
    """The first finite number found under any of `keys` (pools name their stats differently)."""
    for key in keys:
        value = data.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def _instances(plan: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """One row per instance (threads, batch, cores, setting, backend) from a Plan.to_dict()-shaped object."""
    if not plan:
        return []
    rows = plan.get("all_instances")
    if isinstance(rows, list) and rows:
        return [
            {
                "threads": int(r.get("threads", 0)),
                "batch": int(r.get("batch", 0)),
                "cores": [int(c) for c in r.get("cores", []) or []],
                "setting": (r.get("setting") or {}).get("name", "default")
                if isinstance(r.get("setting"), Mapping)
                else str(r.get("setting") or "default"),
                "backend": str(r.get("backend") or "eager"),
            }
            for r in rows
            if isinstance(r, Mapping)
        ]
    grouped = plan.get("instances")
    if isinstance(grouped, list):
        return [
            {
                "threads": int(r["threads"]),
                "batch": int(r["batch"]),
                "cores": [],
                "setting": str(r.get("setting", "default")),
                "backend": str(r.get("backend", "eager")),
            }
            for r in grouped
            if isinstance(r, Mapping)
            for _ in range(int(r.get("count", 1)))
        ]
    return []


def _plan_object(plan_json: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The plan dict inside a `GET /packrat/plan` answer (bare, or under 'plan' / 'current')."""
    if not plan_json:
        return None
    for key in ("plan", "current"):
        inner = plan_json.get(key)
        if isinstance(inner, Mapping):
            return inner
    return plan_json


def pool_view(
    entry: PoolEntry,
    plan_json: Mapping[str, Any] | None,
    stats_json: Mapping[str, Any] | None,
    error: str | None = None,
    host_cores: int | None = None,
) -> dict[str, Any]:
    """What the sidebar shows for one pool (host_cores sizes its core map); never contains the token."""
    stats = stats_json or {}
    plan = _plan_object(plan_json)
    text = str(plan.get("plan") or plan.get("text") or entry.plan) if plan else entry.plan
    state = str(
        stats.get("state") or (plan_json or {}).get("state") or ("unreachable" if error else "unknown")
    )
    instances = _instances(plan)
    if not instances:
        try:
            from packrat_lab.plan import Plan

            instances = _instances(Plan.parse(text).to_dict())
        except ValueError:
            instances = []
    return {
        **entry.public(),
        "name": str(stats.get("name") or ""),
        "plan": text,
        "display": str(plan.get("display", "")) if plan else "",
        "instances": instances,
        "state": state,
        "throughput": _number(stats, "throughput_rps", "throughput", "samples_per_s"),
        "p50_ms": _number(stats, "p50_ms", "latency_p50_ms", "median_ms"),
        "p99_ms": _number(stats, "p99_ms", "latency_p99_ms"),
        "cores": _number(stats, "usable_cores") or host_cores,
        "auto": stats.get("auto") if isinstance(stats.get("auto"), bool) else None,
        "estimated_batch": _number(stats, "estimated_batch"),
        "reconfigurations": _number(stats, "reconfigurations"),
        "slo": slo_view(stats),
        "reachable": error is None,
        "error": error,
        "stats": strip_secrets(dict(stats)),
    }


_SLO_KEYS = ("slo_ms", "slo_attainment", "goodput_rps", "rejected", "dropped", "late")


def slo_view(stats: Mapping[str, Any]) -> dict[str, float | None]:
    """The latency-objective figures of Pool.stats() (attainment a fraction of offered, goodput in req/s).

    All None when the pool has no objective: no default `slo_ms` and no request offered with a
    deadline (goodput would then just be the throughput, and the counters mean nothing).
    """
    if _number(stats, "slo_ms") is None and _number(stats, "slo_attainment") is None:
        return dict.fromkeys(_SLO_KEYS)
    return {key: _number(stats, key) for key in _SLO_KEYS}


def _member_instances(plan_json: Mapping[str, Any] | None, text: str) -> list[dict[str, Any]]:
    """A fleet member's instances with their cores (from its plan route), else from its plan text."""
    instances = _instances(_plan_object(plan_json))
    if instances:
        return instances
    try:
        from packrat_lab.plan import Plan

        return _instances(Plan.parse(text).to_dict())
    except ValueError:
        return []


def _cores(value: Any) -> list[int]:
    return (
        [int(c) for c in value if isinstance(c, int) and not isinstance(c, bool)]
        if isinstance(value, list)
        else []
    )


def fleet_view(
    entry: PoolEntry,
    fleet_json: Mapping[str, Any] | None,
    stats_json: Mapping[str, Any] | None,
    plans: Mapping[str, Mapping[str, Any] | None],
    error: str | None = None,
) -> dict[str, Any]:
    """What the sidebar shows for a fleet: one card, a core map and stats per member model.

    `fleet_json` is `GET /packrat/fleet`, `stats_json` `GET /packrat/fleet/stats`, `plans` each
    model's `GET /packrat/models/{m}/plan`; unreachable, the registry's last core map stands in.
    """
    models = (fleet_json or {}).get("models")
    if not isinstance(models, Mapping):  # fleet not reachable: the announcement's core map
        models = {str(m.get("name")): m for m in entry.members if isinstance(m, Mapping) and m.get("name")}
    stats_all = stats_json or {}
    members: list[dict[str, Any]] = []
    for name, info in models.items():
        info = info if isinstance(info, Mapping) else {}
        stats = stats_all.get(name)
        stats = stats if isinstance(stats, Mapping) else {}
        text = str(info.get("plan") or stats.get("plan") or "")
        cores = _cores(info.get("cores")) or _cores(stats.get("cores"))
        members.append(
            {
                "name": str(name),
                "model": str(info.get("model") or stats.get("model") or name),
                "plan": text,
                "state": "unreachable"
                if fleet_json is None  # the announced states are stale
                else str(stats.get("state") or info.get("state") or "unknown"),
                "cores": cores,
                "instances": _member_instances(plans.get(str(name)), text),
                "served": _number(stats, "served"),
                "throughput": _number(stats, "throughput_rps"),
                "p50_ms": _number(stats, "p50_ms"),
                "p99_ms": _number(stats, "p99_ms"),
                "reconfigurations": _number(stats, "reconfigurations"),
                "slo": slo_view(stats),
            }
        )
    groups_raw = (fleet_json or {}).get("groups")
    groups = [
        {
            "name": str(n),
            "policy": str(g.get("policy", "")),
            "members": [str(m) for m in g.get("members", [])],
        }
        for n, g in (groups_raw.items() if isinstance(groups_raw, Mapping) else ())
        if isinstance(g, Mapping)
    ]
    host_cores = _cores((fleet_json or {}).get("host_cores")) or sorted(
        {c for m in members for c in m["cores"]}
    )
    throughputs = [m["throughput"] for m in members if m["throughput"] is not None]
    p99s = [m["p99_ms"] for m in members if m["p99_ms"] is not None]
    states = [m["state"] for m in members]
    state = next((s for s in states if s not in ("serving", "switching")), "serving") if states else "unknown"
    return {
        **entry.public(),
        "kind": "fleet",
        "name": "",  # the title is the registry's "fleet: a, b"
        "plan": " ".join(f"{m['name']}={m['plan']}" for m in members) or entry.plan,
        "display": "",
        "instances": [],
        "state": "unreachable" if fleet_json is None else state,
        "throughput": sum(throughputs) if throughputs else None,
        "p50_ms": None,
        "p99_ms": max(p99s) if p99s else None,
        "cores": len(host_cores) or None,
        "auto": None,
        "estimated_batch": None,
        "reconfigurations": sum(m["reconfigurations"] or 0 for m in members),
        "slo": dict.fromkeys(_SLO_KEYS),
        "members": members,
        "groups": groups,
        "host_cores": host_cores,
        "reachable": error is None,
        "error": error,
    }


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _plan_map(profile: Profile, cores: int) -> tuple[list[dict[str, Any]], str | None]:
    """The optimizer's best plan at each profiled B on `cores` cores (empty with a note if it cannot)."""
    try:
        from packrat_lab.optimizer import solve_table
    except ImportError as exc:  # pragma: no cover - the optimizer ships with the package
        return [], f"optimizer unavailable: {exc}"
    from packrat_lab.errors import ProfileMissingPointError
    from packrat_lab.plots.plans import plan_map_info

    try:
        plans = solve_table(profile, cores, max(profile.batches)).best_by_batch(cores, profile.batches)
    except (ValueError, ArithmeticError) as exc:  # e.g. cores beyond what the profile measured
        return [], f"no plan map: {exc}"
    if not plans:
        return [], "no feasible plan at any profiled batch"
    grid = profile.grid()
    fat = {}
    for b in profile.batches:
        try:
            fat[b] = grid.lookup(cores, b)[0]
        except ProfileMissingPointError:
            continue
    info = plan_map_info(plans, fat)
    rows = [
        {
            "batch": r.batch,
            "config": r.config,
            "plan": r.plan_text,
            "instances": r.instances,
            "expected_ms": r.expected_ms,
            "fat_ms": r.fat_ms,
            "speedup": r.speedup,
        }
        for r in info.rows
    ]
    return rows, None


def _matrix(values: Any, convert: Any) -> list[list[Any]]:
    return [[convert(v) for v in row] for row in values]


def profile_view(profile: Profile, *, path: str = "", cores: int | None = None) -> dict[str, Any]:
    """The profile viewer's data: latency surface (null where not measured) and the plan map."""
    from packrat_lab.host import fingerprint, fingerprint_differences
    from packrat_lab.plots.surface import surface_info

    info = surface_info(profile)
    cores = int(cores or profile.max_threads)
    rows, note = _plan_map(profile, cores) if profile.measurements else ([], "empty profile")
    noisy: Sequence[tuple[int, int]] = info.noisy_points
    return {
        "path": path,
        "model": profile.model,
        "statistic": info.statistic,
        "threads": [int(t) for t in info.threads],
        "batches": [int(b) for b in info.batches],
        "latency_ms": _matrix(info.latency_ms, lambda v: None if math.isnan(v) else _finite(v)),
        "setting": _matrix(info.setting, str),
        "noisy": [[int(t), int(b)] for t, b in noisy],
        "cores": cores,
        "plan_map": rows,
        "plan_map_note": note,
        # measured elsewhere: its latencies (and so its plans) may not hold on this host
        "host_differences": fingerprint_differences(profile.host, fingerprint()) if profile.host else [],
    }
