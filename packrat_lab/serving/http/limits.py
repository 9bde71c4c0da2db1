"""What one request may cost the server: body and JSON size, time to send it, requests in flight, batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_MAX_BATCH", "MANAGEMENT_BODY_BYTES", "Limits", "default_max_batch"]

MIB = 1024 * 1024
MANAGEMENT_BODY_BYTES = MIB  # every route but infer: a plan or a switch fits in far less
DEFAULT_MAX_BATCH = 4096  # largest plan batch a management request may ask for when no profile says more


@dataclass(frozen=True)
class Limits:
    """Server limits; every refusal names the limit it hit.

    max_body_bytes: a request body, also after gzip/deflate inflation (413 past it).
    max_json_bytes: the JSON part of an infer request (413 past it; binary tensors have no such
        limit but the body's). Parsing JSON costs about 20x the bytes of binary data, and a
        JSON part above 1 MiB occupies the helper decoding process (decoder.py) meanwhile.
    body_timeout_s: time to send a whole body once the headers arrived (stalled uploads are closed).
    idle_timeout_s: time a kept-alive connection may sit idle or take to send its headers.
    max_in_flight: inference requests held at once, from their headers on (503 past it); it also
        bounds how many bodies are buffered.
    max_batch: largest plan total batch the management route accepts (None: derived, see
        default_max_batch).
    inline_codec_bytes: bodies (uncompressed) and answers up to this size are decoded and encoded
        on the event loop itself: for a small tensor the two thread hops to the codec executor and
        back cost more than the work (0: always use the executor).
    """

    max_body_bytes: int = 100 * MIB
    max_json_bytes: int = 16 * MIB
    body_timeout_s: float = 60.0
    idle_timeout_s: float = 60.0
    max_in_flight: int = 256
    max_batch: int | None = None
    inline_codec_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_json_bytes", "max_in_flight"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                msg = f"Limits.{name} must be a positive integer, got {value!r}; example: Limits({name}=1024)"
                raise ValueError(msg)
        for name in ("body_timeout_s", "idle_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                msg = f"Limits.{name} must be positive seconds, got {value!r}; example: Limits({name}=30)"
                raise ValueError(msg)
        if (
            not isinstance(self.inline_codec_bytes, int)
            or isinstance(self.inline_codec_bytes, bool)
            or self.inline_codec_bytes < 0
        ):
            msg = f"Limits.inline_codec_bytes must be an integer ≥ 0, got {self.inline_codec_bytes!r}; example: Limits(inline_codec_bytes=65536)"
            raise ValueError(msg)
        if self.max_batch is not None and (
            not isinstance(self.max_batch, int) or isinstance(self.max_batch, bool) or self.max_batch < 1
        ):
            msg = f"Limits.max_batch must be a positive integer or None, got {self.max_batch!r}; example: 256"
            raise ValueError(msg)


def default_max_batch(profile: Any, cores: int) -> int:
    """The profile's largest measured batch times the instances the host fits (one per core), else 4096."""
    batches = list(getattr(profile, "batches", None) or []) if profile is not None else []
    if not batches:
        return DEFAULT_MAX_BATCH
    return int(max(batches)) * max(1, int(cores))
