"""The Backend protocol: what a backend ('cpu', 'cupy', 'numba-cuda', ...) must provide.

The public functions (:mod:`lanp.kernels.api`) check every argument, then call one backend with
checked parameters; the backend runs its kernels and returns the result types of
:mod:`lanp.kernels.results`. Around its kernels every backend uses the shared helpers of
:mod:`lanp.kernels.contract` (poisoned outputs, status -> error) and
:mod:`lanp.kernels.memory` (the graph memory check, with its own budget). Register a new one
with :func:`lanp.kernels.backends.register`.

Arguments, in every method:

    features:    (N, D) float array: numpy, or a device array (cupy, torch CUDA) where the
                 backend reads those; packed ragged videos.
    offsets:     (V+1,) int64 numpy, checked (offsets[0] = 0, offsets[-1] = N, every L_v >= 1).
    graph:       :class:`lanp.kernels.params.GraphParams` (kernel codes via ``distance_code``,
                 ``band``, ``inv_two_sigma2``, ``kernel_temporal_scale``).
    solver:      :class:`lanp.kernels.params.SolverParams` (alpha, tol, maxiter; ignore its
                 ``seeds``, use the packed ones).
    seeds:       (positions (M,) int64, seed_offsets (V+1,) int64) from
                 :func:`lanp.kernels.seeds.pack_seeds`: video v's local seed positions are
                 positions[seed_offsets[v]:seed_offsets[v+1]], 0 <= p < L_v.
    y:           (keyword, only when the caller gave one) the packed right-hand side (N,), in the
                 array kind the caller gave (numpy or a device array), checked finite, float32 or
                 float64 (:func:`lanp.kernels.rhs.check_y`): video v solves against
                 y[offsets[v]:offsets[v+1]] in float64, and ``seeds`` is then empty
                 (seed_offsets all 0). A video with y_v = 0 gets z = 0, 0 iterations, residual 0.
    dt:          numpy dtype float32 | float64, the dtype the dot products are computed in.
    video_ids, where: only for error messages (:func:`lanp.kernels.errors.video_name`).

Arrays come back in the kind they came in (numpy in -> numpy out; device in -> device out);
per-video results (iterations, residual, converged) are always host numpy arrays.
"""
from __future__ import annotations

from typing import Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np

from .params import GraphParams, SolverParams
from .results import CsrSolution, Graph, Neighbours, Propagation

PackedSeeds = Tuple[np.ndarray, np.ndarray]


@runtime_checkable
class Backend(Protocol):
    """One implementation of the kernels (propagate, similarity, solve; anchor_neighbours, solve_csr
    across videos). ``name`` is what ``backend=`` selects."""

    name: str

    def available(self) -> Tuple[bool, str]:
        """(True, '') where the backend can run here, else (False, why: the missing package,
        driver or device, and how to get it). Must not raise."""

    def propagate(self, features, offsets: np.ndarray, graph: GraphParams, solver: SolverParams,
                  seeds: PackedSeeds, dt: np.dtype, video_ids: Optional[Sequence],
                  where: str, y=None) -> Propagation:
        """Similarity + CG fused: z = (I - alpha S)^-1 y for every video.

        Returns a Propagation with z (N,) in ``dt`` (array kind of ``features``), iterations
        (V,) int32, residual (V,) float64 (the true ||y - A z|| / ||y||), converged (V,) bool.
        Raises InputError for bad snippets (:func:`contract.raise_for_status`) and for graphs
        over the memory budget (:func:`memory.check_graph_memory`)."""

    def similarity(self, features, offsets: np.ndarray, graph: GraphParams, dt: np.dtype,
                   video_ids: Optional[Sequence], where: str) -> Graph:
        """S = D^-1/2 W D^-1/2 of every video as a Graph: dense ``values`` flat float64 with
        video v's (L, L) matrix at graph_offsets[v] (graph_offsets = [0, cumsum(L^2)]), or
        banded (N, 2k+1) float64 with column c <-> j = i + c - k, 0 outside the video."""

    def solve(self, g: Graph, solver: SolverParams, seeds: PackedSeeds, y=None) -> Propagation:
        """CG for (I - alpha S) z = y on a Graph in the layout above; z (N,) float64 (array
        kind of ``g.values``), the per-video fields as in :meth:`propagate`."""

    def anchor_neighbours(self, features, offsets: np.ndarray, anchors, anchor_video: np.ndarray, k: int,
                          first_video: int, dt: np.dtype, video_ids: Optional[Sequence],
                          where: str) -> Neighbours:
        """The k most cosine-similar anchors (A, D) of other videos for every row of features:
        anchor_video (A,) int64 host numpy, row i of local video v is in global video
        v + first_video. Returns Neighbours with index (N, k) int64 (-1: none left) and
        similarity (N, k) float64 (-inf there), largest first, ties to the lower anchor, in the
        array kind of ``features``. Poison the outputs first (:func:`contract.poisoned_neighbours`);
        bad rows / anchors raise through :func:`contract.raise_for_row` / ``raise_for_anchor``."""

    def solve_csr(self, indptr, indices, data, y, solver: SolverParams, where: str) -> CsrSolution:
        """CG for (I - alpha S) z = y, S = D^-1/2 W D^-1/2, W (N x N) in CSR (shapes, indptr and y
        already checked by the API; the entries are the backend's to check, structure first, then
        symmetry, through :func:`contract.raise_for_csr_key`). z (N,) float64 in the array kind of
        ``y``; iterations, the true residual and converged as Python scalars."""
