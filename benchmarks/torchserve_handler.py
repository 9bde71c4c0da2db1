"""TorchServe handler for bench_vs_torchserve.py: raw float32 body -> tensor of the model's shape -> raw output.

Runs inside TorchServe's own environment (torch, no packrat_lab): the archive carries the same
TorchScript file that `packrat-lab serve` loads and a `shape.json` with one sample's shape, so both
servers do the same work per request: decode bytes, run the model, encode bytes.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch

_model: Any = None
_shape: tuple[int, ...] = ()


def _load(context: Any) -> None:
    """Load the TorchScript file and the sample shape from the model directory once per worker."""
    global _model, _shape
    model_dir = context.system_properties["model_dir"]
    with open(os.path.join(model_dir, "shape.json")) as f:
        _shape = tuple(int(d) for d in json.load(f)["sample_shape"])
    serialized = context.manifest["model"]["serializedFile"]
    _model = torch.jit.load(os.path.join(model_dir, serialized), map_location="cpu")
    _model.eval()


def _body(row: dict[str, Any]) -> bytes:
    data = row.get("body") if row.get("body") is not None else row.get("data")
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    msg = (
        f"expected a raw float32 body, got {type(data).__name__}; send Content-Type application/octet-stream"
    )
    raise ValueError(msg)


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[bytes] | None:
    """TorchServe's entry point: one answer per request of the (possibly batched) list."""
    if _model is None:
        _load(context)
    if data is None:
        return None
    arrays = [np.frombuffer(_body(row), dtype=np.float32).reshape(-1, *_shape) for row in data]
    counts = [a.shape[0] for a in arrays]
    batch = torch.from_numpy(np.concatenate(arrays) if len(arrays) > 1 else arrays[0].copy())
    with torch.inference_mode():
        out = _model(batch)
    if isinstance(out, (tuple, list)):
        out = out[0]
    out_np = out.contiguous().numpy()
    answers, start = [], 0
    for n in counts:
        answers.append(out_np[start : start + n].tobytes())
        start += n
    return answers
