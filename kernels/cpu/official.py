"""The public code's propagation (shyern/LANP-UVAD), as a numba twin of the paper's graph + CG.

Per video of T snippets (written from the rules of issue 6; float64 throughout):

    k = min(max_k, T - 1), m = min(2k, T)           (m = T, a dense graph, for T <= 2 max_k)
    row i uses the m snippets j in [s_i, s_i + m), s_i = clamp(i - m//2, 0, T - m):
        a_ij = f(x_i, x_j) * exp(-|i - j| / m),  a_ii = 0
        f = exp(-sqrt(||x_i - x_j||^2 / D) / (2 sigma^2))     (variant codes.RMS, official-ucf)
        f = cos(x_i, x_j), not clipped                         (variant codes.COSINE, official-sht)
    W = A + A^T (A zero outside the windows), W_ii = 0, d_i = sum_j W_ij (d_i = 1 where it is 0),
    S = D^-1/2 W D^-1/2;  y = 1 at snippets 0, 1, T-2, T-1 (taken modulo T, so T <= 3 works)
    CG on (I - alpha S) z = y from z = 0, at most ``maxiter`` iterations, stopping when the
    recursive residual ||r|| < rtol ||y|| (checked before each iteration, like scipy's cg)
    then z < 0 -> 0 and z at the seeds -> max(z).

W is stored as a band of half-width h = m - 1 (every window entry has |i - j| <= m - 1), one
(T, 2h+1) float64 matrix per thread at a time. No file I/O.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..codes import COSINE, RMS, STATUS_NEGATIVE_DEGREE, STATUS_NONFINITE, STATUS_OK, STATUS_ZERO
from .flags import FASTMATH


@njit(cache=True)
def window_start(i, T, m):
    s = i - m // 2
    if s > T - m:
        s = T - m
    if s < 0:
        s = 0
    return s


@njit(cache=True, fastmath=FASTMATH)
def build_band(xv, variant, inv_two_sigma2, max_k, B, norms):
    """Fill B (T, 2h+1) with W = A + A^T (column c <-> j = i + c - h). Returns (status, snippet)."""
    T, D = xv.shape
    h = (B.shape[1] - 1) // 2
    k = min(max_k, T - 1)
    m = min(2 * k, T)
    for i in range(T):
        acc = 0.0
        for d in range(D):
            v = np.float64(xv[i, d])
            acc += v * v
        if not math.isfinite(acc):
            return STATUS_NONFINITE, i
        if variant == COSINE and acc == 0.0:
            return STATUS_ZERO, i
        norms[i] = math.sqrt(acc)
    B[:, :] = 0.0
    for i in range(T):
        si = window_start(i, T, m)
        for j in range(i + 1, min(T, i + h + 1)):
            sj = window_start(j, T, m)
            mult = 0
            if si <= j < si + m:          # j in row i's window
                mult += 1
            if sj <= i < sj + m:          # i in row j's window
                mult += 1
            if mult == 0:
                continue
            if variant == RMS:
                acc = 0.0
                for d in range(D):
                    e = np.float64(xv[i, d]) - np.float64(xv[j, d])
                    acc += e * e
                f = math.exp(-math.sqrt(acc / D) * inv_two_sigma2)
            else:
                acc = 0.0
                for d in range(D):
                    acc += np.float64(xv[i, d]) * np.float64(xv[j, d])
                f = acc / (norms[i] * norms[j])
            a = mult * f * math.exp(-(j - i) / m)
            B[i, j - i + h] = a
            B[j, i - j + h] = a
    return STATUS_OK, -1


@njit(cache=True, fastmath=FASTMATH)
def normalise_band(B, deg):
    """S = D^-1/2 W D^-1/2 in place; d_i = 1 where the row sum is 0. Returns the first row with a
    negative degree (possible with unclipped cosines), else -1."""
    T, width = B.shape
    h = (width - 1) // 2
    for i in range(T):
        s = 0.0
        for c in range(width):
            s += B[i, c]
        if s < 0.0:
            return i
        deg[i] = 1.0 if s == 0.0 else s
    for i in range(T):
        for c in range(width):
            j = i + c - h
            if 0 <= j < T and B[i, c] != 0.0:
                B[i, c] = B[i, c] / math.sqrt(deg[i] * deg[j])
    return -1


@njit(cache=True, fastmath=FASTMATH)
def apply_band(B, alpha, p, q):
    """q = (I - alpha S) p for a banded S."""
    T, width = B.shape
    h = (width - 1) // 2
    for i in range(T):
        lo = max(0, h - i)
        hi = min(width, T - i + h)
        acc = 0.0
        for c in range(lo, hi):
            acc += B[i, c] * p[i + c - h]
        q[i] = p[i] - alpha * acc


@njit(cache=True, fastmath=FASTMATH)
def capped_cg(B, y, alpha, rtol, maxiter, z):
    """CG from z = 0 like scipy.sparse.linalg.cg(A, y, rtol, maxiter): before each iteration stop
    if ||r|| < rtol ||y||. Returns (iterations, true relative residual, converged)."""
    T = y.shape[0]
    r = y.copy()
    p = np.zeros(T)
    q = np.empty(T)
    z[:] = 0.0
    ynorm = math.sqrt(np.sum(y * y))
    threshold = rtol * ynorm
    rho_prev = 1.0
    it = 0
    while it < maxiter:
        rho = np.sum(r * r)
        if math.sqrt(rho) < threshold:
            break
        beta = 0.0 if it == 0 else rho / rho_prev
        for i in range(T):
            p[i] = r[i] + beta * p[i]
        apply_band(B, alpha, p, q)
        pq = np.sum(p * q)
        if not pq > 0.0:
            break
        step = rho / pq
        for i in range(T):
            z[i] += step * p[i]
            r[i] -= step * q[i]
        rho_prev = rho
        it += 1
    converged = math.sqrt(np.sum(r * r)) < threshold
    apply_band(B, alpha, z, q)
    res = 0.0
    for i in range(T):
        e = y[i] - q[i]
        res += e * e
    return it, math.sqrt(res) / ynorm, converged


@njit(cache=True, parallel=True)
def official_packed(x, offsets, order, bounds, variant, inv_two_sigma2, alpha, rtol, maxiter, max_k,
                    z_out, iters_out, residual_out, converged_out, status_out, where_out):
    """Every video of a packed batch (thread t: order[bounds[t]:bounds[t+1]]); z_out gets the post-processed z
    (negatives -> 0, seeds -> max). status_out[v] != 0 marks bad input at snippet where_out[v]."""
    for t in prange(bounds.shape[0] - 1):
        for slot in range(bounds[t], bounds[t + 1]):
            v = order[slot]
            a = offsets[v]
            T = offsets[v + 1] - a
            xv = x[a:a + T]
            k = min(max_k, T - 1)
            m = min(2 * k, T)
            h = max(m - 1, 0)
            B = np.empty((T, 2 * h + 1))
            norms = np.empty(T)
            status, where = build_band(xv, variant, inv_two_sigma2, max_k, B, norms)
            if status == STATUS_OK:
                bad = normalise_band(B, norms)
                if bad >= 0:
                    status, where = STATUS_NEGATIVE_DEGREE, bad
            if status != STATUS_OK:
                status_out[v] = status
                where_out[v] = where
                continue
            y = np.zeros(T)
            y[0] = 1.0
            y[1 % T] = 1.0
            y[(T - 2) % T] = 1.0
            y[T - 1] = 1.0
            zv = np.empty(T)
            it, res, conv = capped_cg(B, y, alpha, rtol, maxiter, zv)
            top = 0.0
            for i in range(T):
                if zv[i] < 0.0:
                    zv[i] = 0.0
                if zv[i] > top:
                    top = zv[i]
            for i in range(T):
                z_out[a + i] = top if y[i] != 0.0 else zv[i]
            iters_out[v] = it
            residual_out[v] = res
            converged_out[v] = conv
            status_out[v] = STATUS_OK
