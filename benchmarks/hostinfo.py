"""Host description printed at the top of every benchmark result."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone

from packrat_lab.host import detect_host, fingerprint


def host_description() -> str:
    """One Markdown paragraph: CPU, cores usable, memory, torch, date."""
    host = detect_host()
    fp = fingerprint(host)
    try:
        with open("/proc/meminfo") as meminfo:
            mem_kb = int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal")))
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        mem = "unknown"
    return (
        f"Host: {fp['cpu_model']}, {host.usable_cores} usable cores (affinity {len(host.affinity)} CPUs, "
        f"cgroup quota {host.quota_cpus}), {len(host.numa_nodes)} NUMA node(s), {mem} RAM, "
        f"{platform.system()} {platform.release()}, Python {fp['python']}, torch {fp['torch']}, "
        f"os.cpu_count()={os.cpu_count()}; run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"1-minute load average at start {os.getloadavg()[0]:.2f}."
    )
