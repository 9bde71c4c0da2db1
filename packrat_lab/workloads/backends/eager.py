"""Eager PyTorch: the model as built (fp32), or with weights and float inputs cast to bf16."""

from __future__ import annotations

from typing import TYPE_CHECKING

from packrat_lab.workloads.backends.base import BackendContext, Prepared, first_tensor

if TYPE_CHECKING:
    import torch

__all__ = ["cast_input", "prepare"]


def cast_input(x: torch.Tensor, precision: str) -> torch.Tensor:
    """Float inputs in the model's precision; token ids (int64) stay as they are."""
    import torch

    if precision == "bf16" and x.is_floating_point():
        return x.to(torch.bfloat16)
    return x


def prepare(model: torch.nn.Module, example: torch.Tensor, ctx: BackendContext) -> Prepared:
    """Run the module itself; bf16 casts it in place (the caller measured eager fp32 first)."""
    import torch

    if ctx.choice.precision == "bf16":
        model = model.to(torch.bfloat16)
    precision = ctx.choice.precision

    def run(x: torch.Tensor) -> torch.Tensor:
        return first_tensor(model(cast_input(x, precision))).float()

    return Prepared(run)
