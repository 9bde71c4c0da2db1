"""Node-local core claims: pools that share a host (e.g. Ray Serve replicas) take disjoint cores.

Each core has a lock file; a claim holds `fcntl.flock` on the files of the cores it took, so a
crashed holder frees its cores with its process and no registry can go stale. Only processes that
claim see each other: a pool started without a claim still pins to the first cores of its affinity.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from packrat_lab.errors import InfeasiblePlanError

__all__ = ["CoreClaim", "claim_cores", "pin_process"]


def _default_dir() -> Path:
    return Path(tempfile.gettempdir()) / "packrat-lab-cores"


@dataclass
class CoreClaim:
    """Cores this process holds until `release()` (or until it exits)."""

    cores: tuple[int, ...]
    _files: list[int] = field(default_factory=list, repr=False)

    def release(self) -> None:
        """Free the cores for other claimers."""
        for fd in self._files:
            os.close(fd)
        self._files.clear()


def claim_cores(count: int, *, among: tuple[int, ...] | None = None, folder: Path | None = None) -> CoreClaim:
    """Take `count` cores no other claimer on this host holds, lowest first; InfeasiblePlanError if too few are free."""
    candidates = among if among is not None else tuple(sorted(os.sched_getaffinity(0)))
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        msg = f"cores to claim must be a positive integer, got {count!r}; example: 2"
        raise ValueError(msg)
    folder = folder or _default_dir()
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):  # shared by every user's claims, like /tmp itself
            folder.chmod(0o1777)
    claim = CoreClaim(())
    taken: list[int] = []
    for cpu in candidates:
        if len(taken) == count:
            break
        fd = os.open(
            folder / f"cpu{cpu}.lock", os.O_RDONLY | os.O_CREAT, 0o644
        )  # flock needs no write access
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        claim._files.append(fd)
        taken.append(cpu)
    if len(taken) < count:
        claim.release()
        msg = f"only {len(taken)} of {len(candidates)} cores on this host are free but {count} are needed; example: fewer replicas per node or a smaller plan"
        raise InfeasiblePlanError(msg)
    claim.cores = tuple(taken)
    return claim


def pin_process(cores: tuple[int, ...]) -> None:
    """Restrict every thread of this process (and threads and children it starts later) to `cores`."""
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(task), cores)
        except (ProcessLookupError, PermissionError):  # a thread that just ended
            continue
    os.sched_setaffinity(0, cores)
