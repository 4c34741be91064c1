"""Squared norms, squared distances and log affinities of one video's rows.

    ||x_i||^2                                    (float64, with the NaN/Inf/zero checks)
    d2_ij = ||t_i x_i - t_j x_j||^2              (t = 1/||x|| for unit rows, else 1; direct
                                                  differences, exact 0 for repeated snippets)
    a_ij  = log Wf(d2_ij) - |i - j| / s          (:func:`log_affinity`, distance codes of
                                                  :mod:`lanp.kernels.codes`)
xv (L, D) in the feature dtype; distances are stored at B[i, j] (dense) or B[i, j - i + k] (band).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..codes import COSINE, RMS, STATUS_NONFINITE, STATUS_OK, STATUS_ZERO
from .flags import FASTMATH_ORDERED


@njit(cache=True, fastmath=FASTMATH_ORDERED)
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


@njit(cache=True, fastmath=FASTMATH_ORDERED)
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


@njit(cache=True, fastmath=FASTMATH_ORDERED)
def _row_scale(norms, i, unit, zero):
    return zero + (1.0 / math.sqrt(norms[i]) if unit else 1.0)


@njit(cache=True, fastmath=FASTMATH_ORDERED)
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


@njit(cache=True, fastmath=FASTMATH_ORDERED)
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
