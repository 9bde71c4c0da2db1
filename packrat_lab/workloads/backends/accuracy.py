"""Accuracy guard: how far a backend's output is from eager fp32 on the same seeded input."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_ACCURACY_TOL", "Accuracy", "compare_outputs"]

# Relative error allowed by default: max |y - y_ref| / max |y_ref|. fp32 backends land near 1e-6;
# bf16 lands at 0.3-2 % depending on the model, so 1 % admits bf16 only where it stays close.
DEFAULT_ACCURACY_TOL = 0.01


@dataclass(frozen=True)
class Accuracy:
    """Error of one runtime against eager fp32: max absolute, relative (to the largest output) and top-1."""

    max_abs: float
    max_rel: float
    top1: float | None = None  # share of rows whose arg-max agrees (class scores only)
    rows: int = 0

    def within(self, tol: float) -> bool:
        """True when the relative error is at most `tol` (and the numbers are finite)."""
        return math.isfinite(self.max_rel) and self.max_rel <= tol

    def describe(self) -> str:
        """'max abs 3.1e-06, rel 0.0004 %, top-1 100 %'."""
        text = f"max abs {self.max_abs:.2g}, rel {self.max_rel:.2%}"
        if self.top1 is not None:
            text += f", top-1 {self.top1:.0%}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"max_abs": self.max_abs, "max_rel": self.max_rel, "top1": self.top1, "rows": self.rows}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Accuracy:
        """Inverse of to_dict."""
        top1 = data.get("top1")
        return cls(
            float(data["max_abs"]),
            float(data["max_rel"]),
            None if top1 is None else float(top1),
            int(data.get("rows", 0)),
        )

    @classmethod
    def worst(cls, items: list[Accuracy]) -> Accuracy:
        """The worst of several checks (largest errors, lowest agreement)."""
        tops = [a.top1 for a in items if a.top1 is not None]
        return cls(
            max(a.max_abs for a in items),
            max(a.max_rel for a in items),
            min(tops) if tops else None,
            sum(a.rows for a in items),
        )


def compare_outputs(reference: torch.Tensor, output: torch.Tensor) -> Accuracy:
    """Errors of `output` against `reference`; top-1 when the output is a (rows, classes) score matrix."""
    import torch

    ref = reference.detach().to(torch.float64)
    out = output.detach().to(torch.float64)
    if ref.shape != out.shape:
        msg = f"backend output shape {tuple(out.shape)} differs from eager's {tuple(ref.shape)}"
        raise ValueError(msg)
    diff = (out - ref).abs()
    max_abs = float(diff.max()) if diff.numel() else 0.0
    scale = float(ref.abs().max()) if ref.numel() else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
    top1 = None
    if ref.dim() == 2 and ref.shape[1] > 1:
        top1 = float((ref.argmax(dim=1) == out.argmax(dim=1)).double().mean())
    return Accuracy(max_abs, max_rel, top1, int(ref.shape[0]) if ref.dim() else 1)
