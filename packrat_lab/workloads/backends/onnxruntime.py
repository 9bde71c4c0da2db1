"""ONNX Runtime: exported to ONNX once (dynamic batch), run with the instance's thread knobs."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packrat_lab.workloads.backends.base import (
    BackendContext,
    BackendUnavailableError,
    Prepared,
    require_module,
    single_output,
)
from packrat_lab.workloads.backends.cache import convert_once, model_digest

if TYPE_CHECKING:
    import torch

__all__ = ["prepare", "session_options"]

OPSET = 17


def session_options(ort: Any, options: dict[str, Any]) -> Any:
    """SessionOptions from the instance's knobs: intra/inter-op threads, sequential, spinning."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(options.get("intra_op_num_threads", 1))
    so.inter_op_num_threads = int(options.get("inter_op_num_threads", 1))
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", str(options.get("allow_spinning", "1")))
    return so


def prepare(model: torch.nn.Module, example: torch.Tensor, ctx: BackendContext) -> Prepared:
    """Export (cached by model content) and open an inference session."""
    import torch

    ort = require_module("onnxruntime", "onnx")
    require_module("onnx", "onnx")
    if ctx.choice.precision != "fp32":
        msg = f"onnxruntime runs fp32 only here, not {ctx.choice.precision}; example: --backends onnxruntime --precision fp32"
        raise BackendUnavailableError(msg)

    def convert(folder: Path) -> None:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                single_output(model),
                (example,),
                str(folder / "model.onnx"),
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )

    digest = model_digest(model, ctx.sample_shape, ctx.dtype, f"onnx{OPSET}")
    artifact = convert_once(ctx.cache_root, ctx.choice, digest, convert)
    session = ort.InferenceSession(
        str(artifact.path / "model.onnx"),
        session_options(ort, dict(ctx.options)),
        providers=["CPUExecutionProvider"],
    )

    def run(x: torch.Tensor) -> torch.Tensor:
        out = session.run(None, {"x": x.numpy()})[0]
        return torch.from_numpy(out)

    return Prepared(run, artifact.convert_s, artifact.hit, str(artifact.path))
