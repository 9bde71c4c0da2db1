"""Prediction cache (Clipper): an LRU of answers keyed by the input's exact bytes, dtype, shape and model."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["PredictionCache"]

Key = tuple[str, str, tuple[int, ...], bytes]


class PredictionCache:
    """At most `size` answers, least recently used evicted first; size 0 turns it off.

    Keys hold the sample's raw bytes (exact: no hash collisions to reason about). Entries are
    clones, and a hit returns a fresh clone, so no caller can change a cached answer. Thread-safe.
    """

    def __init__(self, size: int, model: str) -> None:
        if size < 0:
            msg = f"cache_size must be ≥ 0, got {size!r}; example: Pool('mlp', '1x1x4', cache_size=1024)"
            raise ValueError(msg)
        self.size = size
        self.model = model
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Key, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether answers are kept at all."""
        return self.size > 0

    def key(self, sample: torch.Tensor) -> Key:
        """The cache key of one sample (no batch dimension)."""
        import torch

        flat = sample.detach().contiguous().reshape(-1)
        raw = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
        return (self.model, str(sample.dtype), tuple(sample.shape), raw)

    def get(self, key: Key) -> torch.Tensor | None:
        """A clone of the cached answer, or None (counted as a hit or a miss)."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        return found.clone()

    def put(self, key: Key, answer: torch.Tensor) -> None:
        """Keep a clone of `answer` for `key`, evicting the least recently used beyond `size`."""
        if not self.enabled:
            return
        kept = answer.detach().clone()
        with self._lock:
            self._entries[key] = kept
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self, model: str | None = None) -> None:
        """Forget every answer (the model changed: `model` names the new one)."""
        with self._lock:
            self._entries.clear()
            if model is not None:
                self.model = model

    def snapshot(self) -> dict[str, float | int | None]:
        """cache_size, cache_entries, cache_hits, cache_misses, cache_hit_rate for stats()."""
        with self._lock:
            looked = self.hits + self.misses
            return {
                "cache_size": self.size,
                "cache_entries": len(self._entries),
                "cache_hits": self.hits,
                "cache_misses": self.misses,
                "cache_hit_rate": self.hits / looked if looked else None,
            }
