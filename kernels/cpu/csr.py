"""Conjugate gradient on one sparse graph: (I - alpha S) z = y, S = D^-1/2 W D^-1/2, W in CSR.
The CPU twin of the csr kernels in cuda/crossvideo.cu.

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
    (Twin of lanp_csr_check_row in cuda/crossvideo.cu.)"""
    N = indptr.shape[0] - 1
    prev = -1
    for e in range(indptr[i], indptr[i + 1]):
        j = indices[e]
        w = data[e]
        if symmetry:
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
    (Twin of lanp_csr_apply_row in cuda/crossvideo.cu.)"""
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
