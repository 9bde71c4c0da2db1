"""What is measured: one point (threads, batch, setting, backend) of one workload, and the grid of points."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packrat_lab.child_env import ChildEnvironment, child_environment
from packrat_lab.profiling.stopping import StoppingRule
from packrat_lab.settings import RuntimeSetting
from packrat_lab.workloads.backends.names import EAGER_FP32, BackendChoice, parse_backend_key
from packrat_lab.workloads.base import WorkloadSpec

__all__ = ["PointGroup", "PointSpec", "ProfileGrid", "default_batches"]

SLICE_S = 0.25  # how long one batch size runs before the next takes a turn inside a process


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
    backend: BackendChoice = EAGER_FP32
    cache_dir: str | None = None  # conversion cache (None: $PACKRAT_LAB_CACHE or ~/.cache/packrat_lab)

    @property
    def label(self) -> str:
        """Short name for messages: 't=2 b=4 setting=passive' (plus the backend when not eager fp32)."""
        return f"threads={self.threads} batch={self.batch} setting={self.setting.name}{_backend_label(self.backend)}"

    @property
    def environment(self) -> ChildEnvironment:
        """The process environment this point is measured in (the same a pool worker gets)."""
        return child_environment(self.threads, self.cores, self.setting, self.backend)

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
            "backend": self.backend.key,
            "cache_dir": self.cache_dir,
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
            parse_backend_key(str(data.get("backend", "eager"))),
            data.get("cache_dir"),
        )


def _backend_label(choice: BackendChoice) -> str:
    return "" if choice.is_reference else f" backend={choice.key}"


@dataclass(frozen=True)
class PointGroup:
    """Points sharing (threads, setting, cores), measured in one process with batch sizes interleaved.

    OpenMP reads its settings once per process, so each (threads, setting) still gets a fresh
    process; inside it the model is built once and the batch sizes take turns of `slice_s`.
    """

    workload: WorkloadSpec
    threads: int
    batches: tuple[int, ...]
    setting: RuntimeSetting
    cores: tuple[int, ...]
    rule: StoppingRule = field(default_factory=StoppingRule)
    warmup_min: int = 3
    warmup_max: int = 10
    seed: int = 0
    slice_s: float = SLICE_S
    backend: BackendChoice = EAGER_FP32
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if not self.batches or len(set(self.batches)) != len(self.batches):
            msg = f"a point group needs distinct batch sizes, got {list(self.batches)!r}; example: (1, 2, 4)"
            raise ValueError(msg)

    @classmethod
    def of(cls, spec: PointSpec) -> PointGroup:
        """The group of one point (one process for it alone)."""
        return cls(
            spec.workload,
            spec.threads,
            (spec.batch,),
            spec.setting,
            spec.cores,
            spec.rule,
            spec.warmup_min,
            spec.warmup_max,
            spec.seed,
            backend=spec.backend,
            cache_dir=spec.cache_dir,
        )

    @property
    def points(self) -> tuple[PointSpec, ...]:
        """The single-point specs this group measures, in batch order."""
        return tuple(
            PointSpec(
                self.workload,
                self.threads,
                b,
                self.setting,
                self.cores,
                self.rule,
                self.warmup_min,
                self.warmup_max,
                self.seed,
                self.backend,
                self.cache_dir,
            )
            for b in self.batches
        )

    @property
    def environment(self) -> ChildEnvironment:
        """The process environment of the whole group."""
        return child_environment(self.threads, self.cores, self.setting, self.backend)

    @property
    def label(self) -> str:
        """Short name for messages."""
        sizes = ",".join(str(b) for b in self.batches)
        return (
            f"threads={self.threads} batch={sizes} setting={self.setting.name}{_backend_label(self.backend)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the child reads on stdin)."""
        return {
            "workload": self.workload.to_dict(),
            "threads": self.threads,
            "batches": list(self.batches),
            "setting": self.setting.to_dict(),
            "cores": list(self.cores),
            "rule": self.rule.to_dict(),
            "warmup_min": self.warmup_min,
            "warmup_max": self.warmup_max,
            "seed": self.seed,
            "slice_s": self.slice_s,
            "backend": self.backend.key,
            "cache_dir": self.cache_dir,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PointGroup:
        """Inverse of to_dict."""
        return cls(
            WorkloadSpec.from_dict(data["workload"]),
            int(data["threads"]),
            tuple(int(b) for b in data["batches"]),
            RuntimeSetting.from_dict(data["setting"]),
            tuple(int(c) for c in data["cores"]),
            StoppingRule.from_dict(data["rule"]),
            int(data.get("warmup_min", 3)),
            int(data.get("warmup_max", 10)),
            int(data.get("seed", 0)),
            float(data.get("slice_s", SLICE_S)),
            parse_backend_key(str(data.get("backend", "eager"))),
            data.get("cache_dir"),
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

    def groups(self, grouped: bool = True) -> list[tuple[int, RuntimeSetting, tuple[int, ...]]]:
        """(threads, setting, batches) per process: all batches together, or one process per point."""
        if not grouped:
            return [(t, s, (b,)) for t, b, s in self]
        return [(t, s, self.batches) for t in self.threads for s in self.settings]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for Profile.meta."""
        return {
            "threads": list(self.threads),
            "batches": list(self.batches),
            "settings": [s.name for s in self.settings],
        }
