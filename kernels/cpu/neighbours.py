"""Nearest anchors of other videos by cosine similarity: the CPU twin of ``lanp_topk_*`` and
``cv_inverse_norm_row`` in cuda/lanp.cu (its cross-video section).

For every snippet row x_i (of local video v, global video v + first_video) and anchors a_0 ..
a_{A-1} with videos anchor_video[a]:

    s_ia = (x_i . a_a) / (||x_i|| ||a_a||)          over the anchors with anchor_video[a] != video(i)

and the k largest s_ia, largest first, ties to the lower anchor index (index -1, similarity -inf
where fewer than k anchors are eligible).

Norms are float64 sums of squares; the dot products are one BLAS matmul per chunk of rows in the
compute dtype against the unit-normalised anchors (numpy's matmul through OpenBLAS: 3.6x the rate
of lanp's own 4 x 4 Gram tiles of cpu/tiles.py on a 4096 x 3220 x 1024 float32 block on 2 cores),
so memory is O(chunk x A). The row's 1/||x_i|| is applied in float64 inside the top-k, which
does not change the order of a row's similarities. The k kept similarities are then recomputed
in float64 (``rescore_row``): the matmul picks the candidates, the values returned are float64
cosines that do not depend on the chunking (only a near-tie within the compute dtype's rounding
can pick another anchor).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..codes import STATUS_NONFINITE, STATUS_OK, STATUS_ZERO
from .flags import FASTMATH

CHUNK_BYTES = 1 << 26          # the (rows x A) similarity block of one matmul: 64 MiB


@njit(cache=True, fastmath=FASTMATH)
def sum_of_squares(row):
    """sum_d row_d^2 in float64 (vectorised: its own function, so that the fastmath flags stay
    off the finiteness tests of the caller, where LLVM dropped them)."""
    acc = 0.0
    for d in range(row.shape[0]):
        v = np.float64(row[d])
        acc += v * v
    return acc


@njit(cache=True, parallel=True)
def inverse_norms(x, dtype_max, inv, status):
    """inv[i] = 1 / ||x_i|| (float64 sum of squares) and status[i] = STATUS_OK, STATUS_NONFINITE
    (NaN/Inf, or ||x_i||^2 above ``dtype_max``, the largest value of the compute dtype) or
    STATUS_ZERO (an all-zero row); inv[i] = 0 for a bad row."""
    for i in prange(x.shape[0]):
        acc = sum_of_squares(x[i])
        if not math.isfinite(acc) or acc > dtype_max:
            status[i] = STATUS_NONFINITE
            inv[i] = 0.0
        elif acc == 0.0:
            status[i] = STATUS_ZERO
            inv[i] = 0.0
        else:
            status[i] = STATUS_OK
            inv[i] = 1.0 / math.sqrt(acc)


@njit(cache=True, inline="always")
def topk_row(sims, scale, video, anchor_video, index, similarity):
    """The k = len(index) largest scale * sims[a] over anchors a with anchor_video[a] != video,
    written to index / similarity, largest first; an equal value never displaces an earlier (lower)
    anchor. Unfilled places: -1 / -inf. (Twin of cv_topk_row in cuda/lanp.cu.)"""
    k = index.shape[0]
    for j in range(k):
        index[j] = -1
        similarity[j] = -np.inf
    worst = -np.inf                         # similarity[k - 1], kept in a register
    for a in range(sims.shape[0]):
        s = np.float64(sims[a]) * scale
        if not s > worst or anchor_video[a] == video:
            continue
        j = k - 1
        while j > 0 and s > similarity[j - 1]:
            similarity[j] = similarity[j - 1]
            index[j] = index[j - 1]
            j -= 1
        similarity[j] = s
        index[j] = a
        worst = similarity[k - 1]


@njit(cache=True, fastmath=FASTMATH)
def dot64(row, unit):
    """row . unit in float64 (a fixed order for given shapes)."""
    acc = 0.0
    for d in range(row.shape[0]):
        acc += np.float64(row[d]) * unit[d]
    return acc


@njit(cache=True, inline="always")
def rescore_row(row, scale, unit, index, similarity):
    """The kept places' similarities again in float64 (row . unit anchor * scale), re-sorted
    (largest first, ties to the lower anchor): the values then depend on the row and the anchor
    alone, not on the matmul's blocking, and carry float64 accuracy. (Twin of cv_rescore_row in cuda/lanp.cu.)"""
    k = index.shape[0]
    for j in range(k):
        if index[j] >= 0:
            similarity[j] = dot64(row, unit[index[j]]) * scale
    for j in range(1, k):                   # insertion sort of the (at most k) filled places
        a = index[j]
        s = similarity[j]
        if a < 0:
            break
        m = j
        while m > 0 and (s > similarity[m - 1] or (s == similarity[m - 1] and a < index[m - 1])):
            similarity[m] = similarity[m - 1]
            index[m] = index[m - 1]
            m -= 1
        similarity[m] = s
        index[m] = a


@njit(cache=True, parallel=True)
def topk_rows(sims, x, inv, unit, row_video, anchor_video, index, similarity):
    """:func:`topk_row` then :func:`rescore_row` for every row r of a chunk: sims (R, A) the
    matmul's dot products with the unit anchors (compute dtype), x (R, D) the rows, inv (R,)
    1/||x_r||, unit (A, D) float64 unit anchors, row_video (R,) the rows' global videos;
    index / similarity (R, k)."""
    for r in prange(sims.shape[0]):
        topk_row(sims[r], inv[r], row_video[r], anchor_video, index[r], similarity[r])
        rescore_row(x[r], inv[r], unit, index[r], similarity[r])


def chunk_rows(A: int, itemsize: int, N: int) -> int:
    """Rows per matmul: the (rows x A) block within CHUNK_BYTES, at least 64 rows."""
    return int(max(64, min(N, CHUNK_BYTES // max(1, A * itemsize))))


def anchor_neighbours(x, offsets, anchors, anchor_video, k, first_video, dt, on_bad_row, on_bad_anchor,
                      index, similarity):
    """Fill index / similarity (N, k) for every row of x (N, D) (see the module docstring).

    on_bad_row(row, status) / on_bad_anchor(a, status) raise the InputError; rows are checked a
    chunk at a time, in order, so the first bad row is the one reported."""
    N = x.shape[0]
    A = anchors.shape[0]
    dtype_max = float(np.finfo(dt).max)
    inv_a = np.empty(A)
    status_a = np.empty(A, dtype=np.int8)
    if A:
        inverse_norms(anchors, dtype_max, inv_a, status_a)
        bad = np.flatnonzero(status_a != STATUS_OK)
        if bad.size:
            on_bad_anchor(int(bad[0]), int(status_a[bad[0]]))
    unit64 = np.ascontiguousarray(anchors * inv_a[:, None], dtype=np.float64)
    unit = np.ascontiguousarray(unit64, dtype=dt)
    anchor_video = np.ascontiguousarray(anchor_video, dtype=np.int64)
    video_of_row = np.repeat(np.arange(offsets.shape[0] - 1, dtype=np.int64) + first_video, np.diff(offsets))
    chunk = chunk_rows(A, np.dtype(dt).itemsize, N)
    sims = np.empty((chunk, A), dtype=dt)
    inv = np.empty(chunk)
    status = np.empty(chunk, dtype=np.int8)
    for lo in range(0, N, chunk):
        hi = min(N, lo + chunk)
        xc = np.ascontiguousarray(x[lo:hi], dtype=dt)
        inverse_norms(xc, dtype_max, inv[:hi - lo], status[:hi - lo])
        bad = np.flatnonzero(status[:hi - lo] != STATUS_OK)
        if bad.size:
            on_bad_row(lo + int(bad[0]), int(status[bad[0]]))
        np.matmul(xc, unit.T, out=sims[:hi - lo])
        topk_rows(sims[:hi - lo], xc, inv[:hi - lo], unit64, video_of_row[lo:hi], anchor_video,
                  index[lo:hi], similarity[lo:hi])
