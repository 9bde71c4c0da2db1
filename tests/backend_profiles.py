"""Synthetic profiles over several backends, shared by the backend tests of every layer."""

from __future__ import annotations

from packrat_lab.profiling.measurement import Measurement
from packrat_lab.profiling.table import Profile
from packrat_lab.settings import DEFAULT
from packrat_lab.workloads.backends import Accuracy, parse_backend_key

__all__ = ["EXACT", "ROUGH", "point", "three_backend_profile"]

EXACT = Accuracy(1e-7, 1e-6, 1.0, 8).to_dict()
ROUGH = Accuracy(0.3, 0.05, 0.5, 8).to_dict()  # 5 % relative error: beyond the 1 % default


def point(
    t: int, b: int, ms: float, key: str = "eager", accuracy: dict[str, object] | None = None
) -> Measurement:
    choice = parse_backend_key(key)
    meta = {} if accuracy is None else {"accuracy": accuracy}
    return Measurement(
        t,
        b,
        "default",
        (ms,),
        stop_reason="summary",
        meta=meta,
        backend=choice.backend,
        precision=choice.precision,
    )


def three_backend_profile() -> Profile:
    """eager slowest; onnxruntime 2x faster and exact; openvino-bf16 4x faster but 5 % off."""
    measurements = []
    for t in (1, 2):
        for b in (1, 2, 4, 8):
            eager = 10.0 * b / t**0.8
            measurements += [
                point(t, b, eager),
                point(t, b, eager / 2, "onnxruntime", EXACT),
                point(t, b, eager / 4, "openvino-bf16", ROUGH),
            ]
    return Profile("synthetic", measurements, {"default": DEFAULT})
