"""What this host lets us use: CPUs from affinity and cgroup quota, SMT siblings, NUMA nodes."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from packrat_lab.errors import InfeasiblePlanError

__all__ = ["HostInfo", "assign_cores", "detect_host", "fingerprint", "require_cores", "usable_core_count"]

SYS_CPU = Path("/sys/devices/system/cpu")
SYS_NODE = Path("/sys/devices/system/node")


def parse_cpu_list(text: str) -> list[int]:
    """Parse the kernel's cpulist format, e.g. '0-3,8,10-11'."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            cpus.extend(range(int(lo), int(hi) + 1))
        else:
            cpus.append(int(part))
    return cpus


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the cgroup v2 `cpu.max` quota (or v1 cfs files); None when unlimited."""
    v2 = root / "cpu.max"
    try:
        if v2.exists():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1q, v1p = root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"
        if v1q.exists() and v1p.exists():
            quota_us = int(v1q.read_text())
            return None if quota_us <= 0 else quota_us / int(v1p.read_text())
    except (OSError, ValueError):
        return None
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class HostInfo:
    """A snapshot of the CPUs this process may use and how they are arranged."""

    cpu_model: str
    affinity: tuple[int, ...]
    quota_cpus: float | None
    siblings: dict[int, tuple[int, ...]] = field(default_factory=dict)
    numa_nodes: dict[int, tuple[int, ...]] = field(default_factory=dict)

    @property
    def usable_cores(self) -> int:
        """Cores one can pin threads to without oversubscribing: affinity capped by quota."""
        count = len(self.primary_cpus)
        if self.quota_cpus is not None:
            count = min(count, max(1, math.floor(self.quota_cpus)))
        return count

    @property
    def primary_cpus(self) -> tuple[int, ...]:
        """One logical CPU per physical core (SMT siblings skipped), in affinity order."""
        seen: set[int] = set()
        out = []
        for cpu in self.affinity:
            if cpu in seen:
                continue
            out.append(cpu)
            seen.update(self.siblings.get(cpu, (cpu,)))
        return tuple(out)

    def node_of(self, cpu: int) -> int:
        """NUMA node of a CPU (0 when unknown)."""
        for node, cpus in self.numa_nodes.items():
            if cpu in cpus:
                return node
        return 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "cpu_model": self.cpu_model,
            "affinity": list(self.affinity),
            "quota_cpus": self.quota_cpus,
            "usable_cores": self.usable_cores,
            "numa_nodes": {str(k): list(v) for k, v in self.numa_nodes.items()},
        }


def detect_host() -> HostInfo:
    """Read affinity, cgroup quota, SMT siblings and NUMA nodes of the running process."""
    affinity = tuple(sorted(os.sched_getaffinity(0)))
    siblings: dict[int, tuple[int, ...]] = {}
    for cpu in affinity:
        text = _read(SYS_CPU / f"cpu{cpu}" / "topology" / "thread_siblings_list")
        siblings[cpu] = tuple(parse_cpu_list(text)) if text else (cpu,)
    nodes: dict[int, tuple[int, ...]] = {}
    if SYS_NODE.exists():
        for node_dir in sorted(SYS_NODE.glob("node[0-9]*")):
            text = _read(node_dir / "cpulist")
            if text:
                cpus = tuple(c for c in parse_cpu_list(text) if c in affinity)
                if cpus:
                    nodes[int(node_dir.name[4:])] = cpus
    if not nodes:
        nodes = {0: affinity}
    return HostInfo(_cpu_model(), affinity, cgroup_cpu_quota(), siblings, nodes)


def usable_core_count() -> int:
    """How many cores plans on this host may use."""
    return detect_host().usable_cores


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def require_cores(cores: int, host: HostInfo | None = None) -> int:
    """Check a requested core count against this host: a clear error, never silent oversubscription."""
    host = host or detect_host()
    usable = host.usable_cores
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        msg = f"cores must be a positive integer, got {cores!r}; example: cores={usable}"
        raise ValueError(msg)
    if cores > usable:
        msg = f"cores={cores} is more than the {usable} usable cores of this host; example: cores={usable}"
        raise InfeasiblePlanError(msg)
    return cores


def fingerprint(host: HostInfo | None = None) -> dict[str, Any]:
    """What makes latencies comparable: CPU model, usable cores, torch version."""
    host = host or detect_host()
    return {
        "cpu_model": host.cpu_model,
        "usable_cores": host.usable_cores,
        "machine": platform.machine(),
        "torch": _package_version("torch"),
        "python": platform.python_version(),
    }


def fingerprint_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Keys on which two fingerprints disagree, as 'key: a != b' strings."""
    keys = ("cpu_model", "usable_cores", "machine", "torch")
    return [f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]


def assign_cores(threads: Sequence[int], host: HostInfo | None = None) -> list[tuple[int, ...]]:
    """Disjoint core sets, one per instance, each inside one NUMA node where it fits."""
    host = host or detect_host()
    need = sum(threads)
    if need > host.usable_cores:
        msg = (
            f"plan needs {need} cores but this host has {host.usable_cores} usable "
            f"(affinity {len(host.affinity)}, quota {host.quota_cpus}); example: a plan whose threads sum to ≤ {host.usable_cores}"
        )
        raise InfeasiblePlanError(msg)
    usable = host.primary_cpus[: host.usable_cores]
    free: dict[int, list[int]] = {}
    for cpu in usable:
        free.setdefault(host.node_of(cpu), []).append(cpu)
    order = sorted(range(len(threads)), key=lambda k: -threads[k])  # big instances first
    result: list[tuple[int, ...]] = [() for _ in threads]
    for k in order:
        t = threads[k]
        fitting = [n for n, cpus in free.items() if len(cpus) >= t]
        if fitting:
            node = min(fitting, key=lambda n: len(free[n]))  # best fit keeps big nodes whole
            result[k] = tuple(free[node][:t])
            free[node] = free[node][t:]
        else:  # no single node holds it: span nodes, largest first
            taken: list[int] = []
            for node in sorted(free, key=lambda n: -len(free[n])):
                grab = free[node][: t - len(taken)]
                taken.extend(grab)
                free[node] = free[node][len(grab) :]
                if len(taken) == t:
                    break
            result[k] = tuple(taken)
    return result
