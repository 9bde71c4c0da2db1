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
        return {**_shared_to_dict(self), "batch": self.batch}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PointSpec:
        """Inverse of to_dict."""
        return cls(batch=int(data["batch"]), **_shared_from_dict(data))


def _backend_label(choice: BackendChoice) -> str:
    return "" if choice.is_reference else f" backend={choice.key}"


# the fields a point and its group both have (all but batch / batches and the group's slice_s)
_SHARED = (
    "workload",
    "threads",
    "setting",
    "cores",
    "rule",
    "warmup_min",
    "warmup_max",
    "seed",
    "backend",
    "cache_dir",
)


def _shared(spec: PointSpec | PointGroup) -> dict[str, Any]:
    """The shared fields as keyword arguments, to build a point from a group or a group from a point."""
    return {name: getattr(spec, name) for name in _SHARED}


def _shared_to_dict(spec: PointSpec | PointGroup) -> dict[str, Any]:
    """The shared fields, JSON-ready."""
    return {
        "workload": spec.workload.to_dict(),
        "threads": spec.threads,
        "setting": spec.setting.to_dict(),
        "cores": list(spec.cores),
        "rule": spec.rule.to_dict(),
        "warmup_min": spec.warmup_min,
        "warmup_max": spec.warmup_max,
        "seed": spec.seed,
        "backend": spec.backend.key,
        "cache_dir": spec.cache_dir,
    }


def _shared_from_dict(data: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of _shared_to_dict, as keyword arguments (older files lack the defaulted keys)."""
    return {
        "workload": WorkloadSpec.from_dict(data["workload"]),
        "threads": int(data["threads"]),
        "setting": RuntimeSetting.from_dict(data["setting"]),
        "cores": tuple(int(c) for c in data["cores"]),
        "rule": StoppingRule.from_dict(data["rule"]),
        "warmup_min": int(data.get("warmup_min", 3)),
        "warmup_max": int(data.get("warmup_max", 10)),
        "seed": int(data.get("seed", 0)),
        "backend": parse_backend_key(str(data.get("backend", "eager"))),
        "cache_dir": data.get("cache_dir"),
    }


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
        return cls(batches=(spec.batch,), **_shared(spec))

    @property
    def points(self) -> tuple[PointSpec, ...]:
        """The single-point specs this group measures, in batch order."""
        shared = _shared(self)
        return tuple(PointSpec(batch=b, **shared) for b in self.batches)

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
        return {**_shared_to_dict(self), "batches": list(self.batches), "slice_s": self.slice_s}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PointGroup:
        """Inverse of to_dict."""
        return cls(
            batches=tuple(int(b) for b in data["batches"]),
            slice_s=float(data.get("slice_s", SLICE_S)),
            **_shared_from_dict(data),
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
