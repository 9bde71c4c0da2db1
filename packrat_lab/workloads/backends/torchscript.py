"""TorchScript: traced and frozen once, saved in the conversion cache, loaded by every process."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from packrat_lab.workloads.backends.base import BackendContext, Prepared, single_output
from packrat_lab.workloads.backends.cache import convert_once, model_digest
from packrat_lab.workloads.backends.eager import cast_input

if TYPE_CHECKING:
    import torch

__all__ = ["prepare"]


def prepare(model: torch.nn.Module, example: torch.Tensor, ctx: BackendContext) -> Prepared:
    """Trace + freeze (cached by model content), then run the frozen graph."""
    import torch

    precision = ctx.choice.precision

    def convert(folder: Path) -> None:
        wrapped = single_output(model.to(torch.bfloat16) if precision == "bf16" else model)
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(wrapped, cast_input(example, precision), check_trace=False)  # type: ignore[no-untyped-call]
            frozen = torch.jit.freeze(traced.eval())
            torch.jit.save(frozen, str(folder / "model.pt"))

    digest = model_digest(model, ctx.sample_shape, ctx.dtype)
    artifact = convert_once(ctx.cache_root, ctx.choice, digest, convert)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(artifact.path / "model.pt"), map_location="cpu")  # type: ignore[no-untyped-call]

    def run(x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = loaded(cast_input(x, precision))
        return out.float()

    return Prepared(run, artifact.convert_s, artifact.hit, str(artifact.path))
