"""OpenVINO: converted from PyTorch once (dynamic batch, fp32 weights kept), compiled per instance."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from packrat_lab.workloads.backends.base import (
    BackendContext,
    BackendUnavailableError,
    Prepared,
    bf16_supported,
    require_module,
    single_output,
)
from packrat_lab.workloads.backends.cache import convert_once, model_digest

if TYPE_CHECKING:
    import torch

__all__ = ["prepare"]


def prepare(model: torch.nn.Module, example: torch.Tensor, ctx: BackendContext) -> Prepared:
    """Convert (cached by model content) and compile with the instance's threads and precision hint."""
    import torch

    ov = require_module("openvino", "openvino")
    if ctx.choice.precision == "bf16" and not bf16_supported():
        msg = "openvino bf16 needs a CPU with AVX512-BF16 or AMX; example: --precision fp32"
        raise BackendUnavailableError(msg)

    def convert(folder: Path) -> None:
        element = ov.Type.i64 if ctx.dtype == "int64" else ov.Type.f32
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            converted = ov.convert_model(
                single_output(model),
                example_input=example,
                input=[(ov.PartialShape([-1, *ctx.sample_shape]), element)],
            )
        ov.save_model(converted, str(folder / "model.xml"), compress_to_fp16=False)

    digest = model_digest(model, ctx.sample_shape, ctx.dtype, f"openvino{ov.__version__}")
    artifact = convert_once(ctx.cache_root, ctx.choice, digest, convert)
    config = {k: v for k, v in dict(ctx.options).items()}
    compiled = ov.Core().compile_model(str(artifact.path / "model.xml"), "CPU", config)
    request = compiled.create_infer_request()

    def run(x: torch.Tensor) -> torch.Tensor:
        out = request.infer({0: x.numpy()})
        return torch.from_numpy(out[compiled.output(0)].copy())

    return Prepared(run, artifact.convert_s, artifact.hit, str(artifact.path))
