"""One video's normalised similarity S: the CPU twin of ``lanp_similarity_rows`` in cuda/lanp.cu.

    a_ij = log Wf_ij - |i - j| / s,  a_ii = -inf, -inf outside the band |i - j| <= k
    S_ij = W_ij / sqrt(d_i d_j) = exp(a_ij - (lse_i + lse_j) / 2),  lse_i = logsumexp_j a_ij
S is (L, L) (k = 0, dense) or (L, 2k+1) (band, column c <-> j = i + c - k), float64. How the
squared distances are formed (Gram tiles or direct differences) is described on
:func:`build_graph`; the degree normalisation is in :mod:`lanp.kernels.cpu.normalise`.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..codes import COSINE, RMS, SQEUCLIDEAN, STATUS_NONFINITE, STATUS_OK, STATUS_ZERO
from .distances import centred_rows, log_affinity, pair_distances, squared_norms
from .flags import FASTMATH_ORDERED
from .normalise import (banded_unit_graph, dense_unit_graph, mirror_upper, normalise_dense_shifted,
                        normalise_log_affinity, unit_graph_needs_no_shift)
from .tiles import gram_tiles


@njit(cache=True, fastmath=FASTMATH_ORDERED, inline="always")
def unit_gram(xv, zero, k, S, ahead, inv_norm):
    """Gram tiles of one video into S (dense layout if k == 0, else the band's), validated on
    their diagonal, and inv_norm[i] = 1 / ||x_i||. Returns (status, snippet) like
    :func:`squared_norms` (a NaN/Inf or an all-zero row stops it)."""
    L = xv.shape[0]
    dense = k == 0
    kk = L - 1 if dense else k
    diag = 0 if dense else k             # column of the diagonal: ||x_i||^2 until replaced
    gram_tiles(xv, zero, kk, dense, S, ahead)
    for i in range(L):                  # validate on the diagonal
        n = np.float64(S[i, i if dense else diag])
        if not math.isfinite(n):
            return STATUS_NONFINITE, i
        if n == 0.0:
            return STATUS_ZERO, i
    for i in range(L):
        inv_norm[i] = 1.0 / math.sqrt(S[i, i if dense else diag])
    return STATUS_OK, -1


@njit(cache=True, fastmath=FASTMATH_ORDERED, inline="always")
def unit_weights(S, inv_norm, k, inv_two_sigma2, inv_scale, lse, coarse_exp):
    """S from the Gram tiles of unit rows, sqeuclidean, where no W can underflow
    (:func:`dense_unit_graph` if k == 0, else :func:`banded_unit_graph`)."""
    if k == 0:
        dense_unit_graph(S, inv_norm, inv_two_sigma2, inv_scale, lse, coarse_exp)
    else:
        banded_unit_graph(S, inv_norm, k, inv_two_sigma2, inv_scale, lse, coarse_exp)


@njit(cache=True, fastmath=FASTMATH_ORDERED, inline="always")
def build_unit_graph(xv, zero, k, inv_two_sigma2, temporal_scale, S, lse, ahead):
    """:func:`build_graph` for unit rows with the sqeuclidean distance where
    ``unit_graph_needs_no_shift`` holds (the caller checks it: the paper's settings), and nothing
    else: the same operations as build_graph's shortcut, without compiling its other paths."""
    L = xv.shape[0]
    inv_scale = 1.0 / (L if temporal_scale <= 0.0 else temporal_scale)
    inv_norm = np.empty(L)
    status, where = unit_gram(xv, zero, k, S, ahead, inv_norm)
    if status != STATUS_OK:
        return status, where
    unit_weights(S, inv_norm, k, inv_two_sigma2, inv_scale, lse, xv.itemsize == 4)
    return STATUS_OK, -1


@njit(cache=True, fastmath=FASTMATH_ORDERED, inline="always")
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
        inv_norm = np.empty(L)
        status, where = unit_gram(xv, zero, k, S, ahead, inv_norm)
        if status != STATUS_OK:
            return status, where
        if distance == SQEUCLIDEAN and unit_graph_needs_no_shift(kk + 1, inv_two_sigma2, inv_scale):
            unit_weights(S, inv_norm, k, inv_two_sigma2, inv_scale, lse, xv.itemsize == 4)
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
            gram_tiles(centred, zero, L - 1, dense, S, ahead)   # dense is True here (not a literal: one compile)
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
