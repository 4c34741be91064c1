"""Backend ``cpu``: the numba kernels of this package, parallel over videos (always available)."""
from __future__ import annotations

import numba
import numpy as np

from ..arrays import to_numpy
from ..codes import NO_BAD_ENTRY
from ..contract import (poisoned_neighbours, poisoned_solver_outputs, poisoned_status, raise_for_anchor,
                        raise_for_csr_key, raise_for_row, raise_for_status)
from ..memory import check_graph_memory
from ..results import CsrSolution, Graph, Neighbours, Propagation
from . import csr, neighbours, packed
from .schedule import schedule


def _host_y(y):
    """The packed right-hand side as host float64 (None: the seeds' y)."""
    return None if y is None else np.ascontiguousarray(to_numpy(y), dtype=np.float64)


class CpuBackend:
    """numba kernels in :mod:`lanp.kernels.cpu.packed`, videos scheduled over threads largest
    first (:func:`schedule`). Implements :class:`lanp.kernels.protocol.Backend`."""

    name = "cpu"

    def available(self):
        return True, ""

    def propagate(self, features, offsets, graph, solver, seeds, dt, video_ids, where, y=None):
        x = np.ascontiguousarray(to_numpy(features), dtype=dt)
        lengths = np.diff(offsets)
        check_graph_memory(lengths, graph.window, video_ids, where, threads=numba.get_num_threads())
        V, N = lengths.shape[0], x.shape[0]
        z, iterations, residual, converged = poisoned_solver_outputs(N, V, dt)
        status, where_idx = poisoned_status(V)
        order, bounds = schedule(lengths, graph.band, x.shape[1])
        packed.propagate_packed(x, offsets, order, bounds, dt.type(0), graph.band, graph.distance_code,
                                graph.normalize, graph.inv_two_sigma2, graph.kernel_temporal_scale, *seeds,
                                solver.alpha, solver.tol, solver.maxiter,
                                z, iterations, residual, converged, status, where_idx, _host_y(y))
        raise_for_status(status, where_idx, offsets, video_ids, graph, where, features=x)
        return Propagation(z, iterations, residual, converged, self.name)

    def similarity(self, features, offsets, graph, dt, video_ids, where):
        x = np.ascontiguousarray(to_numpy(features), dtype=dt)
        lengths = np.diff(offsets)
        V = lengths.shape[0]
        if graph.window is None:
            graph_offsets = np.concatenate([[0], np.cumsum(lengths.astype(np.int64) ** 2)])
            values = np.full(int(graph_offsets[-1]), np.nan)
        else:
            graph_offsets = None
            values = np.full((x.shape[0], 2 * graph.window + 1), np.nan)
        status, where_idx = poisoned_status(V)
        order, bounds = schedule(lengths, graph.band, x.shape[1])
        packed.similarity_packed(x, offsets, order, bounds,
                                 np.zeros(1, np.int64) if graph_offsets is None else graph_offsets,
                                 dt.type(0), graph.band, graph.distance_code, graph.normalize,
                                 graph.inv_two_sigma2, graph.kernel_temporal_scale,
                                 values.reshape(-1, 1) if graph.window is None else values, status, where_idx)
        raise_for_status(status, where_idx, offsets, video_ids, graph, where, features=x)
        return Graph(values, offsets, graph_offsets, graph.window)

    def solve(self, g, solver, seeds, y=None):
        offsets = np.asarray(g.offsets, dtype=np.int64)
        lengths = np.diff(offsets)
        V, N = lengths.shape[0], int(offsets[-1])
        values = np.ascontiguousarray(to_numpy(g.values), dtype=np.float64)
        band = 0 if g.window is None else g.window
        z, iterations, residual, converged = poisoned_solver_outputs(N, V)
        graph_offsets = np.zeros(1, np.int64) if g.graph_offsets is None else np.asarray(g.graph_offsets, np.int64)
        if band == 0:
            values = values.reshape(-1, 1)              # both layouts 2-D for one numba signature
        order, bounds = schedule(lengths, band, 0)
        packed.solve_packed(values, offsets, order, bounds, graph_offsets,
                            band, *seeds, solver.alpha, solver.tol, solver.maxiter,
                            z, iterations, residual, converged, _host_y(y))
        return Propagation(z, iterations, residual, converged, self.name)

    def anchor_neighbours(self, features, offsets, anchors, anchor_video, k, first_video, dt, video_ids, where):
        x = to_numpy(features)
        index, similarity = poisoned_neighbours(x.shape[0], k)
        neighbours.anchor_neighbours(
            x, offsets, np.ascontiguousarray(to_numpy(anchors)), anchor_video, k, first_video, dt,
            lambda row, status: raise_for_row(row, status, offsets, video_ids, where),
            lambda a, status: raise_for_anchor(a, status, anchor_video, where), index, similarity)
        return Neighbours(index, similarity, self.name)

    def solve_csr(self, indptr, indices, data, y, solver, where):
        indptr = np.ascontiguousarray(to_numpy(indptr), dtype=np.int64)
        indices = np.ascontiguousarray(to_numpy(indices), dtype=np.int64)
        data = np.ascontiguousarray(to_numpy(data), dtype=np.float64)
        y = np.ascontiguousarray(to_numpy(y), dtype=np.float64)
        for symmetry in (False, True):          # structure first: the symmetry test needs sorted rows
            key = csr.first_bad_entry(indptr, indices, data, symmetry)
            if key != NO_BAD_ENTRY:
                raise_for_csr_key(key, indptr, indices, data, where)
        dinv = np.empty(y.shape[0])
        csr.inverse_sqrt_degrees(indptr, data, dinv)
        z = np.full(y.shape[0], np.nan)
        it, residual, converged = csr.conjugate_gradient(indptr, indices, data, dinv, y, solver.alpha,
                                                         solver.tol, solver.maxiter, z)
        return CsrSolution(z, int(it), float(residual), bool(converged), self.name)
