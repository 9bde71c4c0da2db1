"""The MODEL argument every command shares: zoo name, .pt2, HF directory, TorchScript file (+ its input shape), module:function."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["MODEL_HELP", "add_model_arguments", "model_options", "sample_shape"]

MODEL_HELP = (
    "zoo name (mlp, tiny-cnn, resnet50, inception_v3, bert, gpt2), a torch.export *.pt2 file, "
    "a Hugging Face model directory, a TorchScript *.pt file (with --sample-shape), or module:function"
)


def sample_shape(text: str) -> tuple[int, ...]:
    """argparse type for one sample's shape without the batch dimension, e.g. '3,224,224'."""
    parts = [p.strip() for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        msg = f"{text!r} is not a sample shape; example: 3,224,224 (one sample, no batch dimension)"
        raise argparse.ArgumentTypeError(msg)
    return shape


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--sample-shape and --dtype: what a TorchScript file needs to know about its input."""
    parser.add_argument(
        "--sample-shape",
        type=sample_shape,
        default=None,
        metavar="D,D",
        help="input shape of one sample for a TorchScript *.pt model, e.g. 3,224,224",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "int64"),
        default=None,
        help="input dtype for a TorchScript *.pt model (default float32; int64 for token ids)",
    )


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """get_workload options from the shared flags (only those given, so zoo names stay plain)."""
    options: dict[str, Any] = {}
    if getattr(args, "sample_shape", None) is not None:
        options["sample_shape"] = args.sample_shape
    if getattr(args, "dtype", None) is not None:
        options["dtype"] = args.dtype
    return options
