"""Dot products in register tiles: the Gram matrix G_ij = x_i . x_j of one video's rows.

xv (L, D) float32/float64; G is (L, L) (dense layout) or (L, 2k+1) (band layout, column
c <-> j = i + c - k); only i <= j <= i + k is written. Sums accumulate in the feature dtype
(the dtype of ``zero``) through the explicit vectors of :mod:`lanp.kernels.cpu.simd`.
"""
from __future__ import annotations

from numba import njit

from .flags import FASTMATH_ORDERED
from .simd import dot_tile_columns, dot_triangles_columns


@njit(cache=True, fastmath=FASTMATH_ORDERED, inline="always")
def dot_tile(X, i0, i1, i2, i3, Y, j0, j1, j2, j3, zero, P, prefetch_lo, prefetch_hi):
    """The 4 x 4 tile ((X_ir . Y_jc)) accumulated in the dtype of ``zero`` (that of X and Y).

    Unit-stride rows go through :func:`simd.dot_tile_columns` (explicit vectors: 8 loads and 16
    FMAs per vector of columns), which also prefetches bytes [prefetch_lo, prefetch_hi) of P into
    L2 along the way; strided rows are summed here, column by column.
    Each sum depends only on its own two rows (same order always)."""
    D = X.shape[1]
    unit_stride = X.strides[1] == X.itemsize and Y.strides[1] == Y.itemsize
    vector_columns = D if unit_stride else 0
    s = dot_tile_columns(X, (i0, i1, i2, i3), Y, (j0, j1, j2, j3), P, prefetch_lo,
                         prefetch_hi, vector_columns)
    a00 = s[0]; a01 = s[1]; a02 = s[2]; a03 = s[3]
    a10 = s[4]; a11 = s[5]; a12 = s[6]; a13 = s[7]
    a20 = s[8]; a21 = s[9]; a22 = s[10]; a23 = s[11]
    a30 = s[12]; a31 = s[13]; a32 = s[14]; a33 = s[15]
    for d in range(vector_columns, D):
        u0 = X[i0, d]; u1 = X[i1, d]; u2 = X[i2, d]; u3 = X[i3, d]
        w0 = Y[j0, d]; w1 = Y[j1, d]; w2 = Y[j2, d]; w3 = Y[j3, d]
        a00 += u0 * w0; a01 += u0 * w1; a02 += u0 * w2; a03 += u0 * w3
        a10 += u1 * w0; a11 += u1 * w1; a12 += u1 * w2; a13 += u1 * w3
        a20 += u2 * w0; a21 += u2 * w1; a22 += u2 * w2; a23 += u2 * w3
        a30 += u3 * w0; a31 += u3 * w1; a32 += u3 * w2; a33 += u3 * w3
    return ((a00, a01, a02, a03), (a10, a11, a12, a13),
            (a20, a21, a22, a23), (a30, a31, a32, a33))


@njit(cache=True, fastmath=FASTMATH_ORDERED, inline="always")
def dot_triangles(X, a0, a1, a2, a3, b0, b1, b2, b3, zero, P, prefetch_lo, prefetch_hi):
    """Upper triangles (diagonal included) of the 4 x 4 Gram blocks of rows a and rows b of X:
    two 10-tuples in row-major order (see :func:`simd.dot_triangles_columns`); strided rows are
    summed here, like in :func:`dot_tile`."""
    D = X.shape[1]
    vector_columns = D if X.strides[1] == X.itemsize else 0
    s = dot_triangles_columns(X, (a0, a1, a2, a3), X, (b0, b1, b2, b3), P, prefetch_lo,
                              prefetch_hi, vector_columns)
    p00 = s[0]; p01 = s[1]; p02 = s[2]; p03 = s[3]; p11 = s[4]
    p12 = s[5]; p13 = s[6]; p22 = s[7]; p23 = s[8]; p33 = s[9]
    q00 = s[10]; q01 = s[11]; q02 = s[12]; q03 = s[13]; q11 = s[14]
    q12 = s[15]; q13 = s[16]; q22 = s[17]; q23 = s[18]; q33 = s[19]
    for d in range(vector_columns, D):
        u0 = X[a0, d]; u1 = X[a1, d]; u2 = X[a2, d]; u3 = X[a3, d]
        w0 = X[b0, d]; w1 = X[b1, d]; w2 = X[b2, d]; w3 = X[b3, d]
        p00 += u0 * u0; p01 += u0 * u1; p02 += u0 * u2; p03 += u0 * u3; p11 += u1 * u1
        p12 += u1 * u2; p13 += u1 * u3; p22 += u2 * u2; p23 += u2 * u3; p33 += u3 * u3
        q00 += w0 * w0; q01 += w0 * w1; q02 += w0 * w2; q03 += w0 * w3; q11 += w1 * w1
        q12 += w1 * w2; q13 += w1 * w3; q22 += w2 * w2; q23 += w2 * w3; q33 += w3 * w3
    return ((p00, p01, p02, p03, p11, p12, p13, p22, p23, p33),
            (q00, q01, q02, q03, q11, q12, q13, q22, q23, q33))


@njit(cache=True)
def _byte_span(rows):
    """Bytes of a C-contiguous 2-D array (its rows back to back)."""
    return rows.shape[0] * rows.strides[0] if rows.shape[0] > 0 else 0


@njit(cache=True, inline="always")
def _store_gram(G, i, j, value, L, k, dense_layout):
    """G[i, j] (dense layout) or G[i, j - i + k] (band) for i <= j <= i + k inside the video."""
    if i < L and j < L and i <= j <= i + k:
        G[i, j if dense_layout else j - i + k] = value


@njit(cache=True, inline="always")
def _store_triangle(G, i0, t, L, k, dense_layout):
    """The upper triangle of the diagonal block at rows i0..i0+3 (a 10-tuple, row-major)."""
    q = 0
    for r in range(4):
        for c in range(r, 4):
            _store_gram(G, i0 + r, i0 + c, t[q], L, k, dense_layout)
            q += 1


@njit(cache=True, fastmath=FASTMATH_ORDERED)
def gram_tiles(xv, zero, k, dense_layout, G, ahead):
    """G = x_i . x_j for i <= j <= i + k (the diagonal included), in register tiles: 4 x 4 tiles
    off the diagonal, and the upper triangles of two diagonal blocks at a time (528 dot products
    for L = 32, the minimum, instead of 576).

    Stored at G[i, j] (dense_layout, k = L-1) or G[i, j - i + k] (band layout). Rows past the end
    are clamped to L-1 (computed, never stored). While the tiles run, the rows the kernel needs
    next are prefetched into L2, a share per call: ``ahead`` (the next video) for a dense graph,
    which then streams from DRAM under this video's arithmetic; for a band, the 4 rows the row
    block after next adds (then ``ahead``'s are not needed yet)."""
    L = xv.shape[0]
    blocks = (L + 3) // 4
    row_bytes = xv.strides[0]
    if dense_layout:
        total = _byte_span(ahead)
        calls = blocks * (blocks - 1) // 2 + (blocks + 1) // 2
        per_call = (total // calls + 64) // 64 * 64
        source = ahead
        start = 0
        stop = total
    else:
        source = xv
    call = 0
    for i0 in range(0, L, 4):
        i1 = min(i0 + 1, L - 1)
        i2 = min(i0 + 2, L - 1)
        i3 = min(i0 + 3, L - 1)
        paired = (i0 // 4) % 2 == 0
        j_stop = min(L, i0 + 4 + k)
        if not dense_layout:                    # prefetch the rows the next row block adds
            first = min(L, i0 + k + 7)
            last = min(L, i0 + k + 11)
            calls_in_row = (j_stop - i0 - 1) // 4 + (1 if paired else 0)
            per_call = ((last - first) * row_bytes // max(calls_in_row, 1) + 64) // 64 * 64
            start = first * row_bytes
            stop = last * row_bytes
            call = 0
        if paired:                              # diagonal blocks i0 and i0 + 4 together
            b0 = i0 + 4 if i0 + 4 < L else i0
            lo = min(stop, start + call * per_call)
            t = dot_triangles(xv, i0, i1, i2, i3, b0, min(b0 + 1, L - 1), min(b0 + 2, L - 1),
                              min(b0 + 3, L - 1), zero, source, lo, min(stop, lo + per_call))
            call += 1
            _store_triangle(G, i0, t[0], L, k, dense_layout)
            if b0 != i0:
                _store_triangle(G, b0, t[1], L, k, dense_layout)
        for j0 in range(i0 + 4, j_stop, 4):
            lo = min(stop, start + call * per_call)
            t = dot_tile(xv, i0, i1, i2, i3, xv, j0, min(j0 + 1, L - 1), min(j0 + 2, L - 1),
                         min(j0 + 3, L - 1), zero, source, lo, min(stop, lo + per_call))
            call += 1
            if dense_layout and j0 + 3 < L:     # a whole tile above the diagonal: no checks
                for r in range(4):
                    row = t[r]
                    G[i0 + r, j0] = row[0]; G[i0 + r, j0 + 1] = row[1]
                    G[i0 + r, j0 + 2] = row[2]; G[i0 + r, j0 + 3] = row[3]
            else:
                for r in range(4):
                    for c in range(4):
                        _store_gram(G, i0 + r, j0 + c, t[r][c], L, k, dense_layout)
