"""Backend and precision names, torch-free: what plans, profiles and the CLI spell a runtime with.

A runtime choice is a backend plus a precision. Its text key is the backend alone for fp32
(`onnxruntime`) and `BACKEND-PRECISION` otherwise (`openvino-bf16`); eager fp32 is the default.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "BACKENDS",
    "EAGER_FP32",
    "PRECISIONS",
    "BackendChoice",
    "parse_backend_key",
    "resolve_choices",
]

BACKENDS = ("eager", "torchscript", "compile", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16")
_EXAMPLE = "'onnxruntime' or 'openvino-bf16'"


@dataclass(frozen=True, order=True)
class BackendChoice:
    """One runtime for a model instance: the backend that runs it and the precision it computes in."""

    backend: str = "eager"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            msg = f"unknown backend {self.backend!r}; valid: {', '.join(BACKENDS)}; example: {_EXAMPLE}"
            raise ValueError(msg)
        if self.precision not in PRECISIONS:
            msg = f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}; example: {_EXAMPLE}"
            raise ValueError(msg)

    @property
    def key(self) -> str:
        """Text form: 'eager', 'onnxruntime', 'openvino-bf16'."""
        return self.backend if self.precision == "fp32" else f"{self.backend}-{self.precision}"

    @property
    def is_reference(self) -> bool:
        """Eager fp32: what every other runtime's accuracy is judged against."""
        return self == EAGER_FP32

    def __str__(self) -> str:
        return self.key


EAGER_FP32 = BackendChoice()


def parse_backend_key(key: str) -> BackendChoice:
    """'onnxruntime' -> (onnxruntime, fp32); 'openvino-bf16' -> (openvino, bf16)."""
    backend, _, precision = str(key).strip().partition("-")
    return BackendChoice(backend, precision or "fp32")


def _split(values: str | Sequence[str] | None, default: str) -> list[str]:
    if values is None:
        return [default]
    items = values.split(",") if isinstance(values, str) else list(values)
    out = [str(v).strip() for v in items if str(v).strip()]
    return out or [default]


def resolve_choices(
    backends: str | Sequence[str] | None, precisions: str | Sequence[str] | None
) -> tuple[BackendChoice, ...]:
    """Every (backend, precision) pair to profile, eager fp32 first (the accuracy reference)."""
    chosen: list[BackendChoice] = []
    for backend in _split(backends, "eager"):
        for precision in _split(precisions, "fp32"):
            choice = BackendChoice(backend, precision)
            if choice not in chosen:
                chosen.append(choice)
    return tuple(sorted(chosen, key=lambda c: (not c.is_reference, c.key)))


def keys(choices: Iterable[BackendChoice]) -> list[str]:
    """Text keys of choices, in order."""
    return [c.key for c in choices]
