"""torch.compile (inductor) with freezing: compiled in each process; inductor's own cache under ours."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from packrat_lab.workloads.backends.base import BackendContext, Prepared, first_tensor
from packrat_lab.workloads.backends.eager import cast_input

if TYPE_CHECKING:
    import torch

__all__ = ["prepare"]


def prepare(model: torch.nn.Module, example: torch.Tensor, ctx: BackendContext) -> Prepared:
    """Compile with freezing and the instance's threads; the first call (the compile) is the conversion."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(ctx.cache_root / "inductor"))
    import torch
    import torch._inductor.config as inductor

    inductor.freezing = bool(ctx.options.get("freezing", True))
    inductor.cpp.threads = int(ctx.options.get("cpp_threads", ctx.threads))
    precision = ctx.choice.precision
    if precision == "bf16":
        model = model.to(torch.bfloat16)
    compiled = torch.compile(model, dynamic=False)

    def run(x: torch.Tensor) -> torch.Tensor:
        return first_tensor(compiled(cast_input(x, precision))).float()

    started = time.perf_counter()
    with torch.inference_mode():
        run(example)
    return Prepared(run, time.perf_counter() - started, False, None, fixed_batch=True)
