"""Interference-aware profiling (Veltair): a model's points measured while the other models serve load.

`corun_profile` pins each point to the model's own share of cores and keeps the other models
busy at their planned rates on theirs, so the latency includes what co-runners do to caches and
memory bandwidth. Each measurement records the interference level it was taken at
(`meta["interference"]`: the co-runners' offered load as a fraction of their plans' capacity)
and `meta["corun"]: True`. `corun_view` lays co-run points over an isolated profile, which is
what `optimize_fleet` should plan from when co-run numbers exist.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from packrat_lab.profiling.table import Profile

__all__ = ["BackgroundLoad", "corun_profile", "corun_view", "interference_of"]


class BackgroundLoad:
    """Poisson load on some pools (target, rate) in threads until `stop()`; a context manager."""

    def __init__(self, targets: Sequence[tuple[Any, float]], *, chunk_s: float = 5.0, seed: int = 0) -> None:
        self._targets = [(t, r) for t, r in targets if r > 0]
        self._chunk_s = chunk_s
        self._seed = seed
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.reports: list[Any] = []

    def _run(self, target: Any, rate: float, seed: int) -> None:
        from packrat_lab.loadgen import run_load

        k = 0
        while not self._stop.is_set():
            self.reports.append(run_load(target, rate=rate, duration_s=self._chunk_s, seed=seed + k))
            k += 1

    def __enter__(self) -> BackgroundLoad:  # noqa: PYI034 - typing_extensions is not a dependency
        for k, (target, rate) in enumerate(self._targets):
            thread = threading.Thread(
                target=self._run,
                args=(target, rate, self._seed + 1000 * k),
                name="packrat-corun",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Let the current chunks finish, then end."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self._chunk_s + 60)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def interference_of(rates: Sequence[float], capacities: Sequence[float]) -> float:
    """The co-runners' offered load as a mean fraction of their capacity (0: idle, 1: saturated)."""
    fractions = [r / c for r, c in zip(rates, capacities, strict=True) if c > 0]
    return sum(fractions) / len(fractions) if fractions else 0.0


def corun_profile(
    model: Any,
    share: Sequence[int],
    background: Sequence[tuple[Any, float]],
    *,
    batches: Sequence[int],
    threads: Sequence[int] | None = None,
    interference: float | None = None,
    point_time_s: float = 3.0,
    max_samples: int = 50,
    torchscript: bool = False,
) -> Profile:
    """Measure `model` at (threads ≤ len(share), batch) pinned inside `share` while `background` runs."""
    from packrat_lab.host import fingerprint
    from packrat_lab.profiling.runner import run_point
    from packrat_lab.profiling.spec import PointSpec
    from packrat_lab.profiling.stopping import StoppingRule
    from packrat_lab.settings import DEFAULT
    from packrat_lab.workloads.registry import get_workload

    if not share:
        msg = "a co-run profile needs the model's share of cores, got none; example: corun_profile('mlp', (0, 1), [])"
        raise ValueError(msg)
    workload = get_workload(model, torchscript=True) if torchscript else get_workload(model)
    counts = sorted(set(threads or range(1, len(share) + 1)))
    if counts[0] < 1 or counts[-1] > len(share):
        msg = f"threads {counts} must lie in 1..{len(share)} (the share's size); example: threads=[1, {len(share)}]"
        raise ValueError(msg)
    result = Profile(workload.name, [], {DEFAULT.name: DEFAULT}, fingerprint())
    meta = {"corun": True, "interference": interference, "share": list(share)}
    with BackgroundLoad(background):
        for t in counts:
            for b in batches:
                spec = PointSpec(
                    workload.spec,
                    t,
                    b,
                    DEFAULT,
                    tuple(share[:t]),
                    StoppingRule(0.02, 5, max_samples, point_time_s),
                )
                measurement = run_point(spec)
                result.add(replace(measurement, meta={**dict(measurement.meta), **meta}))
    result.meta = {"corun": True, "interference": interference, "share": list(share)}
    return result


def corun_view(isolated: Profile, corun: Profile | None) -> Profile:
    """The isolated profile with co-run points laid over it (co-run wins where both exist)."""
    return isolated if corun is None else isolated.merged(corun)
