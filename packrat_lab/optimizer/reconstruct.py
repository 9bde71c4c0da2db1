"""Turn an optimal objective v back into a plan: fewest total threads, then fewest instances.

Given v = F[T'][B'], any plan whose instances all have L <= v and fit is optimal, so ties are
broken by a second, exact knapsack over the points with L <= v (min threads, then min count).
"""

from __future__ import annotations

import numpy as np

__all__ = ["ExactPicker", "IdlePicker"]

_BIG = np.int64(2**60)


class IdlePicker:
    """Σt <= T: per batch size only the fewest threads meeting v matter, so a 1-D knapsack over B' suffices."""

    def __init__(self, latency: np.ndarray, batches: np.ndarray, cores: int, batch: int, v: float) -> None:
        ok = latency[: cores + 1] <= v  # row 0 is inf, never ok
        has = ok.any(axis=0)
        self.tmin = np.where(has, ok.argmax(axis=0), 0)
        self.batches = batches
        scale = np.int64(batch + 1)  # more than any instance count: threads first, then count
        self.cost = np.where(has, self.tmin * scale + 1, _BIG)
        best = np.full(batch + 1, _BIG, dtype=np.int64)
        best[0] = 0
        for j in np.flatnonzero(has):
            best = _add_unbounded(best, int(batches[j]), np.int64(self.cost[j]))
        self.best = best

    def pick(self, batch: int) -> list[tuple[int, int]] | None:
        """(threads, batch index) picks for total batch `batch`, or None if v cannot be met."""
        if self.best[batch] >= _BIG // 2:
            return None
        picks = []
        left = batch
        order = np.argsort(-self.batches, kind="stable")
        while left > 0:
            for j in order:
                b = int(self.batches[j])
                if (
                    b <= left
                    and self.cost[j] < _BIG
                    and self.best[left] == self.cost[j] + self.best[left - b]
                ):
                    picks.append((int(self.tmin[j]), int(j)))
                    left -= b
                    break
            else:  # pragma: no cover - the table above guarantees a step exists
                msg = f"internal: no reconstruction step at batch {left}"
                raise AssertionError(msg)
        return picks


def _add_unbounded(best: np.ndarray, size: int, cost: np.int64) -> np.ndarray:
    """Allow any number of copies of one item: a running minimum along each residue class mod size."""
    n = -(-best.size // size)
    padded = np.full(n * size, _BIG, dtype=np.int64)
    padded[: best.size] = best
    grid = padded.reshape(n, size)
    q = np.arange(n, dtype=np.int64)[:, None] * cost
    shifted = np.minimum.accumulate(np.minimum(grid, _BIG) - q, axis=0) + q
    out = np.minimum(grid, shifted).ravel()[: best.size]
    return np.where(out >= _BIG // 2, _BIG, out)


class ExactPicker:
    """Σt == T: fewest instances among plans with every L <= v, by a 2-D count knapsack."""

    def __init__(self, latency: np.ndarray, batches: np.ndarray, cores: int, batch: int, v: float) -> None:
        self.ok = latency[: cores + 1] <= v
        self.batches = batches
        off = int(batches.max())
        self.off = off
        count = np.full((cores + 2, off + batch + 1), _BIG, dtype=np.int64)  # row 0 is T'' = -1
        count[1, off] = 0
        cols = off + np.arange(batch + 1)[None, :] - batches[:, None]
        usable = np.flatnonzero(self.ok.any(axis=1))
        for tp in range(1, cores + 1):
            ts = usable[usable <= tp]
            if ts.size == 0:
                continue
            rest = count[tp - ts + 1][:, cols] + 1
            rest = np.where(self.ok[ts][:, :, None] & (rest < _BIG // 2), rest, _BIG)
            count[tp + 1, off:] = rest.min(axis=(0, 1))
        self.count = count

    def pick(self, cores: int, batch: int) -> list[tuple[int, int]] | None:
        """(threads, batch index) picks using exactly `cores` threads, or None if v cannot be met."""
        c = self.count
        if c[cores + 1, self.off + batch] >= _BIG // 2:
            return None
        picks = []
        tl, bl = cores, batch
        items = [
            (t, j)
            for t in range(self.ok.shape[0] - 1, 0, -1)
            for j in np.argsort(-self.batches, kind="stable")
        ]
        while bl > 0 or tl > 0:
            here = c[tl + 1, self.off + bl]
            for t, j in items:
                b = int(self.batches[j])
                if t <= tl and b <= bl and self.ok[t, j] and here == 1 + c[tl - t + 1, self.off + bl - b]:
                    picks.append((int(t), int(j)))
                    tl, bl = tl - t, bl - b
                    break
            else:  # pragma: no cover - the table above guarantees a step exists
                msg = f"internal: no reconstruction step at threads {tl}, batch {bl}"
                raise AssertionError(msg)
        return picks
