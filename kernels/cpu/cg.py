"""Conjugate gradient for (I - alpha S) z = y on one video: the CPU twin of ``lanp_cg`` in
cuda/lanp.cu.

S (L, L) dense or (L, 2k+1) band (or its upper half (L, k+1) for large bands), y (L,) (ones at
the seeds, or the caller's y), z (L,) float64 out. Stops on the recursive residual
||r_k|| <= tol ||y|| or at maxiter; returns (iterations, true residual ||y - A z|| / ||y||
recomputed after the loop, converged); y = 0 gives z = 0, 0 iterations, residual 0, converged. With a band of half-width k the j-th search direction is exactly zero beyond j k rows
of the seeds, so iteration j works only on the rows it can reach (:func:`widen_spans`).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .flags import FASTMATH


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


def make_conjugate_gradient(banded: bool):
    """:func:`conjugate_gradient` (``banded`` True), or its dense-only twin: with ``banded`` False
    the band branches are constant-false and numba drops them before typing, so a dense batch
    compiles none of the span code. Both run the same operations on a dense graph."""
    DENSE = not banded
    BANDED = bool(banded)

    @njit(cache=True, fastmath=FASTMATH, inline="always")
    def conjugate_gradient(S, k, y, alpha, tol, maxiter, z):
        """Solve (I - alpha S) z = y from z = 0 for a dense (k == 0) or banded S. Stops when
        ||r|| <= tol ||y|| (recursive residual).

        Returns (iterations, true relative residual ||y - (I - alpha S) z|| / ||y||, converged).

        A band's work follows the Krylov support: the j-th search direction is zero beyond j k rows
        of y's nonzeros (a band of half-width k couples rows at most k apart), so every vector
        operation and matvec runs on those spans only; everything outside stays exactly 0, the same
        iterates as a full-length CG. With seeds at both ends of a long video (the paper's prior)
        the spans meet only after L / 2k iterations. A dense graph takes whole-vector loops, written
        out (routing it through the span loops was slower: bench/RESULTS.md).
        """
        L = y.shape[0]
        r = y.copy()
        p = y.copy()
        q = np.zeros(L)
        z[:] = 0.0
        spans = np.empty((max(1, (L + 1) // 2) if BANDED and k > 0 else 1, 2), dtype=np.int64)
        m = nonzero_runs(y, spans) if BANDED and k > 0 else 1     # where p, r and z may be nonzero (band)
        yy = _dot(y, y, 0, L)
        rr = yy
        threshold = tol * tol * yy
        it = 0
        while it < maxiter and rr > threshold:
            if DENSE or k == 0:
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
            if DENSE or k == 0:
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
        if DENSE or k == 0:
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
        if not yy > 0.0:                        # y = 0: z = 0 exactly, after 0 iterations
            return it, 0.0, converged
        return it, math.sqrt(res / yy), converged

    return conjugate_gradient


conjugate_gradient = make_conjugate_gradient(True)
conjugate_gradient_dense = make_conjugate_gradient(False)
