"""Public entry points of ``lanp.kernels``: similarity, solve and the fused propagate; and the
cross-video pair anchor_neighbours (nearest anchors of other videos) and solve_csr (CG on one
sparse joint graph).

The first three take packed ragged input, features (N, D) and offsets (V+1,), check every argument
here, then hand checked parameters to one backend (:mod:`lanp.kernels.backends`:
'auto' | 'cpu' | 'cupy' | 'numba-cuda'), whose contract is :class:`lanp.kernels.protocol.Backend`.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import backends
from .arrays import as_array_module, to_numpy
import warnings

from .contract import check_neighbours_written, check_written
from .errors import ConvergenceWarning, InputError, warn_unconverged
from .params import GraphParams, SolverParams, check_dtype, check_packed
from .results import CsrSolution, Graph, Neighbours, Propagation
from .rhs import right_hand_side
from .seeds import is_uniform_seeds


def _prepare(features, offsets, video_ids, dtype, where):
    xp_features = as_array_module(features)
    dt = check_dtype(dtype if dtype is not None else (features.dtype if features.dtype in (np.float32, np.float64) else np.float32))
    offsets = np.asarray(to_numpy(offsets), dtype=np.int64)
    check_packed(xp_features, offsets, video_ids, where)
    return dt, offsets


def propagate(features, offsets, *, y=None, alpha: float = 0.99, sigma: float = 0.1,
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
    Or ``y``: the packed right-hand side (N,) float32/float64 itself (numpy, or a device array for
    GPU backends), finite, any sign; then leave ``seeds`` at its default. A video whose y is all
    zero gets z = 0, 0 iterations, residual 0, converged. z is linear in y.
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
    packed_seeds, y = right_hand_side(y, seeds, offsets, video_ids, where)
    impl = backends.get(backend)
    if y is None:                                   # the seed path: the call it always was
        result = impl.propagate(features, offsets, graph, solver, packed_seeds, dt, video_ids, where)
    else:
        result = impl.propagate(features, offsets, graph, solver, packed_seeds, dt, video_ids, where, y=y)
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


def solve(graph: Graph, *, y=None, alpha: float = 0.99, seeds=(0, -1), tol: float = 1e-6,
          maxiter: int = 1000, backend: str = "auto", video_ids=None, where: str = "graph",
          warn: bool = True) -> Propagation:
    """CG for (I - alpha S) z = y on a :class:`Graph` from :func:`similarity`, per video.

    y = 1 at ``seeds`` (as in :func:`propagate`: one list for all videos, or one per video), or
    the packed right-hand side ``y`` (N,) float32/float64 (finite, any sign; numpy or a device
    array for GPU backends; ``seeds`` left at its default). Returns a :class:`Propagation`: z
    (N,) float64, residual ||y_v - (I - alpha S_v) z_v|| / ||y_v|| per video (0 for a video whose
    y is all zero: z = 0 there after 0 iterations).

    >>> x = np.random.default_rng(0).normal(size=(6, 3))
    >>> g = similarity(x, np.array([0, 2, 6]), backend="cpu")
    >>> y = np.array([0., 0., 1., -2., 0., .5])
    >>> r = solve(g, y=y, alpha=0.5, tol=1e-12, backend="cpu")
    >>> S = g.dense(1)
    >>> bool(np.allclose(r.z[2:], np.linalg.solve(np.eye(4) - 0.5 * S, y[2:])))
    True
    >>> r.z[:2].tolist(), int(r.iterations[0]), float(r.residual[0]), bool(r.converged[0])
    ([0.0, 0.0], 0, 0.0, True)
    """
    seeds = seeds if isinstance(seeds, np.ndarray) else list(seeds)     # iterators: read once
    solver = solver_params(alpha, seeds, tol, maxiter)
    packed_seeds, y = right_hand_side(y, seeds, np.asarray(to_numpy(graph.offsets)), video_ids, where)
    impl = backends.get(backend)
    if y is None:                                   # the seed path: the call it always was
        result = impl.solve(graph, solver, packed_seeds)
    else:
        result = impl.solve(graph, solver, packed_seeds, y=y)
    check_written(result, video_ids, where)
    if warn:
        warn_unconverged(result.converged, result.residual, solver.tol, solver.maxiter, video_ids, where)
    return result


def solver_params(alpha, seeds, tol, maxiter) -> SolverParams:
    """Checked solver parameters; per-video seeds are checked by :func:`pack_seeds` instead (the
    kernels take the packed seeds or y, never ``SolverParams.seeds``)."""
    if is_uniform_seeds(seeds):
        return SolverParams(alpha=alpha, seeds=tuple(seeds), tol=tol, maxiter=maxiter)
    return SolverParams(alpha=alpha, tol=tol, maxiter=maxiter)


def anchor_neighbours(features, offsets, anchors, anchor_video, *, k: int = 1, first_video: int = 0,
                      dtype=None, backend: str = "auto", video_ids=None,
                      where: str = "features") -> Neighbours:
    """The k anchors of other videos most cosine-similar to every snippet row.

    features:     (N, D) float32/float64 packed videos, offsets (V+1,) as in :func:`propagate`.
    anchors:      (A, D) float rows (e.g. every video's seed snippets, or a sample), same D.
    anchor_video: (A,) int, the global video of each anchor; row i of local video v belongs to
                  global video v + ``first_video`` (so a chunk of a file can be searched against
                  the anchors of the whole file).
    s_ia = (x_i . a_a) / (||x_i|| ||a_a||) over anchors with anchor_video[a] != video(i); keeps
    the k largest, largest first, ties to the lower anchor index. dtype: of the dot products
    (default: the features' dtype if float32/64; norms are float64 either way).
    Returns :class:`Neighbours` with index (N, k) int64 (-1 where fewer than k anchors are
    eligible) and similarity (N, k) float64 (-inf there). Zero or non-finite rows or anchors
    raise InputError naming the video and snippet (or the anchor). Exact search: the CPU does one
    BLAS matmul per chunk of rows, memory O(chunk x A).

    >>> x = np.array([[1., 0.], [1., 1.], [0., 1.], [1., .1]])
    >>> r = anchor_neighbours(x, np.array([0, 2, 4]), x[[0, 2]], np.array([0, 1]), k=2, backend="cpu")
    >>> r.index.tolist()                     # one anchor per video: the second place stays empty
    [[1, -1], [1, -1], [0, -1], [0, -1]]
    >>> np.round(r.similarity[:, 0], 3).tolist()
    [0.0, 0.707, 0.0, 0.995]
    """
    dt, offsets = _prepare(features, offsets, video_ids, dtype, where)
    anchors = as_array_module(anchors)
    if len(anchors.shape) != 2 or anchors.shape[1] != features.shape[1]:
        raise InputError(f"{where}: anchors must be (A, D) with D = {features.shape[1]} like the features, "
                         f"got shape {tuple(anchors.shape)}")
    if anchors.dtype not in (np.float32, np.float64):
        raise InputError(f"{where}: anchors must be float32 or float64, got {anchors.dtype}")
    anchor_video = np.asarray(to_numpy(anchor_video))
    if anchor_video.shape != (anchors.shape[0],) or (anchor_video.size and anchor_video.dtype.kind not in "iu"):
        raise InputError(f"{where}: anchor_video must be ({anchors.shape[0]},) integers (one video per anchor), "
                         f"got shape {anchor_video.shape}, dtype {anchor_video.dtype}")
    anchor_video = anchor_video.astype(np.int64)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k={k!r} is invalid: it must be an integer >= 1")
    if isinstance(first_video, bool) or not isinstance(first_video, (int, np.integer)) or first_video < 0:
        raise ValueError(f"first_video={first_video!r} is invalid: it must be an integer >= 0")
    result = backends.get(backend).anchor_neighbours(features, offsets, anchors, anchor_video, int(k),
                                                     int(first_video), dt, video_ids, where)
    check_neighbours_written(result.index, where)
    return result


def solve_csr(indptr, indices, data, y, *, alpha: float = 0.99, tol: float = 1e-6, maxiter: int = 1000,
              backend: str = "auto", warn: bool = True, where: str = "graph") -> CsrSolution:
    """CG for (I - alpha S) z = y on one sparse graph, S = D^-1/2 W D^-1/2, d_i = sum_j W_ij.

    W (N x N) in CSR: indptr (N+1,) int64, indices (nnz,) int64, data (nnz,) float64; W must be
    symmetric bit for bit, finite, >= 0, with a zero diagonal and each row's columns strictly
    increasing (canonical CSR, e.g. scipy's ``(W + W.T) / 2`` after ``sum_duplicates()``). All of
    this is checked (an O(nnz log(nnz / N)) pass) and a violation raises InputError naming the
    entry. A row of degree 0 is a zero row and column of S (z_i = y_i). y: (N,) float, finite.
    CG runs from z = 0 until ||r|| <= tol ||y|| or ``maxiter`` (a ConvergenceWarning if ``warn``).
    Returns :class:`CsrSolution`: z (N,) float64, iterations, the true relative residual
    ||y - (I - alpha S) z|| / ||y|| recomputed after the loop, converged. Device arrays in (cupy
    backend) -> z on the device.

    >>> W = np.array([[0., 1., 0.], [1., 0., 1.], [0., 1., 0.]])    # a path of 3 snippets
    >>> r = solve_csr(np.array([0, 1, 3, 4]), np.array([1, 0, 2, 1]), W[W > 0], np.array([1., 0., 1.]),
    ...               alpha=0.5, backend="cpu")
    >>> np.round(r.z, 6).tolist(), r.iterations, r.converged
    ([1.333333, 0.942809, 1.333333], 2, True)
    """
    solver = SolverParams(alpha=alpha, tol=tol, maxiter=maxiter)
    host_indptr = np.asarray(to_numpy(indptr))
    if host_indptr.ndim != 1 or host_indptr.shape[0] < 1 or (host_indptr.size and host_indptr.dtype.kind not in "iu"):
        raise InputError(f"{where}: indptr must be (N+1,) integers, got shape {host_indptr.shape}, "
                         f"dtype {host_indptr.dtype}")
    N = host_indptr.shape[0] - 1
    for name, a, kind in (("indices", indices, "iu"), ("data", data, "f"), ("y", y, "f")):
        if len(a.shape) != 1 or np.dtype(a.dtype).kind not in kind:
            raise InputError(f"{where}: {name} must be 1-D {'integers' if kind == 'iu' else 'floats'}, "
                             f"got shape {tuple(a.shape)}, dtype {a.dtype}")
    nnz = indices.shape[0]
    if int(host_indptr[0]) != 0 or int(host_indptr[-1]) != nnz or data.shape[0] != nnz:
        raise InputError(f"{where}: indptr must run from 0 to nnz = len(indices) = {nnz} (got indptr[0] = "
                         f"{int(host_indptr[0])}, indptr[-1] = {int(host_indptr[-1])}) and len(data) must "
                         f"equal it (got {data.shape[0]})")
    steps = np.diff(host_indptr.astype(np.int64))
    if steps.size and steps.min() < 0:
        i = int(np.argmax(steps < 0))
        raise InputError(f"{where}: indptr decreases at row {i} ({int(host_indptr[i])} -> {int(host_indptr[i + 1])})")
    if y.shape[0] != N:
        raise InputError(f"{where}: y has {y.shape[0]} entries for a graph of N = {N} rows")
    host_y = to_numpy(y)
    bad = np.flatnonzero(~np.isfinite(host_y))
    if bad.size:
        raise InputError(f"{where}: y[{int(bad[0])}] = {float(host_y[bad[0]])!r} is not finite "
                         f"({bad.size} such entries)")
    result = backends.get(backend).solve_csr(indptr, indices, data, y, solver, where)
    if warn and not result.converged:
        warnings.warn(f"{where}: CG did not reach tol={solver.tol:g} within maxiter={solver.maxiter} on the "
                      f"{N}-row graph (true residual {result.residual:.3g})", ConvergenceWarning, stacklevel=2)
    return result
