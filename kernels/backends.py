"""Backend registry and dispatch: ``backend="auto" | "cpu" | "cupy" | "numba-cuda"``.

A backend implements :class:`lanp.kernels.protocol.Backend`. 'cpu' is always registered; the GPU
backends are registered as :class:`LazyBackend` stand-ins, so neither cupy nor numba.cuda is
imported until one is asked for. 'auto' takes the first available GPU backend and falls back to
the CPU (without probing the GPU packages at all where no CUDA driver library loads).
"""
from __future__ import annotations

import importlib
import os
from typing import Dict, List

from . import memory
from .cpu.backend import CpuBackend
from .memory import available_memory_bytes

_REGISTRY: Dict[str, object] = {}
_AUTO_ORDER: List[str] = []


def register(backend, auto_priority: bool = False) -> None:
    """Make ``backend`` (a :class:`~lanp.kernels.protocol.Backend`) selectable by its name;
    ``auto_priority``: 'auto' tries it (in registration order) before falling back to 'cpu'."""
    _REGISTRY[backend.name] = backend
    if auto_priority and backend.name not in _AUTO_ORDER:
        _AUTO_ORDER.append(backend.name)


def names() -> List[str]:
    return ["auto", *(_REGISTRY)]


def cuda_driver_present() -> bool:
    """Whether a CUDA driver library loads here (or numba's CUDA simulator is on): a
    few-millisecond check that lets 'auto' skip importing cupy / numba.cuda on machines that
    cannot have a GPU backend. Memoised."""
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
    """The backend called ``name``; 'auto' = first available GPU backend, else 'cpu'."""
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


def check_graph_memory(lengths, window, video_ids, where, budget=None) -> None:
    """lanp.kernels.check_graph_memory: :func:`lanp.kernels.memory.check_graph_memory` against
    half of this host's available memory (``budget`` bytes if given), for as many graphs at once as
    the CPU kernels run threads, the check the method layer runs before it reads a file. (It reads ``available_memory_bytes`` from this module, where the
    command-line tests replace it.)"""
    import numba

    memory.check_graph_memory(lengths, window, video_ids, where,
                              available_memory_bytes() // 2 if budget is None else budget,
                              threads=numba.get_num_threads())


class LazyBackend:
    """Stands in for ``module.cls()`` (a GPU backend): imports it on first use, delegates the
    Backend methods. A missing package shows in ``available()``, which :func:`get` turns into
    an error naming it."""

    def __init__(self, name: str, module: str, cls: str, needs: str):
        self.name = name
        self._module, self._cls, self._needs = module, cls, needs
        self._impl = None
        self._status = None

    def _load(self):
        if self._impl is None:
            self._impl = getattr(importlib.import_module(self._module), self._cls)()
        return self._impl

    def available(self):
        if self._status is None:
            try:
                self._status = self._load().available()
            except ImportError as exc:
                self._status = (False, f"{self._needs} is not installed ({exc}); install the 'gpu' extra")
            except Exception as exc:                        # pragma: no cover - broken installs
                self._status = (False, f"{self._needs} failed to load: {exc!r}")
        return self._status

    def propagate(self, *args, **kwargs):
        return self._load().propagate(*args, **kwargs)

    def similarity(self, *args, **kwargs):
        return self._load().similarity(*args, **kwargs)

    def solve(self, *args, **kwargs):
        return self._load().solve(*args, **kwargs)

    def anchor_neighbours(self, *args, **kwargs):
        return self._load().anchor_neighbours(*args, **kwargs)

    def solve_csr(self, *args, **kwargs):
        return self._load().solve_csr(*args, **kwargs)


register(CpuBackend())
# cuda.crossvideo_cupy.CupyBackend: cuda.cupy_backend's class plus the cross-video kernels
register(LazyBackend("cupy", "lanp.kernels.cuda.crossvideo_cupy", "CupyBackend", "cupy (cupy-cuda13x)"),
         auto_priority=True)
# cuda.crossvideo_numba.NumbaCudaBackend: cuda.numba_backend's class plus the cross-video kernels
register(LazyBackend("numba-cuda", "lanp.kernels.cuda.crossvideo_numba", "NumbaCudaBackend", "numba-cuda"),
         auto_priority=True)
