"""Co-run measurements: a whole configuration's batch latency with its instances running together.

The DP plans from isolated points; these are what measurement found when the instances shared the
machine. Each is keyed by the configuration (every instance with its neighbours), so a later plan
for the same B reuses it instead of measuring again.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packrat_lab.profiling.measurement import saved_samples

__all__ = ["CoRunMeasurement"]


@dataclass(frozen=True)
class CoRunMeasurement:
    """Measured batch latencies (ms) of one configuration serving batch B, all instances at once."""

    config: str  # validation.config_key: '1x4@passive+1x4@passive' (threads x batch @ setting per instance)
    plan: str  # the plan's text form, to rebuild it: '2x1x4@passive'
    batch: int
    samples_ms: tuple[float, ...]
    expected_ms: float | None = None  # what the isolated profile predicted

    @property
    def median_ms(self) -> float:
        """Median measured batch latency."""
        return float(statistics.median(self.samples_ms))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "config": self.config,
            "plan": self.plan,
            "batch": self.batch,
            "samples_ms": list(self.samples_ms),
            "expected_ms": self.expected_ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CoRunMeasurement:
        """Inverse of to_dict."""
        samples = saved_samples(data, f"co-run measurement of {data.get('plan')!r}")
        expected = data.get("expected_ms")
        return cls(
            str(data["config"]),
            str(data["plan"]),
            int(data["batch"]),
            samples,
            None if expected is None else float(expected),
        )
