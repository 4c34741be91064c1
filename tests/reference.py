"""Independent float64 dense reference for the propagation kernels (tests and peers only).

Written the textbook way on purpose: explicit differences, the dense W, degree normalisation by
division (with a log-domain fallback where W underflows) and numpy.linalg.solve on the formed
matrix. It shares no code with lanp.kernels.
"""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def log_affinity_matrix(x, distance="sqeuclidean", sigma=0.1, normalize=True, window=None,
                        temporal_scale=None, terms="both"):
    """A (L, L) float64 with A_ij = log W_ij (A_ii = -inf, -inf outside the band); ``terms``
    'feature' leaves out log Wt, 'temporal' leaves out log Wf."""
    x = np.asarray(x, dtype=np.float64)
    L, D = x.shape
    if normalize:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    diff = x[:, None, :] - x[None, :, :]
    d2 = np.einsum("ijk,ijk->ij", diff, diff)
    t = np.arange(L)
    dt = np.abs(t[:, None] - t[None, :]).astype(np.float64)
    s = float(L) if temporal_scale is None else float(temporal_scale)
    if distance == "sqeuclidean":
        a = -d2 / (2 * sigma ** 2)
    elif distance == "rms":
        a = -np.sqrt(d2 / D) / (2 * sigma ** 2)
    elif distance == "cosine":
        n = np.linalg.norm(x, axis=1)
        cos = (x @ x.T) / np.outer(n, n)
        with np.errstate(divide="ignore"):
            a = np.where(cos > 0, np.log(np.maximum(cos, 1e-300)), -np.inf)
    else:
        raise ValueError(distance)
    if terms == "temporal":
        a = np.zeros((L, L))
    if terms != "feature":
        a = a - dt / s
    a[np.eye(L, dtype=bool)] = -np.inf
    if window is not None:
        a[dt > window] = -np.inf
    return a


def normalized_similarity(x, **graph):
    """S = D^-1/2 W D^-1/2 in float64 (rows with no edge are zero)."""
    a = log_affinity_matrix(x, **graph)
    lse = logsumexp(a, axis=1)
    with np.errstate(invalid="ignore"):
        s = np.exp(a - 0.5 * (lse[:, None] + lse[None, :]))
    s[~np.isfinite(a)] = 0.0
    s[np.isneginf(lse), :] = 0.0
    s[:, np.isneginf(lse)] = 0.0
    return s


def seed_vector(L, seeds=(0, -1)):
    y = np.zeros(L)
    for s in seeds:
        y[s] = 1.0
    return y


def propagate_reference(x, alpha=0.99, seeds=(0, -1), **graph):
    """z = (I - alpha S)^-1 y by a dense solve in float64."""
    s = normalized_similarity(x, **graph)
    L = s.shape[0]
    return np.linalg.solve(np.eye(L) - alpha * s, seed_vector(L, seeds))


def propagate_packed_reference(features, offsets, alpha=0.99, seeds=(0, -1), **graph):
    return np.concatenate([propagate_reference(features[a:b], alpha, seeds, **graph)
                           for a, b in zip(offsets[:-1], offsets[1:])])


def relative_error(approx, exact):
    """||approx - exact|| / ||exact|| (float64)."""
    approx = np.asarray(approx, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    return float(np.linalg.norm(approx - exact) / np.linalg.norm(exact))
