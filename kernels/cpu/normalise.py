"""Degree normalisation S = D^-1/2 W D^-1/2 of one video's graph, three ways.

    unit rows, sigma small enough that no W underflows:  S_ij = W_ij / sqrt(d_i d_j) with one
        exp per pair straight from the Gram (:func:`dense_unit_graph`, :func:`banded_unit_graph`);
    dense, log affinities within SHIFT_SPREAD_LIMIT of each other: W_ij = exp(a_ij - m), one
        shift m per video (:func:`normalise_dense_shifted`);
    otherwise (log domain, exact where W underflows): S_ij = exp(a_ij - (lse_i + lse_j) / 2),
        lse_i = logsumexp_j a_ij (:func:`normalise_log_affinity`).
S (L, L) or (L, 2k+1) float64, in place; ``degree`` / ``lse`` (L,) scratch.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .flags import FASTMATH_ORDERED
from .simd import exp_finite, exp_flush

SHIFT_SPREAD_LIMIT = 700.0      # exp(-700) = 1e-304: still a normal float64


@njit(cache=True, fastmath=FASTMATH_ORDERED)
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


@njit(cache=True, fastmath=FASTMATH_ORDERED)
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


@njit(cache=True, fastmath=FASTMATH_ORDERED, inline="always")
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


@njit(cache=True, fastmath=FASTMATH_ORDERED)
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


@njit(cache=True, fastmath=FASTMATH_ORDERED)
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


@njit(cache=True, fastmath=FASTMATH_ORDERED | {"nnan"})
def _row_maximum(S, i):
    """max_c S[i, c] (vectorised: S holds no NaN here, the inputs were validated)."""
    m = -np.inf
    for c in range(S.shape[1]):
        m = max(m, S[i, c])
    return m


@njit(cache=True, fastmath=FASTMATH_ORDERED)
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
