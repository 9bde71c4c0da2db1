"""Inception-v3 (Szegedy et al., 2015) written out here, so the zoo needs no torchvision.

Standard layout for 299×299 inputs: stem, 3× module A (35×35), reduction B, 4× module C (17×17,
factorised 7×7), reduction D, 2× module E (8×8, expanded filter banks), global pool, dropout, fc.
The auxiliary classifier only matters for training and is left out (inference only).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["InceptionV3", "inception_v3"]

Size = int | tuple[int, int]


class ConvBN(nn.Sequential):
    """Convolution without bias, batch norm, ReLU: the unit every branch is made of."""

    def __init__(self, cin: int, cout: int, kernel: Size, stride: int = 1, padding: Size = 0) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(cout, eps=0.001),
            nn.ReLU(inplace=True),
        )


def _chain(cin: int, *layers: tuple[int, Size, Size]) -> nn.Sequential:
    """ConvBN layers (cout, kernel, padding) with stride 1, each feeding the next."""
    blocks = []
    for cout, kernel, padding in layers:
        blocks.append(ConvBN(cin, cout, kernel, padding=padding))
        cin = cout
    return nn.Sequential(*blocks)


def _pool_proj(cin: int, cout: int) -> nn.Sequential:
    """3×3 average pool (stride 1) then a 1×1 projection."""
    return nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), ConvBN(cin, cout, 1))


class Concat(nn.Module):
    """Run parallel branches on one input and join them along channels."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def block_a(cin: int, pool: int) -> Concat:
    """35×35 module: 1×1, 5×5, double 3×3 and pooled branches (out 224 + pool)."""
    return Concat(
        ConvBN(cin, 64, 1),
        _chain(cin, (48, 1, 0), (64, 5, 2)),
        _chain(cin, (64, 1, 0), (96, 3, 1), (96, 3, 1)),
        _pool_proj(cin, pool),
    )


def block_b(cin: int) -> Concat:
    """35→17 grid reduction (out 480 + cin)."""
    return Concat(
        ConvBN(cin, 384, 3, stride=2),
        nn.Sequential(_chain(cin, (64, 1, 0), (96, 3, 1)), ConvBN(96, 96, 3, stride=2)),
        nn.MaxPool2d(3, stride=2),
    )


def block_c(cin: int, mid: int) -> Concat:
    """17×17 module with 7×7 convolutions factorised into 1×7 and 7×1 (out 768)."""
    row, col = (1, 7), (7, 1)
    return Concat(
        ConvBN(cin, 192, 1),
        _chain(cin, (mid, 1, 0), (mid, row, (0, 3)), (192, col, (3, 0))),
        _chain(
            cin, (mid, 1, 0), (mid, col, (3, 0)), (mid, row, (0, 3)), (mid, col, (3, 0)), (192, row, (0, 3))
        ),
        _pool_proj(cin, 192),
    )


def block_d(cin: int) -> Concat:
    """17→8 grid reduction (out 512 + cin)."""
    return Concat(
        nn.Sequential(ConvBN(cin, 192, 1), ConvBN(192, 320, 3, stride=2)),
        nn.Sequential(
            _chain(cin, (192, 1, 0), (192, (1, 7), (0, 3)), (192, (7, 1), (3, 0))),
            ConvBN(192, 192, 3, stride=2),
        ),
        nn.MaxPool2d(3, stride=2),
    )


class SplitBank(nn.Module):
    """A stem followed by parallel 1×3 and 3×1 convolutions, concatenated (module E's wide bank)."""

    def __init__(self, stem: nn.Module, width: int) -> None:
        super().__init__()
        self.stem = stem
        self.row = ConvBN(width, 384, (1, 3), padding=(0, 1))
        self.col = ConvBN(width, 384, (3, 1), padding=(1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        return torch.cat([self.row(y), self.col(y)], dim=1)


def block_e(cin: int) -> Concat:
    """8×8 module with expanded filter banks (out 2048)."""
    return Concat(
        ConvBN(cin, 320, 1),
        SplitBank(ConvBN(cin, 384, 1), 384),
        SplitBank(_chain(cin, (448, 1, 0), (384, 3, 1)), 384),
        _pool_proj(cin, 192),
    )


class InceptionV3(nn.Module):
    """Inception-v3 classifier: (batch, 3, 299, 299) float images in, (batch, classes) logits out."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            ConvBN(3, 32, 3, stride=2),
            ConvBN(32, 32, 3),
            ConvBN(32, 64, 3, padding=1),
            nn.MaxPool2d(3, stride=2),
            ConvBN(64, 80, 1),
            ConvBN(80, 192, 3),
            nn.MaxPool2d(3, stride=2),
        )
        self.features = nn.Sequential(
            block_a(192, 32),
            block_a(256, 64),
            block_a(288, 64),
            block_b(288),
            block_c(768, 128),
            block_c(768, 160),
            block_c(768, 160),
            block_c(768, 192),
            block_d(768),
            block_e(1280),
            block_e(2048),
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(2048, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.features(self.stem(x)))
        return logits


def inception_v3(num_classes: int = 1000) -> InceptionV3:
    """A freshly initialised Inception-v3 (random weights; the caller seeds torch)."""
    return InceptionV3(num_classes)
