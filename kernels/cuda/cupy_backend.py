"""CuPy backend ``cupy``: the CUDA C kernels of ``lanp.cu`` through ``cupy.RawModule``.

The source is compiled once per process and device (NVRTC, memoised; the codes of
:mod:`lanp.kernels.codes` passed as -D defines) and its kernels fetched by name:

* ``propagate``: videos whose similarity and CG fit in one block's shared memory (L <= 128 and
  the scratch within the device's opt-in limit next to the kernel's static array) take
  ``lanp_fused_*``, one block per video: only z / iterations / residual / converged are written.
  The others go in groups that fit the device memory budget: each group is gathered into a packed
  sub-batch, ``lanp_similarity_*`` (one launch over row-chunk work items) builds its float64
  graph, ``lanp_solve`` (one block per video) solves it, and z is scattered back.
* ``similarity`` / ``solve``: the unfused pair, output in the CPU layout.
* A given right-hand side y (``propagate(..., y=y)``, ``solve(..., y=y)``) takes the ``*_y`` twins
  of the CG kernels (``lanp_fused_y_*``, ``lanp_solve_y``: the same code, y as the last argument,
  float64 on the device, gathered into the sub-batches with the rows); without y the launches are
  the seed path's, unchanged.

Everything runs on the input's device (a torch tensor on cuda:1 is computed on device 1), with
that device's limits (:mod:`lanp.kernels.cuda.limits`) and memory budget (driver free memory plus
cupy's unused pool, halved). numpy in -> numpy out; cupy in -> cupy out; torch CUDA tensors in ->
torch CUDA tensors out (DLPack). Per-video results are always small host numpy arrays.
"""
from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..arrays import to_numpy
from ..codes import NO_BAD_ROW, cuda_options
from ..contract import poisoned_solver_outputs, raise_bad_rows
from ..memory import check_graph_memory, check_total_memory
from ..results import Graph, Propagation
from . import devices, limits
from . import plan as cuda_plan

SOURCE = Path(__file__).with_name("lanp.cu")


def compile_options() -> tuple:
    return ("-std=c++17", f"-DLANP_BLOCK={cuda_plan.BLOCK}", *cuda_options())


@lru_cache(maxsize=None)
def module(device_id: int):
    """The compiled RawModule for one device (cupy also caches the binary on disk)."""
    import cupy
    with cupy.cuda.Device(device_id):
        return cupy.RawModule(code=SOURCE.read_text(), options=compile_options())


@lru_cache(maxsize=None)
def kernel(name: str, device_id: int):
    import cupy
    with cupy.cuda.Device(device_id):
        return module(device_id).get_function(name)


def _kind(a) -> str:
    module_name = type(a).__module__
    if module_name.startswith("cupy"):
        return "cupy"
    if module_name.startswith("torch") and getattr(a, "is_cuda", False):
        return "torch"
    return "numpy"


def _on_device_of(a):
    """A context making the input's device current (the current one for host inputs)."""
    import cupy
    index = devices.device_index(a)
    return cupy.cuda.Device(index) if index is not None else contextlib.nullcontext()


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


def _fused_name(dt, y) -> str:
    """The fused kernel for the compute dtype: the seeds' (y None) or the given y's twin."""
    return f"lanp_fused_{'' if y is None else 'y_'}{_suffix(dt)}"


def _y_argument(y) -> tuple:
    """The trailing launch argument of the *_y kernels (nothing for the seed path's)."""
    return () if y is None else (y,)


def _device():
    import cupy
    return int(cupy.cuda.runtime.getDevice())


class CupyBackend:
    """Implements :class:`lanp.kernels.protocol.Backend` with the CUDA C kernels."""

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

    # -- building blocks (on the current device) -------------------------------------------
    def _similarity(self, x, offsets, graph, dt):
        """Launch lanp_similarity_* for every video of (x, offsets): (values, plan, bad)."""
        import cupy
        lengths = np.diff(offsets)
        V = lengths.shape[0]
        plan = cuda_plan.similarity_plan(lengths, graph.band)
        values = cupy.full(plan.values_shape, np.nan)
        bad = cupy.full(V, NO_BAD_ROW, dtype=np.int32)
        if plan.items.shape[0]:
            goff = plan.graph_offsets if plan.graph_offsets is not None else np.zeros(1, np.int64)
            kernel(f"lanp_similarity_{_suffix(dt)}", _device())(
                (plan.items.shape[0],), (cuda_plan.BLOCK,),
                (x, np.int64(x.shape[1]), cupy.asarray(offsets), cupy.asarray(goff),
                 cupy.asarray(plan.items), *_scalars(graph), values,
                 cupy.empty(plan.norm_size), cupy.empty(plan.lse_size), cupy.empty(plan.halo_size), bad))
        return values, plan, bad

    def _solve(self, values, offsets, graph_offsets, band, solver, seeds, z, iterations,
               residual, converged, y=None):
        """lanp_solve (y None: the seeds) or lanp_solve_y (y: the packed (N,) float64 device y)."""
        import cupy
        V, N = offsets.shape[0] - 1, int(offsets[-1])
        if not V:
            return
        goff = graph_offsets if graph_offsets is not None else np.zeros(1, np.int64)
        positions, seed_offsets = seeds
        kernel("lanp_solve" if y is None else "lanp_solve_y", _device())(
            (V,), (cuda_plan.BLOCK,),
            (values, cupy.asarray(offsets), cupy.asarray(goff), cupy.arange(V, dtype=np.int64),
             np.int32(band), cupy.asarray(positions), cupy.asarray(seed_offsets), np.float64(solver.alpha),
             np.float64(solver.tol), np.int32(solver.maxiter), z, cupy.empty(N), cupy.empty(N),
             cupy.empty(N), iterations, residual, converged, *_y_argument(y)))

    @staticmethod
    def _solver_outputs(N, V):
        import cupy
        return poisoned_solver_outputs(N, V, np.float64, xp=cupy, converged_dtype=np.uint8)

    def _fused(self, x, offsets, graph, solver, seeds, dt, videos, smem, outputs, bad, y=None):
        import cupy
        fn = kernel(_fused_name(dt, y), _device())
        device = devices.cupy_limits(_device())
        opt_in = limits.shared_opt_in(device, devices.kernel_attributes(fn), smem)
        if opt_in is not None and fn.max_dynamic_shared_size_bytes < opt_in:
            fn.max_dynamic_shared_size_bytes = opt_in
        positions, seed_offsets = seeds
        fn((videos.size,), (cuda_plan.BLOCK,),
           (x, np.int64(x.shape[1]), cupy.asarray(offsets), cupy.asarray(videos), *_scalars(graph),
            cupy.asarray(positions), cupy.asarray(seed_offsets), np.float64(solver.alpha),
            np.float64(solver.tol), np.int32(solver.maxiter), *outputs, bad, *_y_argument(y)),
           shared_mem=smem)

    # -- backend interface -----------------------------------------------------------------
    def similarity(self, features, offsets, graph, dt, video_ids, where):
        kind = _kind(features)
        lengths = np.diff(offsets)
        cuda_plan.check_block_work(lengths, graph.band, video_ids, where, splits_bands=True)
        with _on_device_of(features):
            budget = devices.cupy_budget()
            check_graph_memory(lengths, graph.window, video_ids, where, budget=budget)
            check_total_memory(int(cuda_plan.two_step_bytes(lengths, graph.band, 0, 0).sum()), budget, where,
                               "pass fewer videos per call, use a (smaller) window, or propagate(), which "
                               "builds the graphs group by group")
            x = _to_cupy(features, dt)
            values, plan, bad = self._similarity(x, offsets, graph, dt)
            raise_bad_rows(bad.get(), offsets, video_ids, graph, where)
            return Graph(_out(values, kind), offsets, plan.graph_offsets, graph.window)

    def solve(self, g, solver, seeds, y=None):
        kind = _kind(g.values)
        offsets = np.asarray(to_numpy(g.offsets), dtype=np.int64)
        V, N = offsets.shape[0] - 1, int(offsets[-1])
        with _on_device_of(g.values):
            values = _to_cupy(g.values, np.float64)
            z, it, res, conv = self._solver_outputs(N, V)
            self._solve(values, offsets, g.graph_offsets, 0 if g.window is None else g.window, solver,
                        seeds, z, it, res, conv, None if y is None else _to_cupy(y, np.float64))
            return Propagation(_out(z, kind), it.get(), res.get(), conv.get().astype(bool), self.name)

    def propagate(self, features, offsets, graph, solver, seeds, dt, video_ids, where, y=None):
        kind = _kind(features)
        lengths = np.diff(offsets)
        V, N = lengths.shape[0], int(offsets[-1])
        with _on_device_of(features):
            import cupy
            x = _to_cupy(features, dt)
            y = None if y is None else _to_cupy(y, np.float64)
            fn = kernel(_fused_name(dt, y), _device())
            fused, rest, smem = cuda_plan.split_fused(lengths, graph.band, devices.cupy_limits(_device()),
                                                      devices.kernel_attributes(fn))
            in_rest = np.zeros(V, dtype=bool)
            in_rest[rest] = True
            cuda_plan.check_block_work(np.where(in_rest, lengths, 1), graph.band, video_ids, where,
                                       splits_bands=True)
            z, it, res, conv = self._solver_outputs(N, V)
            bad = cupy.full(V, NO_BAD_ROW, dtype=np.int32)
            if fused.size:
                self._fused(x, offsets, graph, solver, seeds, dt, fused, smem, (z, it, res, conv), bad, y)
            if rest.size:
                self._two_step(x, offsets, graph, solver, seeds, dt, rest, video_ids, where,
                               (z, it, res, conv), bad, y)
            raise_bad_rows(bad.get(), offsets, video_ids, graph, where)
            z = z.astype(dt, copy=False)
            return Propagation(_out(z, kind), it.get(), res.get(), conv.get().astype(bool), self.name)

    def _two_step(self, x, offsets, graph, solver, seeds, dt, rest, video_ids, where, outputs, bad, y=None):
        """Similarity + CG for the videos ``rest``, in groups within the memory budget (y: the
        packed device y of the whole batch, gathered with each group's rows)."""
        import cupy
        z, it, res, conv = outputs
        lengths = np.diff(offsets)
        budget = devices.cupy_budget()
        need = cuda_plan.two_step_bytes(lengths[rest], graph.band, x.shape[1], x.dtype.itemsize)
        in_rest = np.zeros(lengths.shape[0], dtype=bool)
        in_rest[rest] = True
        check_graph_memory(np.where(in_rest, lengths, 1), graph.window, video_ids, where, budget=budget)
        for group in cuda_plan.memory_groups(need, budget):
            videos = rest[group]
            rows, sub_offsets = cuda_plan.subset_rows(offsets, videos)
            rows_d = cupy.asarray(rows)
            sub_x = cupy.ascontiguousarray(x[rows_d])
            values, plan, sub_bad = self._similarity(sub_x, sub_offsets, graph, dt)
            sub = self._solver_outputs(int(sub_offsets[-1]), videos.size)
            self._solve(values, sub_offsets, plan.graph_offsets, graph.band, solver,
                        cuda_plan.subset_seeds(seeds, videos), *sub,
                        None if y is None else cupy.ascontiguousarray(y[rows_d]))
            del values, sub_x
            videos_d = cupy.asarray(videos)
            z[rows_d] = sub[0]
            it[videos_d], res[videos_d], conv[videos_d] = sub[1], sub[2], sub[3]
            bad[videos_d] = cupy.minimum(bad[videos_d], sub_bad)
