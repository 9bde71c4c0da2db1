"""Packrat's 2-D knapsack recurrence, vectorised: F[T'][B'] for every T' <= T and B' <= B at once.

F[T'][B'] = min over items (t, b) with t <= T', b <= B' of max(L[t][b], F[T'-t][B'-b]).
"""

from __future__ import annotations

import numpy as np

__all__ = ["envelope", "fill_at_most", "fill_exact", "ranks"]


def envelope(latency: np.ndarray) -> np.ndarray:
    """Lm[t][b] = min over t' <= t of L[t'][b]: an instance given t cores may run with fewer threads."""
    return np.minimum.accumulate(latency, axis=0)


def ranks(latency: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latencies as small integers that compare exactly like them (0: nothing to run, last: inf), and the values."""
    values = np.unique(latency[np.isfinite(latency)])
    table = np.concatenate([[0.0], values, [np.inf]])
    dtype = np.int16 if table.size < np.iinfo(np.int16).max else np.int32
    code = np.where(np.isfinite(latency), np.searchsorted(values, latency) + 1, table.size - 1)
    return code.astype(dtype), table


def fill_at_most(latency: np.ndarray, batches: np.ndarray, batch: int) -> np.ndarray:
    """F for Σt <= T' (threads may be left idle), walking the crossing point of the envelope.

    For one item batch b, g(t) = max(Lm[t][b], F[T'-t][B'-b]) is the max of a nonincreasing and a
    nondecreasing function of t, so its minimum sits at t*, the first t with Lm[t] <= F[T'-t], and is
    min(Lm[t*-1], F[T'-t*]). Going from row T' to T'+1, t* stays or moves up by one (F[T'+1-t] <= F[T'-t]
    and F[T'+1-(t+1)] = F[T'-t]), so each row costs a few NumPy calls over (batch sizes x B') lanes.
    Values are handled as ranks (int16), which keeps the arrays small and the result exact.
    """
    cores = latency.shape[0] - 1
    nb = batches.size
    code, values = ranks(latency)
    inf_code = values.size - 1
    # lm[j, t] for t = 0..T+1 (t = 0 and t = T+1 are inf); f[col, 1 + T'] with row 0 for T' = -1 (inf)
    lm = np.full((nb, cores + 2), inf_code, dtype=code.dtype)
    lm[:, : cores + 1] = envelope(code).T
    off = int(batches.max()) if nb else 0  # leading columns for B' < 0 (inf)
    rows = cores + 2
    f = np.full((off + batch + 1, rows), inf_code, dtype=code.dtype)
    f[off, 1:] = 0  # B' = 0 needs nothing, whatever T' >= 0
    if nb:
        cols = off + np.arange(batch + 1)[None, :] - batches[:, None]  # column of B' - b, per (j, B')
        flat_f, flat_l = f.ravel(), lm.ravel()
        lpos = (np.arange(nb) * rows)[:, None] + np.ones(cols.shape, dtype=np.intp)  # lm[j, t*], t* = 1
        cidx = cols * rows + 1  # F[T' - t*][B' - b] for T' = 1, t* = 1
        before = np.full(cols.shape, inf_code, dtype=code.dtype)  # Lm[t* - 1]
        for tp in range(1, cores + 1):
            a, c = flat_l[lpos], flat_f[cidx]
            step = a > c  # not crossed yet at t*: t* moves up by one
            before = np.where(step, a, before)
            lpos += step
            cidx -= step
            at = np.where(step, flat_f[cidx], c)  # F[T' - t*]
            row = np.minimum(before, at).min(axis=0)
            row[0] = 0
            f[off:, 1 + tp] = row
            cidx += 1  # next row: T' + 1
    return values[f[off:, 1:].T]


def fill_exact(latency: np.ndarray, batches: np.ndarray, batch: int) -> np.ndarray:
    """F for Σt == T' exactly (the paper's rule): no envelope, a vectorised scan over t per row."""
    cores = latency.shape[0] - 1
    off = int(batches.max()) if batches.size else 0
    table = np.full((cores + 2, off + batch + 1), np.inf)  # row 0 is T' = -1, columns < off are B' < 0
    table[1, off] = 0.0  # only T' = 0 covers B' = 0
    if batches.size == 0:
        return table[1:, off:].copy()
    cols = off + np.arange(batch + 1)[None, :] - batches[:, None]
    measured = np.flatnonzero(np.isfinite(latency).any(axis=1))
    for tp in range(1, cores + 1):
        ts = measured[measured <= tp]
        if ts.size == 0:
            continue
        rest = table[tp - ts + 1][:, cols]  # (k, nb, B+1): F[T'-t][B'-b]
        cand = np.maximum(latency[ts][:, :, None], rest)
        table[tp + 1, off:] = cand.min(axis=(0, 1))
    return table[1:, off:].copy()
