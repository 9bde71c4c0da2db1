"""Built-in models, built from their architecture with random weights (no downloads)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["ZOO", "ZooEntry", "build_zoo_model"]


@dataclass(frozen=True)
class ZooEntry:
    """How to build one zoo model and what one input sample looks like."""

    build: Callable[..., torch.nn.Module]
    sample_shape: Callable[..., tuple[int, ...]]
    dtype: str = "float32"
    high: int | None = None
    summary: str = ""
    small: bool = False


def _mlp(width: int = 1024, layers: int = 8) -> torch.nn.Module:
    import torch

    torch.manual_seed(0)
    blocks: list[torch.nn.Module] = []
    for _ in range(layers):
        blocks += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    return torch.nn.Sequential(*blocks)


def _tiny_cnn(image: int = 32) -> torch.nn.Module:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 10),
    )


ZOO: dict[str, ZooEntry] = {
    "mlp": ZooEntry(_mlp, lambda width=1024, layers=8: (width,), summary="8-layer MLP, 1024 wide (ms per batch)", small=True),
    "tiny-cnn": ZooEntry(_tiny_cnn, lambda image=32: (3, image, image), summary="2-conv CNN on 32×32 images (ms per batch)", small=True),
}


def build_zoo_model(name: str, **options: Any) -> torch.nn.Module:
    """Build a zoo model by name with random weights."""
    entry = ZOO.get(name)
    if entry is None:
        msg = f"unknown model {name!r}; valid: {', '.join(sorted(ZOO))} (example: 'resnet50')"
        raise ValueError(msg)
    return entry.build(**options)
