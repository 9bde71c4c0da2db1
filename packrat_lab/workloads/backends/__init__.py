"""Backends: eager, TorchScript, torch.compile, ONNX Runtime, OpenVINO; one small module each.

Importing this package is torch-free; `prepare_backend` (in `build`) imports what it needs.
"""

from packrat_lab.workloads.backends.accuracy import DEFAULT_ACCURACY_TOL, Accuracy
from packrat_lab.workloads.backends.names import (
    BACKENDS,
    EAGER_FP32,
    PRECISIONS,
    BackendChoice,
    parse_backend_key,
    resolve_choices,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_ACCURACY_TOL",
    "EAGER_FP32",
    "PRECISIONS",
    "Accuracy",
    "BackendChoice",
    "parse_backend_key",
    "resolve_choices",
]
