"""What every backend module shares: the prepared-runner type, its context, and the failure type."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packrat_lab.errors import PackratError
from packrat_lab.workloads.backends.names import BackendChoice

if TYPE_CHECKING:
    import torch

__all__ = ["BackendContext", "BackendUnavailableError", "Prepared", "bf16_supported", "first_tensor"]

Run = Callable[["torch.Tensor"], "torch.Tensor"]


class BackendUnavailableError(PackratError, RuntimeError):
    """A backend cannot run this model here: library missing, conversion failed, precision unsupported."""


@dataclass(frozen=True)
class BackendContext:
    """What a backend needs besides the model: the choice, the instance's knobs, the cache and the input."""

    choice: BackendChoice
    threads: int
    options: Mapping[str, Any]  # from ChildEnvironment.backend_options: the instance's thread knobs
    cache_root: Path
    sample_shape: tuple[int, ...]
    dtype: str  # input dtype name: 'float32' or 'int64'


@dataclass
class Prepared:
    """A runnable backend: batch tensor in, float tensor out; plus what its conversion cost."""

    run: Run
    convert_s: float = 0.0
    cache_hit: bool = False
    artifact: str | None = None
    fixed_batch: bool = False  # compiled for one input shape: a smaller batch would recompile (seconds)


def first_tensor(value: Any) -> torch.Tensor:
    """The model's output tensor (models returning tuples or ModelOutput give their first one)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict) or hasattr(value, "to_tuple"):
        value = value.to_tuple() if hasattr(value, "to_tuple") else tuple(value.values())
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    msg = f"model returned {type(value).__name__}; a pool needs a tensor (or a tuple starting with one)"
    raise TypeError(msg)


def bf16_supported(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16); emulated bf16 is slower than fp32."""
    try:
        with open(cpuinfo) as f:
            text = f.read()
    except OSError:
        return False
    flags = set(text.split())
    return "avx512_bf16" in flags or "amx_bf16" in flags


def single_output(model: torch.nn.Module) -> torch.nn.Module:
    """The model wrapped to return its first tensor (what exporters and tracers need)."""
    import torch

    class FirstOutput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return first_tensor(self.inner(x))

    return FirstOutput().eval()


def require_module(name: str, extra: str) -> Any:
    """Import an optional backend library or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        msg = f"backend needs {name!r}, which is not installed; example: pip install 'packrat_lab[{extra}]'"
        raise BackendUnavailableError(msg) from exc
