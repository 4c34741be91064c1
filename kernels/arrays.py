"""Array-module plumbing shared by every backend: numpy / cupy / torch in, host copies out."""
from __future__ import annotations

import numpy as np


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
