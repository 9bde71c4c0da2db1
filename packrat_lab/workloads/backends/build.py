"""prepare_backend: turn a built model into the runner of one (backend, precision), via the cache."""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from packrat_lab.workloads.backends.base import BackendContext, BackendUnavailableError, Prepared
from packrat_lab.workloads.backends.cache import cache_root
from packrat_lab.workloads.backends.names import BackendChoice

if TYPE_CHECKING:
    from collections.abc import Mapping

    import torch

__all__ = ["prepare_backend"]


def prepare_backend(
    model: torch.nn.Module,
    example: torch.Tensor,
    choice: BackendChoice,
    *,
    threads: int,
    options: Mapping[str, Any],
    sample_shape: tuple[int, ...],
    dtype: str,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Prepared:
    """The runner of `choice`; any failure to convert or load becomes one BackendUnavailableError."""
    from packrat_lab.workloads.backends.base import bf16_supported

    if choice.precision == "bf16" and not bf16_supported():
        msg = f"{choice.key}: this CPU has no native bf16 (AVX512-BF16/AMX); example: --precision fp32"
        raise BackendUnavailableError(msg)
    module = importlib.import_module(f"packrat_lab.workloads.backends.{choice.backend}")
    ctx = BackendContext(choice, threads, dict(options), cache_root(cache_dir), sample_shape, dtype)
    try:
        prepared: Prepared = module.prepare(model, example, ctx)
    except BackendUnavailableError:
        raise
    except Exception as exc:
        msg = f"{choice.key}: conversion failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        raise BackendUnavailableError(msg) from exc
    return prepared
