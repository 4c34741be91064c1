"""Backend ``numba-cuda``: the numba.cuda kernels of :mod:`lanp.kernels.cuda.graph` and
:mod:`lanp.kernels.cuda.cg`, one thread block per video (the same math as the CPU twins and
``lanp.cu``).

The kernels also run under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` set before numba is
first imported). Importing this module imports numba.cuda (which needs no GPU);
:mod:`lanp.kernels.backends` imports it only when the backend is first used.
"""
from __future__ import annotations

import contextlib
from functools import lru_cache

import numpy as np
from numba import cuda

from ..arrays import to_numpy
from ..codes import NO_BAD_ROW
from ..contract import raise_bad_rows
from ..memory import check_graph_memory, check_total_memory, host_budget
from ..results import Graph, Propagation
from . import plan as cuda_plan
from .cg import cg_kernel
from .devices import budget_bytes, device_index, simulator
from .graph import similarity_kernel

BLOCK = 128


@lru_cache(maxsize=None)
def cast_kernel():
    """dst[i] = src[i] (converting the dtype) for 1-D device arrays: cast[blocks, 128](src, dst)."""
    @cuda.jit
    def cast(src, dst):
        i = cuda.grid(1)
        if i < src.shape[0]:
            dst[i] = src[i]
    return cast


def _on_device_of(a):
    """A context making the input's device current (torch cuda:N, cupy on device N)."""
    index = device_index(a)
    if index is None or simulator():
        return contextlib.nullcontext()
    return cuda.gpus[index]


def _budget() -> int:
    """Device bytes a launch may allocate (the simulator: the host's budget)."""
    if simulator():
        return host_budget()
    free, _ = cuda.current_context().get_memory_info()
    return budget_bytes(free, 0)


# ---------------------------------------------------------------------------------------------
# array plumbing: numpy in -> numpy out, device arrays (cupy, torch, numba) in -> device out

def _device_kind(a) -> str:
    module = type(a).__module__
    if module.startswith("cupy"):
        return "cupy"
    if module.startswith("torch") and getattr(a, "is_cuda", False):
        return "torch"
    if module.startswith("numba") or hasattr(a, "__cuda_array_interface__"):
        return "numba"                      # numba device arrays (the simulator's fakes too)
    return "numpy"


def _to_device(cuda, a, dtype=None):
    kind = _device_kind(a)
    if kind == "numpy" or simulator():
        host = np.ascontiguousarray(to_numpy(a), dtype=dtype)
        return cuda.to_device(host)
    dev = cuda.as_cuda_array(a.detach() if kind == "torch" else a)
    if dtype is not None and dev.dtype != np.dtype(dtype):
        dev = cuda.to_device(np.ascontiguousarray(dev.copy_to_host(), dtype=dtype))
    return dev


def _out(dev, kind, index=None):
    if kind == "cupy":
        import cupy
        return cupy.asarray(dev)
    if kind == "torch":
        import torch
        return torch.as_tensor(dev, device="cuda" if index is None else f"cuda:{index}")
    if kind == "numba":
        return dev
    return dev.copy_to_host()


class NumbaCudaBackend:
    """numba.cuda kernels, one thread block per video."""

    name = "numba-cuda"

    def __init__(self, block: int = BLOCK):
        self.block = block

    def available(self):
        try:
            ok = cuda.is_available()
        except Exception as exc:                            # pragma: no cover
            return False, f"numba.cuda found no usable CUDA driver ({exc})"
        if not ok:
            return False, "numba.cuda found no CUDA device (or no CUDA driver) on this machine"
        return True, ""

    # -- similarity ----------------------------------------------------------------------------
    def _similarity_device(self, cuda, x, offsets, graph, dt):
        lengths = np.diff(offsets)
        V = lengths.shape[0]
        plan = cuda_plan.similarity_plan(lengths, graph.band, rows_per_item=int(lengths.max()))
        goff = plan.graph_offsets if plan.graph_offsets is not None else np.zeros(V + 1, np.int64)
        values = cuda.to_device(np.full(int(np.prod(plan.values_shape)), np.nan))
        norms = cuda.to_device(np.full(x.shape[0], np.nan))
        lse = cuda.to_device(np.full(x.shape[0], np.nan))
        bad = cuda.to_device(np.full(V, NO_BAD_ROW, dtype=np.int32))
        similarity_kernel(self.block)[V, self.block](x, cuda.to_device(offsets), cuda.to_device(goff), graph.band,
                           graph.distance_code, graph.normalize or graph.distance == "cosine",
                           graph.inv_two_sigma2, graph.kernel_temporal_scale,
                           dt == np.float32, values, norms, lse, bad)
        return values, plan, bad.copy_to_host()

    @staticmethod
    def _check(offsets, graph, video_ids, where):
        """One block per video for the graph too (banded ones are not split): refuse what one
        block should not build alone, and graphs over the device memory budget."""
        lengths = np.diff(offsets)
        cuda_plan.check_block_work(lengths, graph.band, video_ids, where, splits_bands=False)
        budget = _budget()
        check_graph_memory(lengths, graph.window, video_ids, where, budget=budget)
        check_total_memory(int(cuda_plan.two_step_bytes(lengths, graph.band, 0, 0).sum()), budget, where,
                           "pass fewer videos per call, use a (smaller) window, or backend='cupy'")

    def similarity(self, features, offsets, graph, dt, video_ids, where):
        kind = _device_kind(features)
        with _on_device_of(features):
            self._check(offsets, graph, video_ids, where)
            x = _to_device(cuda, features, dt)
            values, plan, bad = self._similarity_device(cuda, x, offsets, graph, dt)
            raise_bad_rows(bad, offsets, video_ids, graph, where)
            out = values if graph.window is None else values.reshape(plan.values_shape)
            return Graph(_out(out, kind, device_index(features)), offsets, plan.graph_offsets, graph.window)

    # -- CG ------------------------------------------------------------------------------------
    def _solve_device(self, cuda, values, offsets, graph_offsets, band, solver, seeds, y=None):
        """seeds: (positions, seed_offsets) from :func:`lanp.kernels.seeds.pack_seeds`; y: the
        packed right-hand side (N,) (any array kind, None: the seeds')."""
        V, N = offsets.shape[0] - 1, int(offsets[-1])
        goff = graph_offsets if graph_offsets is not None else np.zeros(V + 1, np.int64)
        z = cuda.to_device(np.full(N, np.nan))
        r, p, q = (cuda.to_device(np.full(N, np.nan)) for _ in range(3))
        iterations = cuda.to_device(np.full(V, -1, dtype=np.int32))
        residual = cuda.to_device(np.full(V, np.nan))
        converged = cuda.to_device(np.zeros(V, dtype=np.uint8))
        given = cuda.to_device(np.zeros(1)) if y is None else _to_device(cuda, y, np.float64)
        cg_kernel(self.block)[V, self.block](values, cuda.to_device(offsets), cuda.to_device(goff), band,
                          *(cuda.to_device(np.asarray(s, np.int64)) for s in seeds), given, y is not None,
                          solver.alpha, solver.tol, solver.maxiter, z, r, p, q, iterations, residual,
                          converged)
        return z, iterations.copy_to_host(), residual.copy_to_host(), converged.copy_to_host().astype(bool)

    def solve(self, g, solver, seeds, y=None):
        kind = _device_kind(g.values)
        offsets = np.asarray(to_numpy(g.offsets), dtype=np.int64)
        with _on_device_of(g.values):
            values = _to_device(cuda, g.values, np.float64)
            if len(values.shape) != 1:
                values = values.reshape(values.size)
            band = 0 if g.window is None else g.window
            z, it, res, conv = self._solve_device(cuda, values, offsets, g.graph_offsets, band, solver, seeds, y)
            return Propagation(_out(z, kind, device_index(g.values)), it, res, conv, self.name)

    def propagate(self, features, offsets, graph, solver, seeds, dt, video_ids, where, y=None):
        kind = _device_kind(features)
        with _on_device_of(features):
            self._check(offsets, graph, video_ids, where)
            x = _to_device(cuda, features, dt)
            values, plan, bad = self._similarity_device(cuda, x, offsets, graph, dt)
            raise_bad_rows(bad, offsets, video_ids, graph, where)
            z, it, res, conv = self._solve_device(cuda, values, offsets, plan.graph_offsets, graph.band,
                                                  solver, seeds, y)
            del values
            if kind == "numpy":
                return Propagation(z.copy_to_host().astype(dt), it, res, conv, self.name)
            if np.dtype(dt) != np.float64:                  # z in the compute dtype, on the device
                zt = cuda.device_array(z.shape[0], dtype=dt)
                cast_kernel()[max(1, -(-z.shape[0] // BLOCK)), BLOCK](z, zt)
                z = zt
            return Propagation(_out(z, kind, device_index(features)), it, res, conv, self.name)
