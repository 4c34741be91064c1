"""Backend registry and dispatch: ``backend="auto" | "cpu" | ...``.

A backend is an object with ``name``, ``available() -> (bool, reason)``, ``propagate``,
``similarity`` and ``solve`` (same signatures as :class:`CpuBackend`). GPU backends register
themselves here when their modules are importable; 'auto' takes the first available GPU backend
and falls back to the CPU.
"""
from __future__ import annotations

import os
from typing import Dict, List

import numpy as np

from . import cpu
from .params import InputError, video_name

_REGISTRY: Dict[str, object] = {}
_AUTO_ORDER: List[str] = []


def register(backend, auto_priority: bool = False) -> None:
    _REGISTRY[backend.name] = backend
    if auto_priority and backend.name not in _AUTO_ORDER:
        _AUTO_ORDER.append(backend.name)


def names() -> List[str]:
    return ["auto", *(_REGISTRY)]


def cuda_driver_present() -> bool:
    """Whether a CUDA driver library loads here (or numba's CUDA simulator is on): a
    few-millisecond check that lets 'auto' skip importing cupy / numba.cuda (~0.5 s per process)
    on machines that cannot have a GPU backend. Memoised."""
    global _DRIVER_PRESENT
    if _DRIVER_PRESENT is None:
        if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
            _DRIVER_PRESENT = True
        else:
            import ctypes
            _DRIVER_PRESENT = False
            for library in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
                try:
                    ctypes.CDLL(library)
                except OSError:
                    continue
                _DRIVER_PRESENT = True
                break
    return _DRIVER_PRESENT


_DRIVER_PRESENT = None


def get(name: str):
    """The backend called ``name``; 'auto' = first available GPU backend, else 'cpu' (without
    probing the GPU packages at all where no CUDA driver loads)."""
    if name == "auto":
        if not cuda_driver_present():
            return _REGISTRY["cpu"]
        for candidate in _AUTO_ORDER:
            ok, _ = _REGISTRY[candidate].available()
            if ok:
                return _REGISTRY[candidate]
        return _REGISTRY["cpu"]
    if name not in _REGISTRY:
        raise ValueError(f"backend={name!r} is invalid: choose one of {', '.join(names())}")
    backend = _REGISTRY[name]
    ok, reason = backend.available()
    if not ok:
        raise RuntimeError(f"backend={name!r} is not usable here: {reason}")
    return backend


def to_numpy(a) -> np.ndarray:
    """Host copy of a numpy / cupy / torch array (numpy passes through)."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "get") and callable(a.get) and type(a).__module__.startswith("cupy"):
        return a.get()
    if type(a).__module__.startswith("torch"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def as_array_module(a):
    """Leave device arrays as they are (their backend reads them); everything else -> numpy."""
    module = type(a).__module__
    if module.startswith("cupy") or module.startswith("torch"):
        return a
    return np.asarray(a)


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo, else free physical pages."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def graph_bytes(lengths: np.ndarray, window) -> np.ndarray:
    """Bytes of the float64 graph matrix one video needs: L^2 * 8 dense, L * (2k+1) * 8 banded."""
    lengths = lengths.astype(np.int64)
    if window is None:
        return lengths * lengths * 8
    return lengths * np.minimum(2 * window + 1, 2 * lengths - 1) * 8


def check_graph_memory(lengths, window, video_ids, where, budget=None) -> None:
    """Refuse (with the size in GB and a remedy) a video whose graph would not fit in memory."""
    need = graph_bytes(lengths, window)
    budget = available_memory_bytes() // 2 if budget is None else budget
    v = int(np.argmax(need))
    if need[v] > budget:
        remedy = "use a banded graph, e.g. --window 50" if window is None else "use a smaller --window"
        raise InputError(f"{where}: {video_name(video_ids, v)} has L = {int(lengths[v])} snippets; its "
                         f"{'dense' if window is None else 'banded'} graph needs {need[v] / 1e9:.2f} GB "
                         f"but only {budget / 1e9:.2f} GB can be spent on one video: {remedy}")


class CpuBackend:
    """numba kernels in :mod:`lanp.kernels.cpu`, parallel over videos."""

    name = "cpu"

    def available(self):
        return True, ""

    def propagate(self, features, offsets, graph, solver, seeds, dt, video_ids, where):
        from .api import Propagation, raise_for_status
        x = np.ascontiguousarray(to_numpy(features), dtype=dt)
        lengths = np.diff(offsets)
        check_graph_memory(lengths, graph.window, video_ids, where)
        V, N = lengths.shape[0], x.shape[0]
        z = np.full(N, np.nan, dtype=dt)                   # poisoned: unwritten rows show
        iterations = np.full(V, -1, dtype=np.int32)
        residual = np.full(V, np.nan)
        converged = np.zeros(V, dtype=np.bool_)
        status = np.full(V, -1, dtype=np.int8)
        where_idx = np.full(V, -1, dtype=np.int64)
        order, bounds = cpu.schedule(lengths, graph.band, x.shape[1])
        cpu.propagate_packed(x, offsets, order, bounds, dt.type(0), graph.band, graph.distance_code, graph.normalize,
                        graph.inv_two_sigma2, graph.kernel_temporal_scale, *seeds,
                        solver.alpha, solver.tol, solver.maxiter,
                        z, iterations, residual, converged, status, where_idx)
        raise_for_status(status, where_idx, offsets, video_ids, graph, where)
        return Propagation(z, iterations, residual, converged, self.name)

    def similarity(self, features, offsets, graph, dt, video_ids, where):
        from .api import Graph, raise_for_status
        x = np.ascontiguousarray(to_numpy(features), dtype=dt)
        lengths = np.diff(offsets)
        V = lengths.shape[0]
        if graph.window is None:
            graph_offsets = np.concatenate([[0], np.cumsum(lengths.astype(np.int64) ** 2)])
            values = np.full(int(graph_offsets[-1]), np.nan)
        else:
            graph_offsets = None
            values = np.full((x.shape[0], 2 * graph.window + 1), np.nan)
        status = np.full(V, -1, dtype=np.int8)
        where_idx = np.full(V, -1, dtype=np.int64)
        order, bounds = cpu.schedule(lengths, graph.band, x.shape[1])
        cpu.similarity_packed(x, offsets, order, bounds, np.zeros(1, np.int64) if graph_offsets is None else graph_offsets,
                        dt.type(0), graph.band, graph.distance_code, graph.normalize,
                        graph.inv_two_sigma2, graph.kernel_temporal_scale,
                        values.reshape(-1, 1) if graph.window is None else values, status, where_idx)
        raise_for_status(status, where_idx, offsets, video_ids, graph, where)
        return Graph(values, offsets, graph_offsets, graph.window)

    def solve(self, g, solver, seeds):
        from .api import Propagation
        offsets = np.asarray(g.offsets, dtype=np.int64)
        lengths = np.diff(offsets)
        V, N = lengths.shape[0], int(offsets[-1])
        values = np.ascontiguousarray(to_numpy(g.values), dtype=np.float64)
        band = 0 if g.window is None else g.window
        z = np.full(N, np.nan)
        iterations = np.full(V, -1, dtype=np.int32)
        residual = np.full(V, np.nan)
        converged = np.zeros(V, dtype=np.bool_)
        graph_offsets = np.zeros(1, np.int64) if g.graph_offsets is None else np.asarray(g.graph_offsets, np.int64)
        if band == 0:
            values = values.reshape(-1, 1)              # both layouts 2-D for one numba signature
        order, bounds = cpu.schedule(lengths, band, 0)
        cpu.solve_packed(values, offsets, order, bounds, graph_offsets,
                        band, *seeds, solver.alpha, solver.tol, solver.maxiter,
                        z, iterations, residual, converged)
        return Propagation(z, iterations, residual, converged, self.name)


register(CpuBackend())
try:  # GPU backends ('cupy', 'numba-cuda') register lazily; import never needs cupy or a GPU
    from .gpu_backends import register_all as _register_gpu
    _register_gpu(register)
except ImportError:  # pragma: no cover
    pass
