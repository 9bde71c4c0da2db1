"""Which running workers a new plan can keep (same threads, setting and cores), which it must start."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from packrat_lab.plan import Instance

__all__ = ["match_reuse"]


class _Running(Protocol):
    @property
    def cores(self) -> tuple[int, ...]: ...

    @property
    def instance(self) -> Instance: ...


def match_reuse(running: Sequence[_Running], new: Sequence[Instance]) -> list[int | None]:
    """For each new (core-placed) instance, the index of a running worker to reuse, or None to start one.

    A worker is reused when its threads, runtime setting, backend and cores equal the new instance's: then
    only its batch slice may change (a resize), so it never stops serving. With `assign_cores`
    deterministic, '2x1x4' → '1x1x8' keeps the worker on core 0 and retires the one on core 1.
    """
    taken: set[int] = set()
    out: list[int | None] = []
    for inst in new:
        match = None
        for k, worker in enumerate(running):
            have = worker.instance
            if (
                k not in taken
                and worker.cores == inst.cores
                and have.threads == inst.threads
                and have.setting == inst.setting
                and have.backend == inst.backend
            ):
                match = k
                break
        if match is not None:
            taken.add(match)
        out.append(match)
    return out
