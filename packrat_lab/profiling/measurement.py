"""One measured point: raw samples kept, statistics derived, quality judged on the data."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np

from packrat_lab.workloads.backends.accuracy import Accuracy

__all__ = ["CI_LEVEL", "Measurement", "median_ci_ranks", "median_confidence_interval", "saved_samples"]

CI_LEVEL = 0.95


@lru_cache(maxsize=1024)
def median_ci_ranks(n: int, level: float = CI_LEVEL) -> tuple[int, int] | None:
    """1-based ranks (l, n+1-l) of the exact distribution-free CI of the median; None if n is too small.

    The count K of samples below the true median is Binomial(n, 1/2), so [x(l), x(n+1-l)] covers
    the median with probability 1 - 2 P(K <= l-1). The largest l keeping that >= level is exact
    (n=10 gives x(2)..x(9)); below n=6 even [min, max] covers less than 95 %, so there is no CI.
    """
    if n < 1:
        return None
    tail_limit = (1.0 - level) / 2.0
    total = 2**n
    tail = 0  # n choose 0 + ... + n choose (l-1), the count of K <= l-1
    best = 0
    for l in range(1, n // 2 + 1):
        tail += math.comb(n, l - 1)
        if tail / total > tail_limit:
            break
        best = l
    return (best, n + 1 - best) if best else None


def median_confidence_interval(samples: Sequence[float], level: float = CI_LEVEL) -> tuple[float, float]:
    """Exact distribution-free CI of the median from order statistics; (-inf, inf) when n is too small."""
    n = len(samples)
    if n == 0:
        return (math.nan, math.nan)
    ranks = median_ci_ranks(n, level)
    if ranks is None:
        return (-math.inf, math.inf)
    ordered = np.sort(np.asarray(samples, dtype=float))
    return (float(ordered[ranks[0] - 1]), float(ordered[ranks[1] - 1]))


@dataclass(frozen=True)
class Measurement:
    """Latencies (ms) of one (threads, batch, setting, backend, precision) point, measured in one process."""

    threads: int
    batch: int
    setting: str
    samples_ms: tuple[float, ...]
    warmup: int = 0
    stop_reason: str = "unknown"
    wall_s: float = 0.0
    target_precision: float = 0.02
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    backend: str = "eager"
    precision: str = "fp32"

    @property
    def backend_key(self) -> str:
        """The runtime as plan text spells it: 'eager', 'onnxruntime', 'openvino-bf16'."""
        return self.backend if self.precision == "fp32" else f"{self.backend}-{self.precision}"

    @property
    def key(self) -> tuple[int, int, str, str]:
        """What identifies the point in a profile: (threads, batch, setting, backend key)."""
        return (self.threads, self.batch, self.setting, self.backend_key)

    @property
    def accuracy(self) -> Accuracy | None:
        """Error against eager fp32 on seeded inputs, as the measuring process checked it (None: not checked)."""
        found = self.meta.get("accuracy")
        return Accuracy.from_dict(found) if isinstance(found, Mapping) else None

    @cached_property
    def _array(self) -> np.ndarray:
        return np.asarray(self.samples_ms, dtype=float)

    @property
    def n(self) -> int:
        """Number of timed samples."""
        return len(self.samples_ms)

    @cached_property
    def median(self) -> float:
        """Median latency in ms: what the optimizer uses."""
        return float(np.median(self._array))

    @cached_property
    def mean(self) -> float:
        """Mean latency in ms (the Packrat paper's statistic)."""
        return float(self._array.mean())

    @cached_property
    def p90(self) -> float:
        """90th percentile latency in ms."""
        return float(np.percentile(self._array, 90))

    @cached_property
    def p99(self) -> float:
        """99th percentile latency in ms."""
        return float(np.percentile(self._array, 99))

    @property
    def iqr(self) -> float:
        """Interquartile range in ms: the spread shown on hover."""
        q1, q3 = np.percentile(self._array, [25, 75])
        return float(q3 - q1)

    @property
    def median_ci(self) -> tuple[float, float]:
        """95 % confidence interval of the median."""
        return median_confidence_interval(self.samples_ms)

    @property
    def relative_precision(self) -> float:
        """Half-width of the median's CI relative to the median."""
        lo, hi = self.median_ci
        med = self.median
        if not med or not math.isfinite(lo):
            return math.inf
        return (hi - lo) / 2.0 / med

    @property
    def noisy(self) -> bool:
        """True when the median is not known to the target precision (too few or spread samples)."""
        if self.stop_reason == "summary":
            return False
        return self.n < 5 or self.relative_precision > self.target_precision

    @property
    def warnings(self) -> list[str]:
        """Human-readable quality warnings, carried with the data instead of raised."""
        out: list[str] = []
        if self.stop_reason == "summary":
            return out
        if self.n < 5:
            out.append(f"only {self.n} samples (time cap reached); the median is rough")
        elif self.relative_precision > self.target_precision:
            out.append(
                f"median known to ±{self.relative_precision:.1%}, wider than ±{self.target_precision:.0%}"
            )
        return out

    def statistic(self, name: str) -> float:
        """A statistic by name: median, mean, p90 or p99."""
        if name not in ("median", "mean", "p90", "p99"):
            msg = f"unknown statistic {name!r}; valid: 'median', 'mean', 'p90', 'p99'"
            raise ValueError(msg)
        return float(getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (raw samples included)."""
        return {
            "threads": self.threads,
            "batch": self.batch,
            "setting": self.setting,
            "samples_ms": list(self.samples_ms),
            "warmup": self.warmup,
            "stop_reason": self.stop_reason,
            "wall_s": self.wall_s,
            "target_precision": self.target_precision,
            "meta": dict(self.meta),
            "backend": self.backend,
            "precision": self.precision,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        """Inverse of to_dict."""
        samples = saved_samples(
            data, f"measurement at threads={data.get('threads')} batch={data.get('batch')}"
        )
        return cls(
            threads=int(data["threads"]),
            batch=int(data["batch"]),
            setting=str(data.get("setting", "default")),
            samples_ms=samples,
            warmup=int(data.get("warmup", 0)),
            stop_reason=str(data.get("stop_reason", "unknown")),
            wall_s=float(data.get("wall_s", 0.0)),
            target_precision=float(data.get("target_precision", 0.02)),
            meta=dict(data.get("meta", {})),
            backend=str(data.get("backend", "eager")),
            precision=str(data.get("precision", "fp32")),
        )


def saved_samples(data: Mapping[str, Any], what: str) -> tuple[float, ...]:
    """The samples_ms of a saved measurement (isolated or co-run); ValueError naming `what` if it has none."""
    samples = tuple(float(s) for s in data["samples_ms"])
    if not samples:
        msg = f"{what} has no samples"
        raise ValueError(msg)
    return samples
