"""Public entry points of ``lanp.kernels``: similarity, solve and the fused propagate.

All three take packed ragged input, features (N, D) and offsets (V+1,), and a ``backend``:
'auto' | 'cpu' (more register themselves in :mod:`lanp.kernels.backends`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import backends
from .params import (ConvergenceWarning, GraphParams, InputError, SolverParams, check_dtype,
                     check_packed, is_uniform_seeds, pack_seeds, video_name)


@dataclass
class Propagation:
    """Result of normality propagation over V videos with N snippets in all.

    z:          (N,) normal magnitudes, z = (I - alpha S)^-1 y per video (compute dtype).
    iterations: (V,) int32 CG iterations per video.
    residual:   (V,) float64 true relative residual ||y - (I - alpha S) z|| / ||y||.
    converged:  (V,) bool, the stopping test ||r_k|| <= tol ||y|| was met.
    backend:    name of the backend that ran.
    """

    z: np.ndarray
    iterations: np.ndarray
    residual: np.ndarray
    converged: np.ndarray
    backend: str


@dataclass
class Graph:
    """Normalised similarity S of every video.

    window None: ``values`` flat float64; video v's (L, L) matrix is
        values[graph_offsets[v]:graph_offsets[v+1]].reshape(L, L).
    window k:    ``values`` (N, 2k+1); row i of a video holds S_ij at column j - i + k, zero
        outside the video.
    """

    values: np.ndarray
    offsets: np.ndarray
    graph_offsets: Optional[np.ndarray]
    window: Optional[int]

    def dense(self, v: int) -> np.ndarray:
        """Video v's S as an (L, L) float64 matrix."""
        a, b = int(self.offsets[v]), int(self.offsets[v + 1])
        L = b - a
        if self.window is None:
            g0 = int(self.graph_offsets[v])
            return np.array(self.values[g0:g0 + L * L], dtype=np.float64).reshape(L, L)
        k = self.window
        out = np.zeros((L, L))
        band = np.asarray(self.values[a:b], dtype=np.float64)
        for i in range(L):
            for c in range(2 * k + 1):
                j = i + c - k
                if 0 <= j < L:
                    out[i, j] = band[i, c]
        return out


def _prepare(features, offsets, video_ids, dtype, where):
    xp_features = backends.as_array_module(features)
    dt = check_dtype(dtype if dtype is not None else (features.dtype if features.dtype in (np.float32, np.float64) else np.float32))
    offsets = np.asarray(backends.to_numpy(offsets), dtype=np.int64)
    check_packed(xp_features, offsets, video_ids, where)
    return dt, offsets


def raise_for_status(status, where_idx, offsets, video_ids, params: GraphParams, where: str) -> None:
    """Turn the per-video status codes of a kernel into one clear InputError."""
    bad = np.flatnonzero(status != 0)
    if not bad.size:
        return
    v = int(bad[0])
    snippet = int(where_idx[v])
    if status[v] < 0:
        raise RuntimeError(f"{where}: the kernel wrote no result for {video_name(video_ids, v)} "
                           f"({bad.size} video(s)): this is a bug in lanp, please report it")
    if status[v] == 1:
        what = "a NaN or Inf value (or a value too large to square in this dtype)"
    else:
        why = "cosine distance" if params.distance == "cosine" else "L2 normalisation"
        what = f"an all-zero feature vector, which {why} cannot use"
    raise InputError(f"{where}: {video_name(video_ids, v)}, snippet {snippet} "
                     f"(row {int(offsets[v]) + snippet}) has {what}; {bad.size} bad video(s) in all")


def propagate(features, offsets, *, alpha: float = 0.99, sigma: float = 0.1,
              distance: str = "sqeuclidean", normalize: bool = True, window: Optional[int] = None,
              temporal_scale: Optional[float] = None, terms: str = "both", seeds=(0, -1),
              tol: float = 1e-6, maxiter: int = 1000, dtype=None, backend: str = "auto",
              video_ids=None, where: str = "features", warn: bool = True) -> Propagation:
    """Normality propagation z = (I - alpha S)^-1 y for every video of a packed batch.

    features: (N, D) float32/float64 (numpy, or a device array for GPU backends).
    offsets:  (V+1,) int64, offsets[0] = 0, offsets[-1] = N, every video non-empty.
    W_ij = Wf(x_i, x_j) * exp(-|i-j|/s), W_ii = 0 (``terms`` 'feature' or 'temporal' keeps one
    factor); S = D^-1/2 W D^-1/2 (log domain);
    y = 1 at ``seeds``: positions for every video alike, e.g. (0, -1), or one sequence of positions
    per video (V of them); negative positions count from the end. See GraphParams / SolverParams.
    dtype: compute dtype of the dot products (default: the features' dtype if float32/64).
    Returns a :class:`Propagation`; warns with ConvergenceWarning for videos that hit maxiter.

    >>> x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    >>> r = propagate(x, np.array([0, 4, 10]))
    >>> r.z.shape, r.iterations.shape
    ((10,), (2,))
    """
    graph = GraphParams(sigma=sigma, distance=distance, normalize=normalize, window=window,
                        temporal_scale=temporal_scale, terms=terms)
    seeds = seeds if isinstance(seeds, np.ndarray) else list(seeds)     # iterators: read once
    solver = solver_params(alpha, seeds, tol, maxiter)
    dt, offsets = _prepare(features, offsets, video_ids, dtype, where)
    packed_seeds = pack_seeds(seeds, np.diff(offsets), video_ids, where)
    impl = backends.get(backend)
    result = impl.propagate(features, offsets, graph, solver, packed_seeds, dt, video_ids, where)
    check_written(result, video_ids, where)
    if warn:
        warn_unconverged(result.converged, result.residual, solver.tol, solver.maxiter, video_ids, where)
    return result


def similarity(features, offsets, *, sigma: float = 0.1, distance: str = "sqeuclidean",
               normalize: bool = True, window: Optional[int] = None,
               temporal_scale: Optional[float] = None, terms: str = "both", dtype=None,
               backend: str = "auto", video_ids=None, where: str = "features") -> Graph:
    """S = D^-1/2 W D^-1/2 for every video (see :func:`propagate` and :class:`Graph`)."""
    graph = GraphParams(sigma=sigma, distance=distance, normalize=normalize, window=window,
                        temporal_scale=temporal_scale, terms=terms)
    dt, offsets = _prepare(features, offsets, video_ids, dtype, where)
    return backends.get(backend).similarity(features, offsets, graph, dt, video_ids, where)


def solve(graph: Graph, *, alpha: float = 0.99, seeds=(0, -1), tol: float = 1e-6,
          maxiter: int = 1000, backend: str = "auto", video_ids=None, where: str = "graph",
          warn: bool = True) -> Propagation:
    """CG for (I - alpha S) z = y on a :class:`Graph` from :func:`similarity` (``seeds`` as in
    :func:`propagate`: one list for all videos, or one per video)."""
    seeds = seeds if isinstance(seeds, np.ndarray) else list(seeds)     # iterators: read once
    solver = solver_params(alpha, seeds, tol, maxiter)
    packed_seeds = pack_seeds(seeds, np.diff(np.asarray(graph.offsets)), video_ids, where)
    result = backends.get(backend).solve(graph, solver, packed_seeds)
    check_written(result, video_ids, where)
    if warn:
        warn_unconverged(result.converged, result.residual, solver.tol, solver.maxiter, video_ids, where)
    return result


def solver_params(alpha, seeds, tol, maxiter) -> SolverParams:
    """Checked solver parameters; per-video seeds are checked by :func:`pack_seeds` instead (the
    kernels take the packed seeds, never ``SolverParams.seeds``)."""
    if is_uniform_seeds(seeds):
        return SolverParams(alpha=alpha, seeds=tuple(seeds), tol=tol, maxiter=maxiter)
    return SolverParams(alpha=alpha, tol=tol, maxiter=maxiter)


def check_written(result: Propagation, video_ids, where: str) -> None:
    """Outputs start poisoned (iterations -1, z NaN): anything left so is a backend bug."""
    missing = np.flatnonzero(backends.to_numpy(result.iterations) < 0)
    if missing.size:
        raise RuntimeError(f"{where}: the kernel wrote no result for {video_name(video_ids, int(missing[0]))} "
                           f"({missing.size} video(s)): this is a bug in lanp, please report it")


def warn_unconverged(converged, residual, tol: float, maxiter: int, video_ids, where: str,
                     stacklevel: int = 2) -> None:
    """One ConvergenceWarning naming the videos (first five) whose CG stopped above ``tol``;
    stacklevel 2 points at the caller of the function that calls this."""
    bad = np.flatnonzero(~backends.to_numpy(converged))
    if bad.size:
        names = ", ".join(video_name(video_ids, int(v)) for v in bad[:5])
        worst = float(np.max(backends.to_numpy(residual)[bad]))
        warnings.warn(f"{where}: CG did not reach tol={tol:g} within maxiter={maxiter} for {bad.size} of "
                      f"{len(converged)} video(s) (worst true residual {worst:.3g}): {names}"
                      f"{' ...' if bad.size > 5 else ''}", ConvergenceWarning, stacklevel=stacklevel + 1)
