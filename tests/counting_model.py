"""A model for SLO tests: it takes 20 ms per call and appends the first value of every row it runs to a log.

The log path comes from PACKRAT_TEST_RUN_LOG (spawned workers inherit the environment), so a
test can count, in the worker itself, which requests ever ran.
"""

from __future__ import annotations

import os
import time

import torch


class _Counting(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.02)
        path = os.environ.get("PACKRAT_TEST_RUN_LOG")
        if path:
            with open(path, "a") as log:
                log.write("".join(f"{v!r}\n" for v in x[:, 0].tolist()))
        return x * 2 + 1


def build() -> torch.nn.Module:
    """The counting model (import it as 'counting_model:build' with example_input=torch.ones(1, 8))."""
    return _Counting()
