"""Loss-weight distances: each snippet's distance to the nearest mean of a normal list.

x (n, D), means (M, D); 4 rows x 4 means register tiles (:func:`lanp.kernels.cpu.tiles.dot_tile`),
parallel over row blocks. A row's value depends on that row alone (the same operations in the
same order wherever the row sits), so chunked and sharded runs give bit-identical weights.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from ..codes import COSINE
from .flags import FASTMATH
from .packed import run_threads
from .tiles import dot_tile

COSINE_EPS = 1e-6                    # torch.nn.CosineSimilarity(eps=1e-6), as the public code uses


def max_cosine(x, unit_means, zero, out):
    """out[q] = max_m (x_q . u_m) / ||x_q|| for unit rows u (the loss-weight distance is 1 - out).

    x (n, D), unit_means (M, D) in the same dtype; 4 rows x 4 means register tiles, the row
    blocks split evenly over numba's thread count (:func:`packed.run_threads`, a serial nogil
    kernel per thread). Each row's result depends on that row alone (same operation order
    whatever the chunking), so chunked and sharded runs give bit-identical weights. A zero row
    gives NaN."""
    blocks = (x.shape[0] + 3) // 4
    threads = max(1, min(numba.get_num_threads(), blocks))
    bounds = np.linspace(0, blocks, threads + 1).astype(np.int64)
    run_threads(max_cosine_blocks, bounds, x, unit_means, zero, out)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def max_cosine_blocks(b0, b1, x, unit_means, zero, out):
    """:func:`max_cosine` for the row blocks [b0, b1) (rows 4 b0 .. 4 b1 - 1)."""
    n, D = x.shape
    M = unit_means.shape[0]
    for b in range(b0, b1):
        i0 = 4 * b
        i1 = min(i0 + 1, n - 1)
        i2 = min(i0 + 2, n - 1)
        i3 = min(i0 + 3, n - 1)
        best = np.full(4, -np.inf)
        for m0 in range(0, M, 4):
            m1 = min(m0 + 1, M - 1)
            m2 = min(m0 + 2, M - 1)
            m3 = min(m0 + 3, M - 1)
            tile = dot_tile(x, i0, i1, i2, i3, unit_means, m0, m1, m2, m3, zero, x, 0, 0)
            for r in range(4):
                row = tile[r]
                best[r] = max(best[r], max(max(row[0], row[1]), max(row[2], row[3])))
        for r in range(4):
            i = i0 + r
            if i >= n:
                break
            acc = zero
            for d in range(D):
                acc += x[i, d] * x[i, d]
            out[i] = best[r] / math.sqrt(acc)


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def weight_distance_rows(x, means, kind, out):
    """out[q] = min_m d(x_q, m) over the normal list ``means`` (float64 throughout):

        kind COSINE: d = 1 - x_q . m / max(||x_q|| ||m||, 1e-6)     (torch CosineSimilarity)
        kind RMS:    d = sqrt(max(||x_q||^2 + ||m||^2 - 2 x_q . m, 0) / D)

    x (n, D), means (M, D) float64. 4 rows x 4 means register tiles (:func:`cpu.dot_tile`),
    parallel over row blocks; a row's value depends on that row alone (the same operations in the
    same order wherever the row sits), so chunked and sharded runs give bit-identical weights."""
    n, D = x.shape
    M = means.shape[0]
    mean_sq = np.empty(M)
    for m in range(M):
        acc = 0.0
        for d in range(D):
            acc += means[m, d] * means[m, d]
        mean_sq[m] = acc
    for b in prange((n + 3) // 4):
        rows = (4 * b, min(4 * b + 1, n - 1), min(4 * b + 2, n - 1), min(4 * b + 3, n - 1))
        row_sq = np.empty(4)
        for r in range(4):
            acc = 0.0
            for d in range(D):
                acc += x[rows[r], d] * x[rows[r], d]
            row_sq[r] = acc
        best = np.full(4, np.inf)
        for m0 in range(0, M, 4):
            cols = (m0, min(m0 + 1, M - 1), min(m0 + 2, M - 1), min(m0 + 3, M - 1))
            tile = dot_tile(x, rows[0], rows[1], rows[2], rows[3], means, cols[0], cols[1], cols[2],
                            cols[3], 0.0, x, 0, 0)
            for r in range(4):
                for c in range(4):
                    dot = tile[r][c]
                    if kind == COSINE:
                        d = 1.0 - dot / max(math.sqrt(row_sq[r]) * math.sqrt(mean_sq[cols[c]]), COSINE_EPS)
                    else:
                        d = max(row_sq[r] + mean_sq[cols[c]] - 2.0 * dot, 0.0)
                    best[r] = min(best[r], d)
        for r in range(4):
            i = 4 * b + r
            if i >= n:
                break
            out[i] = best[r] if kind == COSINE else math.sqrt(best[r] / D)
