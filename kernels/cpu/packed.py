"""Packed drivers: the three kernels over every video of a batch, parallel over threads.

x (N, D), offsets (V+1,) int64; thread t runs videos order[bounds[t]:bounds[t+1]]
(:func:`lanp.kernels.cpu.schedule.schedule`). Outputs are written per snippet (z) and per video
(iterations, residual, converged, status, where); callers poison them first
(:mod:`lanp.kernels.contract`).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..codes import STATUS_OK
from .cg import conjugate_gradient
from .graph import build_graph

BAND_COMPACT_ENTRIES = 1 << 17      # bands above 1 MiB: CG on a compact copy of the upper half


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
