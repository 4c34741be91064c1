"""Lazy registration of the GPU backends ('cupy', 'numba-cuda').

Neither cupy nor numba.cuda is imported until a GPU backend is asked for (``backend="auto"``
probes them once per process), so ``import lanp.kernels`` never needs them or a GPU. A backend
whose package is missing reports it in ``available()``, and ``backends.get`` turns that into a
clear error naming what is missing.
"""
from __future__ import annotations

import importlib


class LazyBackend:
    """Stands in for ``module.cls()``: imports it on first use, delegates everything."""

    def __init__(self, name: str, module: str, cls: str, needs: str):
        self.name = name
        self._module, self._cls, self._needs = module, cls, needs
        self._impl = None
        self._status = None

    def _load(self):
        if self._impl is None:
            mod = importlib.import_module(f"lanp.kernels.{self._module}")
            self._impl = getattr(mod, self._cls)()
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


def register_all(register) -> None:
    register(LazyBackend("cupy", "cupy_backend", "CupyBackend", "cupy (cupy-cuda13x)"), auto_priority=True)
    register(LazyBackend("numba-cuda", "numba_cuda", "NumbaCudaBackend", "numba-cuda"), auto_priority=True)
