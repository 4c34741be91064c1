"""Conjugate gradient on one sparse graph: (I - alpha S) z = y, S = D^-1/2 W D^-1/2, W in CSR.
The CPU twin of the csr kernels in cuda/lanp.cu.

W: indptr (N+1,) int64, indices (nnz,) int64, data (nnz,) float64, symmetric, non-negative,
zero diagonal, each row's columns strictly increasing (canonical CSR: scipy's
``sum_duplicates()`` gives it). d_i = sum_j W_ij; a row of degree 0 gets 1/sqrt(d) = 0, a zero
row and column of S (z_i = y_i there).

Every vector pass is a prange over fixed blocks of BLOCK rows, and dot products are summed per
block and then over the blocks in order, so the bits do not depend on the number of threads.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..errors import InputError
from ..codes import (CSR_ASYMMETRIC, CSR_BAD_WEIGHT, CSR_COLUMN_RANGE, CSR_DIAGONAL, CSR_KEY_STRIDE,
                     CSR_UNSORTED, NO_BAD_ENTRY)
from .flags import FASTMATH

BLOCK = 4096                   # rows per block of every vector pass (fixed: reproducible sums)


@njit(cache=True, inline="always")
def mirror_weight(indptr, indices, data, j, i):
    """W_ji by binary search of column i in row j (0 if absent; row j sorted)."""
    lo = indptr[j]
    hi = indptr[j + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        c = indices[mid]
        if c < i:
            lo = mid + 1
        elif c > i:
            hi = mid
        else:
            return data[mid]
    return 0.0


@njit(cache=True, inline="always")
def check_row(indptr, indices, data, i, symmetry):
    """CSR_KEY_STRIDE * e + code of row i's first bad entry e, NO_BAD_ENTRY if none. Structure
    (symmetry False): columns in [0, N) and strictly increasing, weights finite and >= 0, the
    diagonal 0. Symmetry (True; run only on a well-formed W): W_ij == W_ji bit for bit.
    (Twin of cv_csr_check_row in cuda/lanp.cu.)"""
    N = indptr.shape[0] - 1
    prev = -1
    for e in range(indptr[i], indptr[i + 1]):
        j = indices[e]
        w = data[e]
        if symmetry:                        # (a column out of range never reads past row N)
            if j < 0 or j >= N:
                return e * CSR_KEY_STRIDE + CSR_COLUMN_RANGE
            if j != i and w != mirror_weight(indptr, indices, data, j, i):
                return e * CSR_KEY_STRIDE + CSR_ASYMMETRIC
            continue
        if j < 0 or j >= N:
            return e * CSR_KEY_STRIDE + CSR_COLUMN_RANGE
        if j <= prev:
            return e * CSR_KEY_STRIDE + CSR_UNSORTED
        if not (w >= 0.0 and math.isfinite(w)):
            return e * CSR_KEY_STRIDE + CSR_BAD_WEIGHT
        if j == i and w != 0.0:
            return e * CSR_KEY_STRIDE + CSR_DIAGONAL
        prev = j
    return NO_BAD_ENTRY


@njit(cache=True, parallel=True)
def first_bad_entry(indptr, indices, data, symmetry):
    """The smallest :func:`check_row` key over all rows (NO_BAD_ENTRY: W passes)."""
    N = indptr.shape[0] - 1
    blocks = (N + BLOCK - 1) // BLOCK
    keys = np.full(max(blocks, 1), NO_BAD_ENTRY, dtype=np.int64)
    for b in prange(blocks):
        best = NO_BAD_ENTRY
        for i in range(b * BLOCK, min(N, (b + 1) * BLOCK)):
            key = check_row(indptr, indices, data, i, symmetry)
            if key < best:
                best = key
        keys[b] = best
    return keys.min()


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def inverse_sqrt_degrees(indptr, data, dinv):
    """dinv_i = 1 / sqrt(sum_j W_ij), 0 for a row of degree 0."""
    N = indptr.shape[0] - 1
    for i in prange(N):
        d = 0.0
        for e in range(indptr[i], indptr[i + 1]):
            d += data[e]
        dinv[i] = 1.0 / math.sqrt(d) if d > 0.0 else 0.0


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def apply(indptr, indices, data, dinv, alpha, p, u, q, partial):
    """q = (I - alpha S) p with u = dinv * p (given); partial[b] = p . q over block b.
    (Twin of cv_csr_apply_row in cuda/lanp.cu.)"""
    N = p.shape[0]
    for b in prange(partial.shape[0]):
        acc = 0.0
        for i in range(b * BLOCK, min(N, (b + 1) * BLOCK)):
            s = 0.0
            for e in range(indptr[i], indptr[i + 1]):
                s += data[e] * u[indices[e]]
            qi = p[i] - alpha * dinv[i] * s
            q[i] = qi
            acc += p[i] * qi
        partial[b] = acc


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _step(z, r, p, q, step, partial):
    """z += step p, r -= step q; partial[b] = r . r over block b."""
    N = z.shape[0]
    for b in prange(partial.shape[0]):
        acc = 0.0
        for i in range(b * BLOCK, min(N, (b + 1) * BLOCK)):
            z[i] += step * p[i]
            ri = r[i] - step * q[i]
            r[i] = ri
            acc += ri * ri
        partial[b] = acc


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _direction(p, r, beta, dinv, u):
    """p = r + beta p, u = dinv * p."""
    N = p.shape[0]
    for b in prange((N + BLOCK - 1) // BLOCK):
        for i in range(b * BLOCK, min(N, (b + 1) * BLOCK)):
            pi = r[i] + beta * p[i]
            p[i] = pi
            u[i] = dinv[i] * pi


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _squares(a, dinv, u, partial):
    """partial[b] = a . a over block b; u = dinv * a."""
    N = a.shape[0]
    for b in prange(partial.shape[0]):
        acc = 0.0
        for i in range(b * BLOCK, min(N, (b + 1) * BLOCK)):
            acc += a[i] * a[i]
            u[i] = dinv[i] * a[i]
        partial[b] = acc


@njit(cache=True, fastmath=FASTMATH)
def _total(partial):
    acc = 0.0
    for b in range(partial.shape[0]):
        acc += partial[b]
    return acc


@njit(cache=True)
def conjugate_gradient(indptr, indices, data, dinv, y, alpha, tol, maxiter, z):
    """CG from z = 0 until ||r|| <= tol ||y|| (recursive residual) or maxiter. Returns
    (iterations, true relative residual ||y - (I - alpha S) z|| / ||y||, converged); y = 0 gives
    z = 0, (0, 0.0, True)."""
    N = y.shape[0]
    blocks = max(1, (N + BLOCK - 1) // BLOCK)
    partial = np.zeros(blocks)
    z[:] = 0.0
    r = y.copy()
    p = y.copy()
    u = np.empty(N)
    q = np.empty(N)
    _squares(y, dinv, u, partial)
    yy = _total(partial)
    if yy == 0.0:
        return 0, 0.0, True
    rr = yy
    threshold = tol * tol * yy
    it = 0
    while it < maxiter and rr > threshold:
        apply(indptr, indices, data, dinv, alpha, p, u, q, partial)
        pq = _total(partial)
        if not pq > 0.0:                  # exact breakdown (r == 0) or lost definiteness
            break
        step = rr / pq
        _step(z, r, p, q, step, partial)
        rr_new = _total(partial)
        _direction(p, r, rr_new / rr, dinv, u)
        rr = rr_new
        it += 1
    converged = rr <= threshold
    _squares(z, dinv, u, partial)         # u = dinv * z
    apply(indptr, indices, data, dinv, alpha, z, u, q, partial)
    for i in range(N):
        r[i] = y[i] - q[i]
    _squares(r, dinv, u, partial)
    return it, math.sqrt(_total(partial) / yy), converged


# -- the joint graph: a per-video band plus cross-video edges, as canonical symmetric CSR ---------

@njit(cache=True, inline="always")
def _band_row(band, offsets_v0, offsets_v1, k, i, cols, vals):
    """Row i's nonzero band entries in column order, read through the band's upper half only
    (W_ij = band[min(i, j), |i - j| + k], exactly symmetric): returns their number."""
    n = 0
    for j in range(max(offsets_v0, i - k), i):
        w = band[j, i - j + k]
        if w != 0.0:
            cols[n] = j
            vals[n] = w
            n += 1
    for j in range(i + 1, min(offsets_v1, i + k + 1)):
        w = band[i, j - i + k]
        if w != 0.0:
            cols[n] = j
            vals[n] = w
            n += 1
    return n


@njit(cache=True, parallel=True)
def _joint_rows(band, offsets, row_video, k, extra_ptr, extra_cols, extra_vals, indptr, indices, data, count_only):
    """Count (count_only) or write every row of band + extra edges, merged by column (a column in
    both: band + extra)."""
    N = row_video.shape[0]
    for b in prange((N + BLOCK - 1) // BLOCK):
        cols = np.empty(2 * k + 1, dtype=np.int64)
        vals = np.empty(2 * k + 1)
        for i in range(b * BLOCK, min(N, (b + 1) * BLOCK)):
            v = row_video[i]
            n = _band_row(band, offsets[v], offsets[v + 1], k, i, cols, vals) if k > 0 else 0
            p, q = 0, extra_ptr[i]
            e = 0 if count_only else indptr[i]
            while p < n or q < extra_ptr[i + 1]:
                if q >= extra_ptr[i + 1] or (p < n and cols[p] < extra_cols[q]):
                    c, w = cols[p], vals[p]
                    p += 1
                elif p >= n or extra_cols[q] < cols[p]:
                    c, w = extra_cols[q], extra_vals[q]
                    q += 1
                else:
                    c, w = cols[p], vals[p] + extra_vals[q]
                    p += 1
                    q += 1
                if not count_only:
                    indices[e] = c
                    data[e] = w
                e += 1
            if count_only:
                indptr[i + 1] = e


@njit(cache=True)
def _scatter_edges(src, dst, weight, N):
    """Both directions of every edge (weight / 2 each, self loops dropped) grouped by row:
    (ptr (N+1,), cols, vals), rows in any order inside."""
    count = np.zeros(N + 1, dtype=np.int64)
    for e in range(src.shape[0]):
        if src[e] != dst[e]:
            count[src[e] + 1] += 1
            count[dst[e] + 1] += 1
    for i in range(N):
        count[i + 1] += count[i]
    ptr = count.copy()
    fill = count[:N].copy()
    cols = np.empty(ptr[N], dtype=np.int64)
    vals = np.empty(ptr[N])
    for e in range(src.shape[0]):
        a, b = src[e], dst[e]
        if a != b:
            h = weight[e] * 0.5
            cols[fill[a]] = b
            vals[fill[a]] = h
            fill[a] += 1
            cols[fill[b]] = a
            vals[fill[b]] = h
            fill[b] += 1
    return ptr, cols, vals


@njit(cache=True, parallel=True)
def _sort_rows(ptr, cols, vals, length):
    """Sort each row by (column, value) in place and add up equal columns in ascending value
    order (the same terms in the same order for (i, j) and (j, i)); length[i]: the row's entries
    left at its front."""
    N = ptr.shape[0] - 1
    for i in prange(N):
        lo, hi = ptr[i], ptr[i + 1]
        n = hi - lo
        if n == 0:
            length[i] = 0
            continue
        c = cols[lo:hi].copy()
        v = vals[lo:hi].copy()
        order = np.argsort(v, kind="mergesort")           # by value, then stably by column
        c = c[order]
        v = v[order]
        order = np.argsort(c, kind="mergesort")
        m = 0
        for t in range(n):
            col = c[order[t]]
            w = v[order[t]]
            if m > 0 and cols[lo + m - 1] == col:
                vals[lo + m - 1] += w
            else:
                cols[lo + m] = col
                vals[lo + m] = w
                m += 1
        length[i] = m


def _edge_rows(src, dst, weight, N):
    """(E + E^T) / 2 of the directed edges as canonical CSR (ptr, cols, vals)."""
    ptr, cols, vals = _scatter_edges(src, dst, weight, N)
    length = np.empty(N, dtype=np.int64)
    _sort_rows(ptr, cols, vals, length)
    out_ptr = np.zeros(N + 1, dtype=np.int64)
    np.cumsum(length, out=out_ptr[1:])
    keep = np.repeat(ptr[:-1], length) + (np.arange(int(out_ptr[-1])) - np.repeat(out_ptr[:-1], length))
    return out_ptr, cols[keep], vals[keep]


def joint_csr(band, offsets, window, src, dst, weight):
    """The joint graph W = B + (E + E^T) / 2 as canonical CSR (indptr, indices, data), exactly
    symmetric when ``band`` is a symmetric band: the input :func:`lanp.kernels.solve_csr` takes.

    band:    (N, 2k+1) float64 in the banded Graph layout (row i holds W_ij at column j - i + k,
             k = ``window``), e.g. ``similarity(features, offsets, window=k).values``; read through
             its upper half (W_ij = W_ji by construction); zeros are left out. None or window 0:
             no band.
    offsets: (V+1,) int64, the videos of the band.
    src, dst, weight: (M,) directed edges E_src,dst = weight (e.g. every snippet to its
             anchor_neighbours), each added as weight / 2 in both directions; self loops dropped.
             Parallel edges add up, in ascending weight order on both sides, so the sum is the
             same bit for bit for (i, j) and (j, i).
    Memory: the output plus O(M) for the edges and O(N) rows.
    """
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    N = int(offsets[-1])
    k = 0 if band is None else int(window)
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    weight = np.asarray(weight, dtype=np.float64)
    if not (src.shape == dst.shape == weight.shape and src.ndim == 1):
        raise InputError(f"joint_csr: src, dst and weight must be (M,) alike, got {src.shape}, {dst.shape}, "
                         f"{weight.shape}")
    outside = np.flatnonzero((src < 0) | (src >= N) | (dst < 0) | (dst >= N))
    if outside.size:
        e = int(outside[0])
        raise InputError(f"joint_csr: edge {e} ({int(src[e])} -> {int(dst[e])}) leaves the N = {N} rows")
    if band is not None and tuple(np.shape(band)) != (N, 2 * int(window) + 1):
        raise InputError(f"joint_csr: band must be (N, 2 window + 1) = ({N}, {2 * int(window) + 1}), "
                         f"got {tuple(np.shape(band))}")
    extra_ptr, cols, vals = _edge_rows(src, dst, weight, N)
    row_video = np.repeat(np.arange(offsets.shape[0] - 1, dtype=np.int64), np.diff(offsets))
    band = np.zeros((N, 1)) if band is None else np.ascontiguousarray(band, dtype=np.float64)
    indptr = np.zeros(N + 1, dtype=np.int64)
    dummy_i, dummy_d = np.zeros(0, np.int64), np.zeros(0)
    _joint_rows(band, offsets, row_video, k, extra_ptr, cols, vals, indptr, dummy_i, dummy_d, True)
    np.cumsum(indptr, out=indptr)
    indices = np.empty(int(indptr[-1]), dtype=np.int64)
    data = np.empty(int(indptr[-1]))
    _joint_rows(band, offsets, row_video, k, extra_ptr, cols, vals, indptr, indices, data, False)
    return indptr, indices, data
