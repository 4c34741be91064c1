"""CPU twins of the propagation kernels (numba, parallel over videos).

Packed ragged input: features x (N, D) float32/float64 and offsets (V+1,) int64; video v owns rows
offsets[v]:offsets[v+1]. Per video of length L:

    a_ij  = log Wf_ij - |i - j| / s               (log affinity; a_ii = -inf)
    S_ij  = W_ij / sqrt(d_i d_j), W_ij = exp(a_ij - m), m = max a   (dense, a within 700 of m)
    S_ij  = exp(a_ij - (lse_i + lse_j) / 2), lse_i = logsumexp_j a_ij  (otherwise: exact where
                                                  W underflows)
    (I - alpha S) z = y  by conjugate gradient, y = 1 at the seeds.

Squared distances accumulate in the feature dtype across SIMD lanes (float32 products in float32
lanes): dense graphs as a Gram matrix of the mean-centred rows, banded graphs by direct differences;
logs, S and CG are float64. A dense graph is stored as an (L, L) float64
scratch matrix, a banded one (half-width k) as (L, 2k+1) with column c <-> j = i + c - k.
At most one such matrix per thread exists at a time.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from . import cache_guard
from .simd import dot_tile_columns, dot_triangles_columns, exp_finite, exp_flush

# keep NaN/Inf semantics (no 'nnan'/'ninf'): -inf marks missing edges, NaN marks bad input
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}

SQEUCLIDEAN, RMS, COSINE = 0, 1, 2
BAND_COMPACT_ENTRIES = 1 << 17      # bands above 1 MiB: CG on a compact copy of the upper half
STATUS_OK, STATUS_NONFINITE, STATUS_ZERO = 0, 1, 2


@njit(cache=True, fastmath=FASTMATH)
def squared_norms(xv, zero, needs_nonzero, out):
    """out[i] = ||x_i||^2 (float64). Returns (status, snippet): a non-finite row, or a zero row
    when ``needs_nonzero`` (cosine or L2 normalisation), is reported instead of computed on."""
    L, D = xv.shape
    for i in range(L):
        acc = zero
        for d in range(D):
            v = xv[i, d]
            acc += v * v
        n = np.float64(acc)
        if not math.isfinite(n):
            return STATUS_NONFINITE, i
        if needs_nonzero and n == 0.0:
            return STATUS_ZERO, i
        out[i] = n
    return STATUS_OK, -1


@njit(cache=True, fastmath=FASTMATH, inline="always")
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


@njit(cache=True, fastmath=FASTMATH, inline="always")
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


@njit(cache=True, fastmath=FASTMATH)
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


@njit(cache=True, fastmath=FASTMATH)
def centred_rows(xv, out):
    """out = x_i minus the video mean, in the feature dtype.

    Distances are unchanged by the shift, but ||x_i - x_j||^2 = G_ii + G_jj - 2 G_ij then cancels
    on the spread of the video instead of on the norms (raw features: norms >> distances)."""
    L, D = xv.shape
    mean = np.zeros(D)
    for i in range(L):
        for d in range(D):
            mean[d] += xv[i, d]
    for d in range(D):
        mean[d] /= L
    for i in range(L):
        for d in range(D):
            out[i, d] = xv[i, d] - mean[d]


@njit(cache=True, fastmath=FASTMATH)
def _row_scale(norms, i, unit, zero):
    return zero + (1.0 / math.sqrt(norms[i]) if unit else 1.0)


@njit(cache=True, fastmath=FASTMATH)
def pair_distances(xv, norms, unit, zero, k, dense_layout, B):
    """||x_i - x_j||^2 (rows scaled to unit norm if ``unit``) for i < j <= i + k by direct
    differences (exact zero for repeated snippets, accurate near zero), in 1 x 4 tiles.

    Stored at B[i, j] (dense_layout, k = L-1) or B[i, j - i + k] (band layout)."""
    L, D = xv.shape
    for i in range(L):
        jmax = min(L - 1, i + k)
        ti = _row_scale(norms, i, unit, zero)
        shift = 0 if dense_layout else k - i
        j = i + 1
        while j <= jmax:
            j1 = min(j + 1, L - 1)
            j2 = min(j + 2, L - 1)
            j3 = min(j + 3, L - 1)
            t0 = _row_scale(norms, j, unit, zero)
            t1 = _row_scale(norms, j1, unit, zero)
            t2 = _row_scale(norms, j2, unit, zero)
            t3 = _row_scale(norms, j3, unit, zero)
            a0 = zero; a1 = zero; a2 = zero; a3 = zero
            for d in range(D):
                u = xv[i, d] * ti
                e0 = u - xv[j, d] * t0
                e1 = u - xv[j1, d] * t1
                e2 = u - xv[j2, d] * t2
                e3 = u - xv[j3, d] * t3
                a0 += e0 * e0; a1 += e1 * e1; a2 += e2 * e2; a3 += e3 * e3
            vals = (a0, a1, a2, a3)
            for c in range(4):
                if j + c <= jmax:
                    B[i, j + c + shift] = vals[c]
            j += 4


@njit(cache=True, fastmath=FASTMATH)
def log_affinity(d2, dt, D, distance, inv_two_sigma2, inv_scale):
    """a_ij = log Wf_ij - |i-j|/s from the squared distance d2 (of unit rows for cosine)."""
    if d2 < 0.0:
        d2 = 0.0
    if distance == COSINE:
        c = 1.0 - 0.5 * d2                  # cos = 1 - ||u - v||^2 / 2 for unit u, v
        if c <= 0.0:
            return -np.inf
        return math.log(c) - dt * inv_scale
    if distance == RMS:
        return -math.sqrt(d2 / D) * inv_two_sigma2 - dt * inv_scale
    return -d2 * inv_two_sigma2 - dt * inv_scale


@njit(cache=True, fastmath=FASTMATH)
def build_graph(xv, zero, k, distance, normalize, inv_two_sigma2, temporal_scale, S, lse, ahead):
    """Fill S (L, L) if k == 0, else (L, 2k+1) band, with the normalised similarity of one video.

    temporal_scale <= 0 means s = L. ``lse`` (L,) is scratch (row log-sum-exps or degrees).
    ``ahead``: the rows this thread processes next (prefetched under the Gram tiles; may be empty).
    Returns (status, snippet) like :func:`squared_norms`; S is unusable unless status is OK.
    Squared distances d2 (exactly 0 for repeated snippets on the direct-difference paths, a few
    ulps from 0 and clamped at 0 on the Gram paths) first go to the upper half of S:
      sqeuclidean/cosine on unit rows (dense or banded): Gram tiles G,
          d2 = 2 - 2 G_ij / sqrt(G_ii G_jj) (norms and validation from the diagonal: no extra pass);
      dense sqeuclidean on raw rows: Gram of the mean-centred rows (cancels on the spread of the
          video, not on the norms);
      rms (whose sqrt amplifies any error near d2 = 0) and banded raw rows: direct differences.
    Sqeuclidean unit rows go straight from the Gram to S (:func:`dense_unit_graph`,
    :func:`banded_unit_graph`) when no W can underflow; other
    dense graphs through :func:`normalise_dense_shifted`, or the log domain when their log
    affinities span too far; bands through :func:`normalise_log_affinity`.
    """
    L, D = xv.shape
    unit = normalize or distance == COSINE
    inv_scale = 1.0 / (L if temporal_scale <= 0.0 else temporal_scale)
    dense = k == 0
    if unit and distance != RMS:
        kk = L - 1 if dense else k
        diag = 0 if dense else k             # column of the diagonal: ||x_i||^2 until replaced
        gram_tiles(xv, zero, kk, dense, S, ahead)
        for i in range(L):                  # validate on the diagonal
            n = np.float64(S[i, i if dense else diag])
            if not math.isfinite(n):
                return STATUS_NONFINITE, i
            if n == 0.0:
                return STATUS_ZERO, i
        inv_norm = np.empty(L)
        for i in range(L):
            inv_norm[i] = 1.0 / math.sqrt(S[i, i if dense else diag])
        if distance == SQEUCLIDEAN and unit_graph_needs_no_shift(kk + 1, inv_two_sigma2, inv_scale):
            if dense:
                dense_unit_graph(S, inv_norm, inv_two_sigma2, inv_scale, lse, xv.itemsize == 4)
            else:
                banded_unit_graph(S, inv_norm, k, inv_two_sigma2, inv_scale, lse, xv.itemsize == 4)
            return STATUS_OK, -1
        for i in range(L):
            shift = 0 if dense else k - i
            scale = 2.0 * inv_norm[i]
            for j in range(i + 1, min(L, i + kk + 1)):
                S[i, j + shift] = 2.0 - scale * S[i, j + shift] * inv_norm[j]
    else:
        norms = np.empty(L)
        status, where = squared_norms(xv, zero, unit, norms)
        if status != STATUS_OK:
            return status, where
        if dense and distance != RMS:
            centred = np.empty_like(xv)
            centred_rows(xv, centred)
            gram_tiles(centred, zero, L - 1, True, S, ahead)
            for i in range(L):
                for j in range(i + 1, L):
                    S[i, j] = S[i, i] + S[j, j] - 2.0 * S[i, j]
        else:
            pair_distances(xv, norms, unit, zero, L - 1 if dense else k, dense, S)
    # d2 -> log affinity, mirrored; -inf on the diagonal and outside the video
    if dense:
        for i in range(L):
            for j in range(i + 1, L):
                S[i, j] = log_affinity(S[i, j], j - i, D, distance, inv_two_sigma2, inv_scale)
        if not normalise_dense_shifted(S, lse):
            for i in range(L):
                S[i, i] = -np.inf
            mirror_upper(S)
            normalise_log_affinity(S, k, lse)
        return STATUS_OK, -1
    else:
        width = 2 * k + 1
        for i in range(L):
            for c in range(k + 1):          # lower half and diagonal: filled from earlier rows
                if c == k or i + c - k < 0:
                    S[i, c] = -np.inf
            for c in range(k + 1, width):
                j = i + c - k
                if j >= L:
                    S[i, c] = -np.inf
                else:
                    a = log_affinity(S[i, c], c - k, D, distance, inv_two_sigma2, inv_scale)
                    S[i, c] = a
                    S[j, 2 * k - c] = a
    normalise_log_affinity(S, k, lse)
    return STATUS_OK, -1


SHIFT_SPREAD_LIMIT = 700.0      # exp(-700) = 1e-304: still a normal float64


@njit(cache=True, fastmath=FASTMATH)
def _finite_extremes(values, top, bottom):
    """(max(top, max values), min(bottom, min of the values > -inf)) in four independent lanes
    (LLVM does not vectorise float max/min reductions; four chains at least overlap)."""
    t0 = t1 = t2 = t3 = top
    b0 = b1 = b2 = b3 = bottom
    n = values.shape[0]
    c = 0
    while c + 4 <= n:
        a0 = values[c]; a1 = values[c + 1]; a2 = values[c + 2]; a3 = values[c + 3]
        t0 = a0 if a0 > t0 else t0; t1 = a1 if a1 > t1 else t1
        t2 = a2 if a2 > t2 else t2; t3 = a3 if a3 > t3 else t3
        b0 = a0 if -np.inf < a0 < b0 else b0; b1 = a1 if -np.inf < a1 < b1 else b1
        b2 = a2 if -np.inf < a2 < b2 else b2; b3 = a3 if -np.inf < a3 < b3 else b3
        c += 4
    while c < n:
        a0 = values[c]
        t0 = a0 if a0 > t0 else t0
        b0 = a0 if -np.inf < a0 < b0 else b0
        c += 1
    return max(max(t0, t1), max(t2, t3)), min(min(b0, b1), min(b2, b3))


@njit(cache=True)
def unit_graph_needs_no_shift(L, inv_two_sigma2, inv_scale):
    """For unit rows d2 <= 4, so a_ij >= -4 / (2 sigma^2) - (L-1) / s: W_ij = exp(a_ij) stays a
    normal float64 (no shift, no scan for the range) while that bound is above -SHIFT_SPREAD_LIMIT
    (sigma = 0.1: -201; the 4.01 covers float32 rounding of |cos| <= 1)."""
    return 4.01 * inv_two_sigma2 + (L - 1) * inv_scale <= SHIFT_SPREAD_LIMIT


@njit(cache=True, fastmath=FASTMATH)
def dense_unit_graph(S, inv_norm, inv_two_sigma2, inv_scale, degree, coarse_exp):
    """The dense graph of unit rows, sqeuclidean, from the Gram tiles in S's upper triangle:

        d2_ij = max(0, 2 - 2 G_ij inv_i inv_j),  W_ij = exp(-d2_ij / (2 sigma^2) - |i-j| / s),
        S_ij = W_ij / sqrt(d_i d_j),  d_i = sum_j W_ij,

    valid when :func:`unit_graph_needs_no_shift` (no W can underflow). Every pass runs over whole
    rows of S (L, L) from column 0, so LLVM vectorises them, the exp included; entries on and
    below the diagonal (unset by the Gram) are computed then discarded, then mirrored from
    above. inv_norm (L,): 1 / ||x_i||; degree (L,): scratch. coarse_exp (float32 features):
    exp to 1e-8 relative (:func:`simd.exp_finite`), below the float32 Gram's own rounding."""
    L = S.shape[0]
    for i in range(L):
        row = S[i]
        scale = 2.0 * inv_norm[i]
        for c in range(L):
            gram = row[c] if c > i else 0.0   # never compute on the unset half (could be subnormal)
            d2 = max(2.0 - scale * gram * inv_norm[c], 0.0)
            row[c] = exp_finite(-d2 * inv_two_sigma2 - abs(c - i) * inv_scale, coarse_exp)
    normalise_upper_weights(S, degree)


@njit(cache=True, fastmath=FASTMATH)
def normalise_upper_weights(S, degree):
    """S_ij <- W_ij / sqrt(d_i d_j), d_i = sum_j W_ij, for W held strictly above the diagonal of S
    (L, L) (what is on and below it is ignored); the result is symmetric, zero on the diagonal
    and for isolated snippets. Whole-row passes from column 0, so they vectorise. degree (L,):
    scratch."""
    L = S.shape[0]
    for i in range(L):
        S[i, :i + 1] = 0.0                   # diagonal and the lower half: not edges
    degree[:] = 0.0
    for i in range(L):                      # d_i = (column sums so far: W_ri, r < i) + row sum
        row = S[i]
        acc = 0.0
        for c in range(L):
            w = row[c]
            acc += w
            degree[c] += w
        degree[i] += acc
    inverse_square_roots(degree)
    for i in range(L):
        row = S[i]
        scale = degree[i]
        for c in range(L):
            row[c] *= scale * degree[c]
    mirror_upper(S)


@njit(cache=True)
def inverse_square_roots(degree):
    """degree <- 1 / sqrt(degree) in place, 0 where the degree is 0 (isolated snippets)."""
    for i in range(degree.shape[0]):
        degree[i] = 1.0 / math.sqrt(degree[i]) if degree[i] > 0.0 else 0.0


@njit(cache=True)
def mirror_upper(S):
    """S[i, j] <- S[j, i] for j < i (a dense symmetric matrix from its upper triangle)."""
    for i in range(1, S.shape[0]):
        for j in range(i):
            S[i, j] = S[j, i]


@njit(cache=True, fastmath=FASTMATH)
def banded_unit_graph(S, inv_norm, k, inv_two_sigma2, inv_scale, degree, coarse_exp):
    """:func:`dense_unit_graph` for a band (L, 2k+1) whose upper half (columns c > k, j = i + c - k)
    holds the Gram tiles: W_ij = exp(-d2_ij / (2 sigma^2) - |i-j| / s) for 0 < j - i <= k (one
    exp per pair, upper half only), d_i = sum_j W_ij, S_ij = W_ij / sqrt(d_i d_j) mirrored into
    the lower half; zero on the diagonal and outside the video. Valid when
    :func:`unit_graph_needs_no_shift` holds for k + 1 (the band's widest |i - j| is k).
    Row loops run over slices from 0 so they vectorise."""
    L, width = S.shape
    degree[:] = 0.0
    for i in range(L):
        n = min(k, L - 1 - i)                  # edges to the right inside the video
        row = S[i, k + 1:k + 1 + n]
        later = inv_norm[i + 1:i + 1 + n]
        scale = 2.0 * inv_norm[i]
        acc = 0.0
        for t in range(n):
            d2 = max(2.0 - scale * row[t] * later[t], 0.0)
            w = exp_finite(-d2 * inv_two_sigma2 - (t + 1) * inv_scale, coarse_exp)
            row[t] = w
            acc += w
        S[i, k + 1 + n:] = 0.0                  # past the end of the video
        degree[i] += acc
        following = degree[i + 1:i + 1 + n]
        for t in range(n):
            following[t] += row[t]
    inverse_square_roots(degree)
    for i in range(L):
        n = min(k, L - 1 - i)
        row = S[i, k + 1:k + 1 + n]
        later = degree[i + 1:i + 1 + n]
        scale = degree[i]
        for t in range(n):
            row[t] *= scale * later[t]
        S[i, k] = 0.0
        before = min(k, i)                     # lower half: mirrored from earlier rows' upper halves
        S[i, :k - before] = 0.0
        for t in range(before):
            S[i, k - 1 - t] = S[i - 1 - t, k + 1 + t]


@njit(cache=True, fastmath=FASTMATH)
def normalise_dense_shifted(S, degree):
    """S_ij <- W_ij / sqrt(d_i d_j), W_ij = exp(a_ij - m), d_i = sum_j W_ij, from the log
    affinities a in the strict upper triangle of S (L, L); the result is symmetric (mirrored).

    One shift m = max a for the whole video: an exp per pair (half of
    :func:`normalise_log_affinity`'s one per entry) and no per-row logs. Exact only while every
    finite a lies within SHIFT_SPREAD_LIMIT of m (no W underflows; always so for unit rows at
    sigma = 0.1, where a >= -201): returns False, S untouched, otherwise. ``degree`` (L,) is
    scratch. Isolated snippets (all a = -inf) get zero rows. Row loops run over slices that
    start at 0, which is what lets LLVM drop the negative-index checks and vectorise them.
    """
    L = S.shape[0]
    top = -np.inf
    bottom = np.inf
    for i in range(L - 1):
        top, bottom = _finite_extremes(S[i, i + 1:], top, bottom)
    if top == -np.inf:                       # no edge at all
        S[:, :] = 0.0
        return True
    if top - bottom > SHIFT_SPREAD_LIMIT:
        return False
    for i in range(L):
        row = S[i, i + 1:]
        for c in range(row.shape[0]):        # vectorised: exp_flush is branch-free
            row[c] = exp_flush(row[c] - top)
    normalise_upper_weights(S, degree)
    return True


@njit(cache=True, fastmath=FASTMATH | {"nnan"})
def _row_maximum(S, i):
    """max_c S[i, c] (vectorised: S holds no NaN here, the inputs were validated)."""
    m = -np.inf
    for c in range(S.shape[1]):
        m = max(m, S[i, c])
    return m


@njit(cache=True, fastmath=FASTMATH)
def normalise_log_affinity(S, k, lse):
    """S_ij <- exp(a_ij - (lse_i + lse_j) / 2) from log affinities a (-inf: no edge), in place.

    One exp per entry: the row pass keeps e_ij = exp(a_ij - m_i) (m_i the row maximum), and
    S_ij = e_ij * exp(m_i - lse_i/2 - c) * exp(c - lse_j/2) with c the midpoint of lse/2, while the
    spread of lse stays far from float64's exponent range; otherwise (raw features with huge
    distances) S_ij = exp(log e_ij + m_i - (lse_i + lse_j)/2). e_ij below exp(-708) ~ 3e-308 is
    flushed to 0 (:func:`simd.exp_flush`): S_ij <= sqrt(e_ij) < 2e-154 is negligible either way.
    Isolated rows (lse = -inf) are zero. Every loop over a row is branch-free (vectorised).
    """
    L, width = S.shape
    row_max = np.empty(L)
    lo = np.inf
    hi = -np.inf
    for i in range(L):
        m = _row_maximum(S, i)
        row_max[i] = m
        if m == -np.inf:
            lse[i] = -np.inf
            S[i, :] = 0.0
            continue
        acc = 0.0
        for c in range(width):
            e = exp_flush(S[i, c] - m)
            S[i, c] = e
            acc += e
        lse[i] = m + math.log(acc)
        lo = min(lo, lse[i])
        hi = max(hi, lse[i])
    if lo > hi:
        return
    centre = 0.25 * (lo + hi)
    if 0.5 * (hi - lo) < 600.0:              # every exponent below stays inside [-600, 600]
        half = np.empty(L)                   # exp(c - lse_j / 2), 0 for isolated snippets
        row_scale = np.empty(L)              # exp(m_i - lse_i / 2 - c)
        for j in range(L):
            isolated = lse[j] == -np.inf
            half[j] = 0.0 if isolated else exp_flush(centre - 0.5 * lse[j])
            row_scale[j] = 0.0 if isolated else exp_flush(row_max[j] - 0.5 * lse[j] - centre)
        for i in range(L):
            if lse[i] == -np.inf:
                continue
            u = row_scale[i]
            if k == 0:
                for c in range(width):
                    S[i, c] *= u * half[c]
            else:
                first = max(0, k - i)                # columns c <-> j = i + c - k inside the video
                stop = min(width, L - i + k)
                for c in range(first, stop):
                    S[i, c] *= u * half[i + c - k]
    else:
        for i in range(L):
            if lse[i] == -np.inf:
                continue
            for c in range(width):
                j = c if k == 0 else i + c - k
                e = S[i, c]
                if e > 0.0:
                    S[i, c] = math.exp(math.log(e) + row_max[i] - 0.5 * (lse[i] + lse[j]))


@njit(cache=True, fastmath=FASTMATH)
def apply_dense(S, alpha, p, q):
    """q = (I - alpha S) p for a dense S (L, L), four rows at a time (four independent
    reductions)."""
    L = p.shape[0]
    i = 0
    while i + 4 <= L:
        a0 = 0.0; a1 = 0.0; a2 = 0.0; a3 = 0.0
        for j in range(L):
            pj = p[j]
            a0 += S[i, j] * pj; a1 += S[i + 1, j] * pj
            a2 += S[i + 2, j] * pj; a3 += S[i + 3, j] * pj
        q[i] = p[i] - alpha * a0; q[i + 1] = p[i + 1] - alpha * a1
        q[i + 2] = p[i + 2] - alpha * a2; q[i + 3] = p[i + 3] - alpha * a3
        i += 4
    while i < L:
        acc = 0.0
        for j in range(L):
            acc += S[i, j] * p[j]
        q[i] = p[i] - alpha * acc
        i += 1


@njit(cache=True, fastmath=FASTMATH)
def apply_band(S, k, alpha, p, q, a, b):
    """q_i = ((I - alpha S) p)_i for rows a <= i < b of a band of half-width k > 0.

    Rows before a are not visited, so their axpys into [a, b) are missing: p must be zero on
    [a - k, a); axpys from rows i >= b - k land past b, so p must be zero there too unless
    b = L. :func:`conjugate_gradient`'s spans reach k rows beyond p's support, which gives both;
    [0, L) is always valid.

    The band is read through its upper half only (S is symmetric): row i's entries right of the
    diagonal serve both q_i (a dot product) and q_j, j > i (an axpy into the next k rows, still
    in cache). S may
    be the full band (L, 2k+1) or just its upper half (L, k+1), column c <-> j = i + c, which
    halves the bytes CG streams per iteration for bands beyond the caches."""
    L = p.shape[0]
    for i in range(a, b):
        q[i] = p[i]
    width = S.shape[1]
    base = 0 if width == k + 1 else k      # column of the diagonal
    for i in range(a, b):
        hi = min(width, L - i + base)
        scaled = alpha * p[i]
        acc = 0.0
        for c in range(base + 1, hi):
            s = S[i, c]
            acc += s * p[i + c - base]
            q[i + c - base] -= s * scaled
        q[i] -= alpha * acc


@njit(cache=True)
def nonzero_runs(y, spans):
    """Write the maximal runs of nonzero entries of y as half-open [start, stop) rows of spans
    (an (m, 2) int64 array with m >= the number of runs); return their number."""
    m = 0
    inside = False
    for i in range(y.shape[0]):
        if y[i] != 0.0 and not inside:
            spans[m, 0] = i
            inside = True
        elif y[i] == 0.0 and inside:
            spans[m, 1] = i
            m += 1
            inside = False
    if inside:
        spans[m, 1] = y.shape[0]
        m += 1
    return m


@njit(cache=True)
def widen_spans(spans, m, k, L):
    """Widen each span by k on both sides (clipped to [0, L)) and merge the ones that then touch
    or overlap, in place (spans sorted by start); return the new count. k == 0 (a dense graph
    couples every pair): the single span [0, L)."""
    if m == 0:
        return 0
    if k == 0:
        spans[0, 0] = 0
        spans[0, 1] = L
        return 1
    out = 0
    for s in range(m):
        lo = max(0, spans[s, 0] - k)
        hi = min(L, spans[s, 1] + k)
        if out > 0 and lo <= spans[out - 1, 1]:
            spans[out - 1, 1] = max(spans[out - 1, 1], hi)
        else:
            spans[out, 0] = lo
            spans[out, 1] = hi
            out += 1
    return out


@njit(cache=True, fastmath=FASTMATH)
def _dot(a, b, lo, hi):
    acc = 0.0
    for i in range(lo, hi):
        acc += a[i] * b[i]
    return acc


@njit(cache=True, fastmath=FASTMATH)
def _step(z, r, p, q, step, lo, hi):
    """z += step p, r -= step q on rows [lo, hi); returns r . r over them."""
    acc = 0.0
    for i in range(lo, hi):
        z[i] += step * p[i]
        ri = r[i] - step * q[i]
        r[i] = ri
        acc += ri * ri
    return acc


@njit(cache=True, fastmath=FASTMATH)
def _direction(p, r, beta, lo, hi):
    for i in range(lo, hi):
        p[i] = r[i] + beta * p[i]


@njit(cache=True, fastmath=FASTMATH)
def conjugate_gradient(S, k, y, alpha, tol, maxiter, z):
    """Solve (I - alpha S) z = y from z = 0 for a dense (k == 0) or banded S. Stops when
    ||r|| <= tol ||y|| (recursive residual).

    Returns (iterations, true relative residual ||y - (I - alpha S) z|| / ||y||, converged).

    A band's work follows the Krylov support: the j-th search direction is zero beyond j k rows
    of y's nonzeros (a band of half-width k couples rows at most k apart), so every vector
    operation and matvec runs on those spans only; everything outside stays exactly 0, the same
    iterates as a full-length CG. With seeds at both ends of a long video (the paper's prior)
    the spans meet only after L / 2k iterations: e.g. 61,031 snippets, window 50, 69 iterations
    touch ~4 % of the row-iterations a full sweep would. A dense graph takes whole-vector loops
    (written out: routing it through the span loops made the UCF-32 CG 2x slower).
    """
    L = y.shape[0]
    r = y.copy()
    p = y.copy()
    q = np.zeros(L)
    z[:] = 0.0
    spans = np.empty((max(1, (L + 1) // 2) if k > 0 else 1, 2), dtype=np.int64)
    m = nonzero_runs(y, spans) if k > 0 else 1     # where p, r and z may be nonzero (band)
    yy = _dot(y, y, 0, L)
    rr = yy
    threshold = tol * tol * yy
    it = 0
    while it < maxiter and rr > threshold:
        if k == 0:
            apply_dense(S, alpha, p, q)
            pq = _dot(p, q, 0, L)
        else:
            m = widen_spans(spans, m, k, L)  # where q = (I - alpha S) p may be nonzero
            pq = 0.0
            for s in range(m):
                apply_band(S, k, alpha, p, q, spans[s, 0], spans[s, 1])
                pq += _dot(p, q, spans[s, 0], spans[s, 1])
        if not pq > 0.0:                    # exact breakdown (r == 0) or lost definiteness
            break
        step = rr / pq
        if k == 0:
            for i in range(L):
                z[i] += step * p[i]
                r[i] -= step * q[i]
            rr_new = _dot(r, r, 0, L)
            beta = rr_new / rr
            for i in range(L):
                p[i] = r[i] + beta * p[i]
        else:
            rr_new = 0.0
            for s in range(m):
                rr_new += _step(z, r, p, q, step, spans[s, 0], spans[s, 1])
            beta = rr_new / rr
            for s in range(m):
                _direction(p, r, beta, spans[s, 0], spans[s, 1])
        rr = rr_new
        it += 1
    converged = rr <= threshold
    if k == 0:
        apply_dense(S, alpha, z, q)
    else:
        q[:] = 0.0
        m = widen_spans(spans, m, k, L)     # z lies in the spans; (I - alpha S) z in these
        for s in range(m):
            apply_band(S, k, alpha, z, q, spans[s, 0], spans[s, 1])
    res = 0.0
    for i in range(L):
        e = y[i] - q[i]
        res += e * e
    return it, math.sqrt(res / yy), converged


@njit(cache=True)
def upcoming_rows(x, offsets, v):
    """Rows of video v (none for v = -1): what to prefetch while the current video computes."""
    if v < 0:
        return x[0:0]
    return x[offsets[v]:offsets[v + 1]]


@njit(cache=True)
def seed_vector(positions, y):
    """y = 1 at the local positions (0 <= p < len(y)), 0 elsewhere."""
    y[:] = 0.0
    for s in positions:
        y[s] = 1.0


@njit(cache=True)
def propagate_one(x, offsets, v, following, zero, band, distance, normalize, inv_two_sigma2,
                  temporal_scale, seeds, seed_offsets, alpha, tol, maxiter, z_out, iters_out,
                  residual_out, converged_out, status_out, where_out):
    """Similarity + CG for video v; ``following`` is the video this thread runs next (-1: none),
    prefetched while v's distances are computed. A band covering the whole video (k >= L-1) is
    built dense: the same graph in L^2 instead of L (2L-1) entries."""
    a = offsets[v]
    L = offsets[v + 1] - a
    xv = x[a:a + L]
    k = 0 if band == 0 or band >= L - 1 else band
    width = L if k == 0 else 2 * k + 1
    S = np.empty((L, width))
    lse = np.empty(L)
    status, where = build_graph(xv, zero, k, distance, normalize, inv_two_sigma2, temporal_scale, S, lse,
                                upcoming_rows(x, offsets, following))
    status_out[v] = status
    where_out[v] = where
    if status != STATUS_OK:
        return
    y = np.empty(L)
    seed_vector(seeds[seed_offsets[v]:seed_offsets[v + 1]], y)
    zv = np.empty(L)
    if k > 0 and L * width > BAND_COMPACT_ENTRIES:
        S = np.ascontiguousarray(S[:, k:])      # CG streams only the upper half of large bands
    it, res, conv = conjugate_gradient(S, k, y, alpha, tol, maxiter, zv)
    z_out[a:a + L] = zv
    iters_out[v] = it
    residual_out[v] = res
    converged_out[v] = conv


@njit(cache=True, parallel=True)
def propagate_packed(x, offsets, order, bounds, zero, band, distance, normalize, inv_two_sigma2,
                     temporal_scale, seeds, seed_offsets, alpha, tol, maxiter,
                     z_out, iters_out, residual_out, converged_out, status_out, where_out):
    """Fused similarity + CG for every video; thread t handles order[bounds[t]:bounds[t+1]]
    (see :func:`schedule`). band = 0: dense graph; band = k: half-width k. y_v = 1 at the local
    positions seeds[seed_offsets[v]:seed_offsets[v+1]] (0 <= p < L_v). Outputs are per snippet
    (z_out) and per video (the rest); status_out[v] != 0 marks bad input at snippet where_out[v]
    and leaves that video's other outputs unwritten."""
    for t in prange(bounds.shape[0] - 1):
        for slot in range(bounds[t], bounds[t + 1]):
            following = order[slot + 1] if slot + 1 < bounds[t + 1] else -1
            propagate_one(x, offsets, order[slot], following, zero, band, distance, normalize,
                          inv_two_sigma2, temporal_scale, seeds, seed_offsets, alpha, tol, maxiter, z_out,
                          iters_out, residual_out, converged_out, status_out, where_out)


@njit(cache=True)
def graph_view(values, offsets, graph_offsets, band, v):
    """Video v's graph inside the packed layout of :func:`similarity_packed` (a view)."""
    a = offsets[v]
    L = offsets[v + 1] - a
    if band == 0:
        g0 = graph_offsets[v]
        return values[g0:g0 + L * L].reshape((L, L))
    return values[a:a + L]


@njit(cache=True, parallel=True)
def similarity_packed(x, offsets, order, bounds, graph_offsets, zero, band, distance, normalize,
                      inv_two_sigma2, temporal_scale, values, status_out, where_out):
    """Unfused similarity: S of every video into ``values`` (threads as in propagate_packed).

    Dense (band = 0): values is video v's (L, L) matrix row-major at graph_offsets[v] (values is
    (total, 1) so both layouts are 2-D). Banded: values is (N, 2*band+1), zero outside the video.
    """
    for t in prange(bounds.shape[0] - 1):
        for slot in range(bounds[t], bounds[t + 1]):
            v = order[slot]
            a = offsets[v]
            L = offsets[v + 1] - a
            S = graph_view(values, offsets, graph_offsets, band, v)
            following = order[slot + 1] if slot + 1 < bounds[t + 1] else -1
            status, where = build_graph(x[a:a + L], zero, band, distance, normalize, inv_two_sigma2,
                                        temporal_scale, S, np.empty(L),
                                        upcoming_rows(x, offsets, following))
            status_out[v] = status
            where_out[v] = where


@njit(cache=True, parallel=True)
def solve_packed(values, offsets, order, bounds, graph_offsets, band, seeds, seed_offsets, alpha, tol,
                 maxiter, z_out, iters_out, residual_out, converged_out):
    """CG on a graph built by :func:`similarity_packed` (same layout and threads; seeds as in
    :func:`propagate_packed`)."""
    for t in prange(bounds.shape[0] - 1):
        for slot in range(bounds[t], bounds[t + 1]):
            v = order[slot]
            a = offsets[v]
            L = offsets[v + 1] - a
            S = graph_view(values, offsets, graph_offsets, band, v)
            y = np.empty(L)
            seed_vector(seeds[seed_offsets[v]:seed_offsets[v + 1]], y)
            zv = np.empty(L)
            it, res, conv = conjugate_gradient(S, band, y, alpha, tol, maxiter, zv)
            z_out[a:a + L] = zv
            iters_out[v] = it
            residual_out[v] = res
            converged_out[v] = conv


@njit(cache=True)
def _longest_processing_time(cost, order, threads):
    """Greedy LPT: each video (most expensive first) goes to the least-loaded thread."""
    load = np.zeros(threads)
    owner = np.empty(order.shape[0], dtype=np.int64)
    for slot in range(order.shape[0]):
        best = 0
        for t in range(1, threads):
            if load[t] < load[best]:
                best = t
        owner[slot] = best
        load[best] += cost[order[slot]]
    return owner


def schedule(lengths: np.ndarray, band: int, dim: int, threads: int = None):
    """Static balanced schedule over threads: (order (V,), bounds (threads+1,)); thread t runs
    videos order[bounds[t]:bounds[t+1]], largest first.

    Estimated cost of a video: L * width * (D + 40) (the distances, then exp/log and ~10 CG
    iterations per stored entry). numba's prange splits its range statically, so ragged batches
    are balanced here by greedy longest-processing-time rather than by chunking.
    """
    threads = numba.get_num_threads() if threads is None else threads
    L = lengths.astype(np.float64)
    width = L if band == 0 else np.minimum(L, 2 * band + 1)
    cost = L * width * (dim + 40.0) + 1000.0
    order = np.argsort(-cost, kind="stable").astype(np.int64)
    owner = _longest_processing_time(cost, order, threads)
    grouped = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[grouped], np.arange(threads + 1)).astype(np.int64)
    return order[grouped], bounds


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def max_cosine(x, unit_means, zero, out):
    """out[q] = max_m (x_q . u_m) / ||x_q|| for unit rows u (the loss-weight distance is 1 - out).

    x (n, D), unit_means (M, D) in the same dtype; 4 rows x 4 means register tiles, parallel over
    row blocks. Each row's result depends on that row alone (same operation order whatever the
    chunking), so chunked and sharded runs give bit-identical weights. A zero row gives NaN."""
    n, D = x.shape
    M = unit_means.shape[0]
    for b in prange((n + 3) // 4):
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


# numba's cache does not notice edits to simd.py (or, for official.py, to this file): drop lanp's
# cached kernels once whenever their sources change together (see cache_guard)
cache_guard.ensure_fresh(propagate_packed)
