"""What is measured: one point (threads, batch, setting) of one workload, and the grid of points."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packrat_lab.profiling.stopping import StoppingRule
from packrat_lab.settings import RuntimeSetting
from packrat_lab.workloads.base import WorkloadSpec

__all__ = ["PointSpec", "ProfileGrid", "default_batches"]


@dataclass(frozen=True)
class PointSpec:
    """A frozen request for one isolated measurement; it travels to the child as JSON."""

    workload: WorkloadSpec
    threads: int
    batch: int
    setting: RuntimeSetting
    cores: tuple[int, ...]
    rule: StoppingRule = field(default_factory=StoppingRule)
    warmup_min: int = 3
    warmup_max: int = 10
    seed: int = 0

    @property
    def label(self) -> str:
        """Short name for messages: 't=2 b=4 setting=passive'."""
        return f"threads={self.threads} batch={self.batch} setting={self.setting.name}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "workload": self.workload.to_dict(),
            "threads": self.threads,
            "batch": self.batch,
            "setting": self.setting.to_dict(),
            "cores": list(self.cores),
            "rule": self.rule.to_dict(),
            "warmup_min": self.warmup_min,
            "warmup_max": self.warmup_max,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PointSpec:
        """Inverse of to_dict."""
        return cls(
            WorkloadSpec.from_dict(data["workload"]),
            int(data["threads"]),
            int(data["batch"]),
            RuntimeSetting.from_dict(data["setting"]),
            tuple(int(c) for c in data["cores"]),
            StoppingRule.from_dict(data["rule"]),
            int(data.get("warmup_min", 3)),
            int(data.get("warmup_max", 10)),
            int(data.get("seed", 0)),
        )


def default_batches(max_batch: int = 16, extra: Sequence[int] = ()) -> list[int]:
    """Powers of two up to max_batch, plus the sizes the user names (Packrat's selective profiling)."""
    if max_batch < 1:
        msg = f"max_batch must be at least 1, got {max_batch!r}; example: max_batch=16"
        raise ValueError(msg)
    out = set()
    b = 1
    while b <= max_batch:
        out.add(b)
        b *= 2
    out.update(extra)
    return sorted(out)


@dataclass(frozen=True)
class ProfileGrid:
    """The points of one profile, in the order they are measured (small batches first)."""

    threads: tuple[int, ...]
    batches: tuple[int, ...]
    settings: tuple[RuntimeSetting, ...]

    def __post_init__(self) -> None:
        for label, values in (("threads", self.threads), ("batch", self.batches)):
            bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or v < 1]
            if bad or not values:
                msg = f"{label} sizes must be positive integers, got {list(values)!r}; example: [1, 2, 4, 8]"
                raise ValueError(msg)
        if not self.settings:
            msg = "at least one runtime setting is needed; example: settings=['default', 'passive']"
            raise ValueError(msg)

    def __len__(self) -> int:
        return len(self.threads) * len(self.batches) * len(self.settings)

    def __iter__(self) -> Iterator[tuple[int, int, RuntimeSetting]]:
        """(threads, batch, setting) with batch outermost, so a cut-short profile covers small batches."""
        for b in self.batches:
            for t in self.threads:
                for s in self.settings:
                    yield t, b, s

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for Profile.meta."""
        return {
            "threads": list(self.threads),
            "batches": list(self.batches),
            "settings": [s.name for s in self.settings],
        }
