"""A model for fault tests: it kills its own process (like a segfault) on an input whose first value is
below -100, and raises (the worker lives on) on one above 100."""

from __future__ import annotations

import os
import signal

import torch


class _Crashy(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x[:, 0] < -100).any()):  # warm-up inputs are randn: never that low
            os.kill(os.getpid(), signal.SIGSEGV)
        if bool((x[:, 0] > 100).any()):
            msg = (
                "a first value above 100 is refused by this model " + "x" * 5000
            )  # longer than a pipe record
            raise ValueError(msg)
        return x * 2 + 1


def build() -> torch.nn.Module:
    """The crashy model (import it as 'crashy_model:build' with example_input=torch.ones(1, 8))."""
    return _Crashy()
