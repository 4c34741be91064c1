"""Packed drivers: the three kernels over every video of a batch, parallel over threads.

x (N, D), offsets (V+1,) int64; thread t runs videos order[bounds[t]:bounds[t+1]]
(:func:`lanp.kernels.cpu.schedule.schedule`). Outputs are written per snippet (z) and per video
(iterations, residual, converged, status, where); callers poison them first
(:mod:`lanp.kernels.contract`).

Each thread's share is one call of a serial ``nogil`` numba kernel (:func:`run_threads`): no
``parallel=True`` parfor to compile (about a third of the first call's compile time), and numba
caches serial kernels well. The fused propagation is compiled per variant, and only for the
variants a call needs (:func:`propagate_kernel`): unit rows with the sqeuclidean distance and no
W that can underflow (the paper's settings) build their graph with :func:`graph.build_unit_graph`
alone; dense batches take the dense-only CG. Every variant runs the same operations on a video,
so the bits do not depend on which one ran.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from ..codes import SQEUCLIDEAN, STATUS_OK
from .cg import conjugate_gradient, conjugate_gradient_dense
from .flags import FASTMATH
from .graph import build_graph, build_unit_graph
from .normalise import unit_graph_needs_no_shift

BAND_COMPACT_ENTRIES = 1 << 17      # bands above 1 MiB: CG on a compact copy of the upper half

_POOL = None
_POOL_PID = None                    # a forked child gets a pool of its own (the parent's threads are gone)


def run_threads(kernel, bounds, *args) -> None:
    """kernel(lo, hi, *args) for thread t's slots [bounds[t], bounds[t+1]), one thread each (the
    calling thread takes the first share). ``kernel`` is a nogil numba function."""
    global _POOL, _POOL_PID
    shares = [(int(bounds[t]), int(bounds[t + 1])) for t in range(len(bounds) - 1)]
    shares = [s for s in shares if s[1] > s[0]]
    if len(shares) <= 1:
        for lo, hi in shares:
            kernel(lo, hi, *args)
        return
    if _POOL is None or _POOL_PID != os.getpid() or _POOL._max_workers < len(shares) - 1:
        _POOL = ThreadPoolExecutor(max_workers=len(shares) - 1, thread_name_prefix="lanp-kernel")
        _POOL_PID = os.getpid()
    futures = [_POOL.submit(kernel, lo, hi, *args) for lo, hi in shares[1:]]
    kernel(*shares[0], *args)
    for f in futures:
        f.result()


@njit(cache=True, inline="always")
def upcoming_rows(x, offsets, v):
    """Rows of video v (none for v = -1): what to prefetch while the current video computes."""
    if v < 0:
        return x[0:0]
    return x[offsets[v]:offsets[v + 1]]


@njit(cache=True, inline="always")
def seed_vector(positions, y):
    """y = 1 at the local positions (0 <= p < len(y)), 0 elsewhere."""
    y[:] = 0.0
    for s in positions:
        y[s] = 1.0


@njit(cache=True, inline="always")
def right_hand_side(positions, given, has_y, a, y):
    """Video y of the solve: given[a:a + len(y)] when ``has_y`` (the packed y of the caller),
    else 1 at the seed positions (:func:`seed_vector`)."""
    if has_y:
        for i in range(y.shape[0]):
            y[i] = given[a + i]
    else:
        seed_vector(positions, y)


NO_Y = np.zeros(0)                  # the ``given`` argument of the seed path (never read)


def packed_y(y):
    """(given, has_y) for the kernels: (y (N,) float64 contiguous, True), or (NO_Y, False)."""
    if y is None:
        return NO_Y, False
    return np.ascontiguousarray(y, dtype=np.float64), True


@njit(cache=True, inline="always")
def upper_half(S, k):
    """A C-contiguous copy of the band's columns k.. (its diagonal and upper half)."""
    L, width = S.shape
    out = np.empty((L, width - k))
    for i in range(L):
        for c in range(k, width):
            out[i, c - k] = S[i, c]
    return out


@njit(cache=True, inline="always")
def store_solution(zv, z_out, a):
    """z_out[a:a + L] = zv, element by element (a slice assignment would compile numba's
    shape-mismatch message formatting, seconds of the first call)."""
    for i in range(zv.shape[0]):
        z_out[a + i] = zv[i]


def make_propagate_slots(unit_fast: bool, banded: bool):
    """The serial kernel of one thread's share of :func:`propagate_packed`, specialised:
    ``unit_fast`` builds graphs with :func:`build_unit_graph` only (the caller checked that it
    applies to every video), ``banded`` keeps the band code paths (else dense only). Branches on
    these constants are removed before numba types the code, so nothing of the other paths is
    compiled. The closure holds only these two booleans (numba's cache keys closures by their
    values); the kernels it calls are module globals."""
    UNIT_FAST = unit_fast
    BANDED = banded
    @njit(cache=True, nogil=True, fastmath=FASTMATH)
    def propagate_slots(lo, hi, x, offsets, order, zero, band, distance, normalize, inv_two_sigma2,
                        temporal_scale, seeds, seed_offsets, given, has_y, alpha, tol, maxiter, z_out,
                        iters_out, residual_out, converged_out, status_out, where_out):
        """Similarity + CG for the videos order[lo:hi], in order; each one prefetches the next. A
        band covering the whole video (k >= L-1) is built dense: the same graph in L^2 instead
        of L (2L-1) entries."""
        for slot in range(lo, hi):
            v = order[slot]
            following = order[slot + 1] if slot + 1 < hi else -1
            a = offsets[v]
            L = offsets[v + 1] - a
            xv = x[a:a + L]
            k = band
            if band == 0 or band >= L - 1:
                k = 0
            width = L if k == 0 else 2 * k + 1
            S = np.empty((L, width))
            lse = np.empty(L)
            ahead = upcoming_rows(x, offsets, following)
            if UNIT_FAST:
                status, where = build_unit_graph(xv, zero, k, inv_two_sigma2, temporal_scale, S, lse, ahead)
            else:
                status, where = build_graph(xv, zero, k, distance, normalize, inv_two_sigma2, temporal_scale,
                                            S, lse, ahead)
            status_out[v] = status
            where_out[v] = where
            if status != STATUS_OK:
                continue
            y = np.empty(L)
            right_hand_side(seeds[seed_offsets[v]:seed_offsets[v + 1]], given, has_y, a, y)
            zv = np.empty(L)
            if BANDED and k > 0 and L * width > BAND_COMPACT_ENTRIES:
                S = upper_half(S, k)           # CG streams only the upper half of large bands
            if BANDED:
                it, res, conv = conjugate_gradient(S, k, y, alpha, tol, maxiter, zv)
            else:
                it, res, conv = conjugate_gradient_dense(S, k, y, alpha, tol, maxiter, zv)
            store_solution(zv, z_out, a)
            iters_out[v] = it
            residual_out[v] = res
            converged_out[v] = conv

    return propagate_slots


_PROPAGATE = {}


def propagate_kernel(unit_fast: bool, banded: bool):
    """The (memoised) serial propagation kernel of one variant (:func:`make_propagate_slots`)."""
    key = (bool(unit_fast), bool(banded))
    if key not in _PROPAGATE:
        _PROPAGATE[key] = make_propagate_slots(*key)
    return _PROPAGATE[key]


def unit_fast_applies(lengths, band, distance, normalize, inv_two_sigma2, temporal_scale) -> bool:
    """Whether :func:`build_graph` takes its unit-row sqeuclidean shortcut (no shift, no log
    domain) on every video of ``lengths``: the same test, on the same numbers, as it makes."""
    if distance != SQEUCLIDEAN or not normalize:
        return False
    test = unit_graph_needs_no_shift.py_func
    for L in np.unique(np.asarray(lengths, dtype=np.int64)):
        L = int(L)
        k = 0 if band == 0 or band >= L - 1 else band
        inv_scale = 1.0 / (L if temporal_scale <= 0.0 else temporal_scale)
        if not test((L - 1 if k == 0 else k) + 1, inv_two_sigma2, inv_scale):
            return False
    return True


def propagate_packed(x, offsets, order, bounds, zero, band, distance, normalize, inv_two_sigma2,
                     temporal_scale, seeds, seed_offsets, alpha, tol, maxiter,
                     z_out, iters_out, residual_out, converged_out, status_out, where_out, y=None):
    """Fused similarity + CG for every video; thread t handles order[bounds[t]:bounds[t+1]]
    (see :func:`schedule`). band = 0: dense graph; band = k: half-width k. y_v = 1 at the local
    positions seeds[seed_offsets[v]:seed_offsets[v+1]] (0 <= p < L_v), or, when ``y`` (N,) is
    given, y_v = y[offsets[v]:offsets[v+1]] (the seeds unused). Outputs are per snippet
    (z_out) and per video (the rest); status_out[v] != 0 marks bad input at snippet where_out[v]
    and leaves that video's other outputs unwritten."""
    lengths = np.diff(offsets)
    banded = band > 0 and bool(np.any(lengths - 1 > band))
    fast = unit_fast_applies(lengths, band, distance, normalize, inv_two_sigma2, temporal_scale)
    run_threads(propagate_kernel(fast, banded), bounds, x, offsets, order, zero, band, distance, normalize,
                inv_two_sigma2, temporal_scale, seeds, seed_offsets, *packed_y(y), alpha, tol, maxiter, z_out,
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


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def similarity_slots(lo, hi, x, offsets, order, graph_offsets, zero, band, distance, normalize,
                     inv_two_sigma2, temporal_scale, values, status_out, where_out):
    for slot in range(lo, hi):
        v = order[slot]
        a = offsets[v]
        L = offsets[v + 1] - a
        S = graph_view(values, offsets, graph_offsets, band, v)
        following = order[slot + 1] if slot + 1 < hi else -1
        status, where = build_graph(x[a:a + L], zero, band, distance, normalize, inv_two_sigma2,
                                    temporal_scale, S, np.empty(L), upcoming_rows(x, offsets, following))
        status_out[v] = status
        where_out[v] = where


def similarity_packed(x, offsets, order, bounds, graph_offsets, zero, band, distance, normalize,
                      inv_two_sigma2, temporal_scale, values, status_out, where_out):
    """Unfused similarity: S of every video into ``values`` (threads as in propagate_packed).

    Dense (band = 0): values is video v's (L, L) matrix row-major at graph_offsets[v] (values is
    (total, 1) so both layouts are 2-D). Banded: values is (N, 2*band+1), zero outside the video.
    """
    run_threads(similarity_slots, bounds, x, offsets, order, graph_offsets, zero, band, distance, normalize,
                inv_two_sigma2, temporal_scale, values, status_out, where_out)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def solve_slots(lo, hi, values, offsets, order, graph_offsets, band, seeds, seed_offsets, given, has_y,
                alpha, tol, maxiter, z_out, iters_out, residual_out, converged_out):
    for slot in range(lo, hi):
        v = order[slot]
        a = offsets[v]
        L = offsets[v + 1] - a
        S = graph_view(values, offsets, graph_offsets, band, v)
        y = np.empty(L)
        right_hand_side(seeds[seed_offsets[v]:seed_offsets[v + 1]], given, has_y, a, y)
        zv = np.empty(L)
        it, res, conv = conjugate_gradient(S, band, y, alpha, tol, maxiter, zv)
        store_solution(zv, z_out, a)
        iters_out[v] = it
        residual_out[v] = res
        converged_out[v] = conv


def solve_packed(values, offsets, order, bounds, graph_offsets, band, seeds, seed_offsets, alpha, tol,
                 maxiter, z_out, iters_out, residual_out, converged_out, y=None):
    """CG on a graph built by :func:`similarity_packed` (same layout and threads; seeds or ``y``
    as in :func:`propagate_packed`)."""
    run_threads(solve_slots, bounds, values, offsets, order, graph_offsets, band, seeds, seed_offsets,
                *packed_y(y), alpha, tol, maxiter, z_out, iters_out, residual_out, converged_out)
