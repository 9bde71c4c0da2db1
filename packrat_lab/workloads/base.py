"""Workload: a model plus an input factory, rebuildable in a fresh worker process from a spec."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["Workload", "WorkloadSpec"]

_DTYPES = ("float32", "int64")


@dataclass(frozen=True)
class WorkloadSpec:
    """A picklable recipe that rebuilds the same workload in another process (spawn-safe)."""

    kind: str  # "zoo" | "import" | "torchscript" | "exported" (.pt2) | "hf" (directory) | "saved"
    target: str  # zoo name, 'module:function', or a file or directory path
    options: tuple[tuple[str, Any], ...] = ()
    sample_shape: tuple[int, ...] = ()
    dtype: str = "float32"
    high: int | None = None  # exclusive upper bound for integer inputs (vocabulary size)

    @property
    def options_dict(self) -> dict[str, Any]:
        """Builder keyword options as a dict."""
        return dict(self.options)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for pool registry files and HTTP metadata)."""
        return {
            "kind": self.kind,
            "target": self.target,
            "options": self.options_dict,
            "sample_shape": list(self.sample_shape),
            "dtype": self.dtype,
            "high": self.high,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkloadSpec:
        """Inverse of to_dict."""
        return cls(
            str(data["kind"]),
            str(data["target"]),
            tuple(sorted(dict(data.get("options", {})).items())),
            tuple(int(d) for d in data.get("sample_shape", ())),
            str(data.get("dtype", "float32")),
            data.get("high"),
        )


@dataclass
class Workload:
    """A model and its input: one tensor of shape (batch, *sample_shape) in, one tensor out."""

    name: str
    spec: WorkloadSpec
    builder: Callable[[], torch.nn.Module] | None = field(default=None, repr=False)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample, without the batch dimension."""
        return self.spec.sample_shape

    @property
    def dtype(self) -> str:
        """Input dtype name: 'float32' or 'int64' (token ids)."""
        return self.spec.dtype

    def build(self) -> torch.nn.Module:
        """The model in eval mode with random (seeded) weights; never downloads anything."""
        import torch

        if self.builder is not None:
            model = self.builder()
        else:
            model = build_from_spec(self.spec)
        if isinstance(model, torch.nn.Module):
            model.eval()
        return model

    def example_input(self, batch: int, seed: int = 0) -> torch.Tensor:
        """A deterministic random input batch of `batch` samples."""
        import torch

        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            msg = f"batch must be a positive integer, got {batch!r}; example: workload.example_input(8)"
            raise ValueError(msg)
        gen = torch.Generator().manual_seed(seed)
        shape = (batch, *self.sample_shape)
        if self.dtype == "int64":
            return torch.randint(0, self.spec.high or 2, shape, generator=gen, dtype=torch.int64)
        return torch.randn(shape, generator=gen, dtype=torch.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {"name": self.name, "spec": self.spec.to_dict()}


def build_from_spec(spec: WorkloadSpec) -> torch.nn.Module:
    """Rebuild the module a spec describes (in a worker or profiling process)."""
    import torch

    if spec.kind == "zoo":
        from packrat_lab.workloads.zoo import build_zoo_model

        return build_zoo_model(spec.target, **spec.options_dict)
    if spec.kind == "import":
        module_name, _, attr = spec.target.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        result = factory(**spec.options_dict)
        model: torch.nn.Module = result.build() if isinstance(result, Workload) else result
        return model
    if spec.kind == "torchscript":
        import warnings

        with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; users still ship .pt files
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            scripted: torch.nn.Module = torch.jit.load(spec.target, map_location="cpu")  # type: ignore[no-untyped-call]
            return scripted
    if spec.kind == "exported":
        from packrat_lab.workloads.sources import build_exported

        return build_exported(spec)
    if spec.kind == "hf":
        from packrat_lab.workloads.sources import build_hf_dir

        return build_hf_dir(spec)
    if spec.kind == "saved":
        saved: torch.nn.Module = torch.load(spec.target, map_location="cpu", weights_only=False)
        return saved
    msg = f"unknown workload kind {spec.kind!r}; valid: 'zoo', 'import', 'torchscript', 'exported', 'hf', 'saved'"
    raise ValueError(msg)
