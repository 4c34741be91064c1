"""CuPy backend ``cupy``: the CUDA C kernels of ``lanp.cu`` through ``cupy.RawModule``.

The source is compiled once per process (NVRTC, memoised) and its kernels fetched by name:

* ``propagate``: videos with L <= 128 (whose S fits in shared memory) take ``lanp_fused_*``, one
  block per video: similarity in shared memory, CG there, only z / iterations / residual /
  converged written. Longer videos: ``lanp_similarity_*`` (one launch over row-chunk work items)
  into a float64 graph in device memory, then ``lanp_solve`` (one block per video).
* ``similarity`` / ``solve``: the unfused pair, output in the CPU layout.

numpy in -> numpy out; cupy in -> cupy out (no host round trip of the features); torch CUDA
tensors in -> torch CUDA tensors out through DLPack. Per-video results (iterations, residual,
converged) are always small host numpy arrays.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..arrays import to_numpy
from ..codes import NO_BAD_ROW, cuda_options
from ..contract import poisoned_solver_outputs, raise_bad_rows
from ..memory import check_graph_memory
from ..results import Graph, Propagation
from . import plan as cuda_plan

SOURCE = Path(__file__).with_name("lanp.cu")
SHARED_DEFAULT = 48 * 1024


@lru_cache(maxsize=None)
def module():
    """The compiled RawModule (once per process; cupy also caches the binary on disk)."""
    import cupy
    return cupy.RawModule(code=SOURCE.read_text(), options=("-std=c++17", f"-DLANP_BLOCK={cuda_plan.BLOCK}", *cuda_options()))


@lru_cache(maxsize=None)
def kernel(name: str):
    return module().get_function(name)


def _kind(a) -> str:
    module_name = type(a).__module__
    if module_name.startswith("cupy"):
        return "cupy"
    if module_name.startswith("torch") and getattr(a, "is_cuda", False):
        return "torch"
    return "numpy"


def _to_cupy(a, dtype=None):
    import cupy
    kind = _kind(a)
    if kind == "torch":
        a = cupy.from_dlpack(a.detach().contiguous())
    elif kind == "numpy":
        a = to_numpy(a)
    return cupy.ascontiguousarray(cupy.asarray(a, dtype=dtype))


def _out(a, kind):
    if kind == "cupy":
        return a
    if kind == "torch":
        import torch
        return torch.from_dlpack(a)
    return a.get()


def _suffix(dt) -> str:
    return "f32" if np.dtype(dt) == np.float32 else "f64"


def _scalars(graph):
    return (np.int32(graph.band), np.int32(graph.distance_code), np.int32(graph.normalize),
            np.float64(graph.inv_two_sigma2), np.float64(graph.kernel_temporal_scale))


def _device_budget() -> int:
    import cupy
    free, _ = cupy.cuda.runtime.memGetInfo()
    return free // 2


class CupyBackend:
    name = "cupy"

    def available(self):
        try:
            import cupy
        except Exception as exc:
            return False, f"cupy is not installed or does not import ({exc}); install the 'gpu' extra (cupy-cuda13x)"
        try:
            n = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:
            return False, f"cupy found no usable CUDA driver/device ({exc})"
        if n < 1:
            return False, "cupy found no CUDA device on this machine"
        return True, ""

    # -- building blocks -----------------------------------------------------------------------
    def _similarity(self, x, offsets, graph, dt, videos=None):
        """Launch lanp_similarity_* for ``videos`` (default all): returns (values, plan, bad)."""
        import cupy
        lengths = np.diff(offsets)
        V = lengths.shape[0]
        plan = cuda_plan.similarity_plan(lengths, graph.band, videos=videos)
        values = cupy.full(plan.values_shape, np.nan)
        bad = cupy.full(V, NO_BAD_ROW, dtype=np.int32)
        if plan.items.shape[0]:
            goff = plan.graph_offsets if plan.graph_offsets is not None else np.zeros(1, np.int64)
            kernel(f"lanp_similarity_{_suffix(dt)}")(
                (plan.items.shape[0],), (cuda_plan.BLOCK,),
                (x, np.int64(x.shape[1]), cupy.asarray(offsets), cupy.asarray(goff),
                 cupy.asarray(plan.items), *_scalars(graph), values,
                 cupy.empty(plan.norm_size), cupy.empty(plan.lse_size), cupy.empty(plan.halo_size), bad))
        return values, plan, bad

    def _solve(self, values, offsets, graph_offsets, band, solver, seeds, videos, z, iterations,
               residual, converged):
        import cupy
        if not len(videos):
            return
        N = int(offsets[-1])
        goff = graph_offsets if graph_offsets is not None else np.zeros(1, np.int64)
        positions, seed_offsets = seeds
        kernel("lanp_solve")(
            (len(videos),), (cuda_plan.BLOCK,),
            (values, cupy.asarray(offsets), cupy.asarray(goff), cupy.asarray(np.asarray(videos, np.int64)),
             np.int32(band), cupy.asarray(positions), cupy.asarray(seed_offsets), np.float64(solver.alpha),
             np.float64(solver.tol), np.int32(solver.maxiter), z, cupy.empty(N), cupy.empty(N),
             cupy.empty(N), iterations, residual, converged))

    @staticmethod
    def _solver_outputs(N, V):
        import cupy
        return poisoned_solver_outputs(N, V, np.float64, xp=cupy, converged_dtype=np.uint8)

    # -- backend interface ---------------------------------------------------------------------
    def similarity(self, features, offsets, graph, dt, video_ids, where):
        kind = _kind(features)
        lengths = np.diff(offsets)
        check_graph_memory(lengths, graph.window, video_ids, where, budget=_device_budget())
        x = _to_cupy(features, dt)
        values, plan, bad = self._similarity(x, offsets, graph, dt)
        raise_bad_rows(bad.get(), offsets, video_ids, graph, where)
        return Graph(_out(values, kind), offsets, plan.graph_offsets, graph.window)

    def solve(self, g, solver, seeds):
        kind = _kind(g.values)
        offsets = np.asarray(to_numpy(g.offsets), dtype=np.int64)
        V, N = offsets.shape[0] - 1, int(offsets[-1])
        values = _to_cupy(g.values, np.float64)
        z, it, res, conv = self._solver_outputs(N, V)
        self._solve(values, offsets, g.graph_offsets, 0 if g.window is None else g.window, solver,
                    seeds, np.arange(V), z, it, res, conv)
        return Propagation(_out(z, kind), it.get(), res.get(), conv.get().astype(bool), self.name)

    def propagate(self, features, offsets, graph, solver, seeds, dt, video_ids, where):
        import cupy
        kind = _kind(features)
        lengths = np.diff(offsets)
        V, N = lengths.shape[0], int(offsets[-1])
        x = _to_cupy(features, dt)
        fused, rest, smem = cuda_plan.split_fused(lengths, graph.band)
        z, it, res, conv = self._solver_outputs(N, V)
        positions, seed_offsets = seeds
        bad = cupy.full(V, NO_BAD_ROW, dtype=np.int32)
        if fused.size:
            fn = kernel(f"lanp_fused_{_suffix(dt)}")
            if smem > SHARED_DEFAULT and fn.max_dynamic_shared_size_bytes < smem:
                fn.max_dynamic_shared_size_bytes = smem
            fn((fused.size,), (cuda_plan.BLOCK,),
               (x, np.int64(x.shape[1]), cupy.asarray(offsets), cupy.asarray(fused), *_scalars(graph),
                cupy.asarray(positions), cupy.asarray(seed_offsets), np.float64(solver.alpha),
                np.float64(solver.tol), np.int32(solver.maxiter), z, it, res, conv, bad),
               shared_mem=smem)
        if rest.size:
            keep = np.zeros(V, dtype=bool)
            keep[rest] = True
            check_graph_memory(np.where(keep, lengths, 1), graph.window, video_ids, where,
                               budget=_device_budget())
            values, plan, bad_rest = self._similarity(x, offsets, graph, dt, videos=rest)
            bad = cupy.minimum(bad, bad_rest)
            self._solve(values, offsets, plan.graph_offsets, graph.band, solver, seeds, rest,
                        z, it, res, conv)
            del values
        raise_bad_rows(bad.get(), offsets, video_ids, graph, where)
        z = z.astype(dt, copy=False)
        return Propagation(_out(z, kind), it.get(), res.get(), conv.get().astype(bool), self.name)
