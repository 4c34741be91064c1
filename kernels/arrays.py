"""Array-module plumbing shared by every backend: numpy / cupy / torch in, host copies out."""
from __future__ import annotations

import numpy as np


def to_numpy(a) -> np.ndarray:
    """Host copy of a numpy / cupy / torch / numba device array (numpy passes through)."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "get") and callable(a.get) and type(a).__module__.startswith("cupy"):
        return a.get()
    if type(a).__module__.startswith("torch"):
        return a.detach().cpu().numpy()
    if type(a).__module__.startswith("numba") and hasattr(a, "copy_to_host"):
        return a.copy_to_host()
    return np.asarray(a)


def as_array_module(a):
    """Leave device arrays as they are (their backend reads them; checks use only their shape
    and dtype); everything else -> numpy."""
    module = type(a).__module__
    if module.startswith(("cupy", "torch", "numba")) or hasattr(a, "__cuda_array_interface__"):
        return a
    return np.asarray(a)
