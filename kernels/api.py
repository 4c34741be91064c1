"""Public entry points of ``lanp.kernels``: similarity, solve and the fused propagate.

All three take packed ragged input, features (N, D) and offsets (V+1,), check every argument
here, then hand checked parameters to one backend (:mod:`lanp.kernels.backends`:
'auto' | 'cpu' | 'cupy' | 'numba-cuda'), whose contract is :class:`lanp.kernels.protocol.Backend`.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import backends
from .arrays import as_array_module, to_numpy
from .contract import check_written
from .errors import warn_unconverged
from .params import GraphParams, SolverParams, check_dtype, check_packed
from .results import Graph, Propagation
from .seeds import is_uniform_seeds, pack_seeds


def _prepare(features, offsets, video_ids, dtype, where):
    xp_features = as_array_module(features)
    dt = check_dtype(dtype if dtype is not None else (features.dtype if features.dtype in (np.float32, np.float64) else np.float32))
    offsets = np.asarray(to_numpy(offsets), dtype=np.int64)
    check_packed(xp_features, offsets, video_ids, where)
    return dt, offsets


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
