"""Input checks at the pool's door: a bad tensor fails alone, with the shape it should have had."""

from __future__ import annotations

from typing import Any

__all__ = ["check_input"]

_BATCH_EXAMPLE = "pool.infer(pool.workload.example_input(4))"
_SAMPLE_EXAMPLE = "pool.submit(pool.workload.example_input(1)[0])"


def check_input(tensor: Any, sample_shape: tuple[int, ...], dtype: str, *, batched: bool) -> None:
    """Raise a one-line ValueError unless `tensor` is a (N, *sample_shape) batch (or one sample) of `dtype`."""
    import torch

    if not isinstance(tensor, torch.Tensor):
        got = type(tensor).__name__
    elif (
        tensor.dtype != getattr(torch, dtype)
        or tensor.dim() != len(sample_shape) + batched
        or tuple(tensor.shape[1 if batched else 0 :]) != tuple(sample_shape)
        or (batched and tensor.shape[0] < 1)
    ):
        got = f"shape {tuple(tensor.shape)} dtype {str(tensor.dtype).removeprefix('torch.')}"
    else:
        return
    dims = ", ".join(map(str, sample_shape))  # built only on failure: this runs on every request
    want = f"(N, {dims})" if batched else f"({dims}{',' if len(sample_shape) == 1 else ''})"
    example = _BATCH_EXAMPLE if batched else _SAMPLE_EXAMPLE
    msg = f"expected a tensor of shape {want} and dtype {dtype}, got {got}; example: {example}"
    raise ValueError(msg)
