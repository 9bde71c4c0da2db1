"""Which cores each model of a fleet owns: disjoint shares that move as little as possible on a change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from packrat_lab.errors import InfeasiblePlanError
from packrat_lab.host import HostInfo, assign_cores
from packrat_lab.plan import Plan

__all__ = ["Shares", "check_fits", "place_in", "repartition", "share_host"]

Shares = dict[str, tuple[int, ...]]


def check_fits(needs: Mapping[str, int], host: HostInfo) -> None:
    """One-line InfeasiblePlanError when the models' cores add up to more than the host has."""
    total = sum(needs.values())
    usable = host.usable_cores
    if total > usable:
        parts = " + ".join(f"{name} {n}" for name, n in needs.items())
        msg = f"the fleet's plans need {parts} = {total} cores but this host has {usable} usable; example: plans whose threads sum to ≤ {usable}"
        raise InfeasiblePlanError(msg)


def _usable(host: HostInfo) -> list[int]:
    return list(host.primary_cpus[: host.usable_cores])


def repartition(current: Mapping[str, Sequence[int]], needs: Mapping[str, int], host: HostInfo) -> Shares:
    """New shares for `needs` (model -> cores): a shrinking model keeps a prefix of its cores, a
    growing one keeps all of its own and takes free ones (same NUMA node first), a new one takes
    free ones; so a switch never needs a core another model still holds after its own switch."""
    check_fits(needs, host)
    usable = _usable(host)
    held = {name: list(current.get(name, ())) for name in needs}
    out: Shares = {}
    for name, n in needs.items():
        if len(held[name]) >= n:
            out[name] = tuple(held[name][:n])
    taken = {c for cores in out.values() for c in cores} | {
        c for name, cores in held.items() if name not in out for c in cores
    }
    free = [c for c in usable if c not in taken]
    for name, n in needs.items():  # growing models: own cores first, then free ones near them
        if name in out:
            continue
        own = held[name]
        nodes = {host.node_of(c) for c in own}
        free.sort(key=lambda c: (host.node_of(c) not in nodes, c))
        grab, free = free[: n - len(own)], free[n - len(own) :]
        out[name] = tuple(own + grab)
    return {name: out[name] for name in needs}


def share_host(needs: Mapping[str, int], host: HostInfo) -> Shares:
    """First shares: biggest models first, each inside one NUMA node where it fits (assign_cores)."""
    check_fits(needs, host)
    names = list(needs)
    sets = assign_cores([needs[n] for n in names], host) if names else []
    return dict(zip(names, (tuple(s) for s in sets), strict=True))


def place_in(plan: Plan, cores: Sequence[int], host: HostInfo) -> Plan:
    """The plan with each instance pinned to cores inside `cores` (a model's share)."""
    if plan.total_threads > len(cores):
        msg = f"plan {plan.text!r} needs {plan.total_threads} cores but its share is {len(cores)} ({list(cores)}); example: a plan with threads summing to ≤ {len(cores)}"
        raise InfeasiblePlanError(msg)
    inside = replace(host, affinity=tuple(cores), quota_cpus=None)
    return plan.with_cores(assign_cores([i.threads for i in plan.instances], inside))
