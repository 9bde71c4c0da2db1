"""Latency prediction (Clockwork): how long a piece of `rows` takes on one worker, learned online.

Each worker handle owns one `LatencyModel`: it starts from a prior (the profile's L[t][b] at the
worker's threads, else the worker's own warm batch time) and corrects it from every measured
piece (send to answer, as the parent sees it) by an EWMA per row count. Not thread-safe on its
own: the handle reads and writes it under its lock. `ErrorWindow` keeps |predicted − actual|.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from packrat_lab.serving.stats import percentile

if TYPE_CHECKING:
    from packrat_lab.profiling.table import Profile

__all__ = ["ErrorWindow", "LatencyModel", "Prior", "profile_prior"]

Prior = Callable[[int], "float | None"]  # rows -> expected ms (None: unknown)


def profile_prior(profile: Profile | None, threads: int, setting: str | None = None) -> Prior:
    """L[t][rows] from the profile at `threads` (the setting's own points if measured), linear between batches."""
    best: dict[int, float] = {}
    own: dict[int, float] = {}
    for m in [] if profile is None else profile.measurements:
        if m.threads == threads:
            value = m.statistic("median")
            best[m.batch] = min(value, best.get(m.batch, value))
            if m.setting == setting:
                own[m.batch] = value
    points = {**best, **own}  # the instance's own setting wins where it was measured
    batches = sorted(points)

    def prior(rows: int) -> float | None:
        if not batches:
            return None
        if rows in points:
            return points[rows]
        k = bisect.bisect_left(batches, rows)
        if k == 0:  # below the smallest measured batch: no faster than it
            return points[batches[0]]
        if k == len(batches):  # above: per-row cost of the largest batch
            top = batches[-1]
            return points[top] * rows / top
        lo, hi = batches[k - 1], batches[k]
        return points[lo] + (points[hi] - points[lo]) * (rows - lo) / (hi - lo)

    return prior


class LatencyModel:
    """Expected milliseconds for a piece of `rows` on one worker: EWMA of measurements over a prior.

    With no measurement at `rows`, the prior is scaled by the EWMA of measured/prior ratios (so a
    host slower than its profile moves every row count at once). With no prior either, a base
    time at some batch b (the worker's warm batch, `seed`) is scaled as half fixed, half per row.
    """

    def __init__(self, prior: Prior | None = None, alpha: float = 0.2) -> None:
        if not 0.0 < alpha <= 1.0:
            msg = f"alpha must be in (0, 1], got {alpha!r}; example: LatencyModel(alpha=0.2)"
            raise ValueError(msg)
        self.alpha = alpha
        self._prior = prior
        self._measured: dict[int, float] = {}
        self._ratio: float | None = None
        self._base: tuple[int, float] | None = None

    def seed(self, batch: int, ms: float) -> None:
        """A base time at `batch` rows (the worker's warm batch) used when there is no prior."""
        if batch >= 1 and ms > 0:
            self._base = (batch, ms)

    def expect_ms(self, rows: int) -> float:
        """Expected service time of a piece of `rows` rows (0.0 when nothing is known yet)."""
        measured = self._measured.get(rows)
        if measured is not None:
            return measured
        prior = self._prior_ms(rows)
        if prior is not None:
            return prior * (self._ratio if self._ratio is not None else 1.0)
        if self._measured:  # nearest measured row count, scaled half fixed, half per row
            near = min(self._measured, key=lambda r: abs(r - rows))
            return self._measured[near] * (1 + rows / near) / 2
        return 0.0

    def observe(self, rows: int, ms: float) -> None:
        """One measured piece: fold it into the EWMA at `rows` and into the prior's correction."""
        old = self._measured.get(rows)
        self._measured[rows] = ms if old is None else self.alpha * ms + (1 - self.alpha) * old
        prior = self._prior_ms(rows)
        if prior is not None and prior > 0:
            ratio = ms / prior
            self._ratio = (
                ratio if self._ratio is None else self.alpha * ratio + (1 - self.alpha) * self._ratio
            )

    def forget(self) -> None:
        """Drop every measurement and the prior's correction (the prior and the warm seed stay)."""
        self._measured.clear()
        self._ratio = None

    def _prior_ms(self, rows: int) -> float | None:
        value = self._prior(rows) if self._prior is not None else None
        if value is None and self._base is not None:
            batch, ms = self._base
            value = ms * (1 + rows / batch) / 2
        return value


class ErrorWindow:
    """The last `keep` prediction errors (actual − predicted, ms) for stats and admission's margin (thread-safe).

    `margin_ms()` is the `quantile` (default: the median) of the underestimates of the last
    `window_s` seconds (how much later than predicted requests were), recomputed every `every`
    additions: admission adds it to a prediction, which corrects a bias the models do not see
    (callbacks, the caller's own thread). A tail quantile (p95) refused half of a 50 % load on a
    busy 2-core host without bringing p99 under the SLO (benchmarks/results/slo.md): descheduling
    spikes are not in any queue. It falls to 0 once no error is that recent, so a margin that
    refused everything cannot keep itself alive.
    """

    def __init__(
        self,
        keep: int = 1024,
        quantile: float = 50.0,
        every: int = 16,
        window_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._errors: deque[tuple[float, float]] = deque(maxlen=keep)  # (when, actual − predicted)
        self._quantile = quantile
        self._every = every
        self._window_s = window_s
        self._clock = clock
        self._since = 0
        self._margin = 0.0
        self._lock = threading.Lock()

    def add(self, predicted_ms: float, actual_ms: float) -> None:
        """Record one prediction against what happened."""
        now = self._clock()
        with self._lock:
            self._errors.append((now, actual_ms - predicted_ms))
            self._since += 1
            if self._since < self._every:
                return
            self._since = 0
            recent = [max(0.0, e) for t, e in self._errors if now - t <= self._window_s]
        margin = percentile(recent, self._quantile) or 0.0
        with self._lock:
            self._margin = margin

    def margin_ms(self) -> float:
        """How much to add to a prediction before promising it (0 without recent errors)."""
        with self._lock:
            if not self._errors or self._clock() - self._errors[-1][0] > self._window_s:
                return 0.0
            return self._margin

    def percentiles(self) -> tuple[float | None, float | None]:
        """(p50, p99) of the recorded absolute errors; None when empty."""
        with self._lock:
            errors = [abs(e) for _, e in self._errors]
        return percentile(errors, 50), percentile(errors, 99)
