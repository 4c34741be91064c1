"""lanp.kernels: normality-propagation kernels on packed ragged batches.

Inputs are ``features (N, D)`` and ``offsets (V+1,)``; video v owns rows offsets[v]:offsets[v+1].
No file I/O and no torch here, so other UVAD code can import the kernels alone::

    from lanp.kernels import propagate
    result = propagate(features, offsets, alpha=0.99, sigma=0.1, window=None)
    result.z, result.iterations, result.residual

Across videos: :func:`anchor_neighbours` (each snippet's most similar anchors of other videos)
and :func:`solve_csr` (CG on a joint sparse graph in CSR).

The names that need numba (the entry points, the backends, the CPU kernels) are imported on first
use, so ``from lanp.kernels import InputError`` (every lanp command's error type) stays light:
``lanp evaluate`` never loads numba.

Reference (layout, numerics, backends, the Backend protocol, the codes): docs/kernels.md.
"""
from importlib import import_module

from .codes import DISTANCES
from .errors import ConvergenceWarning, InputError, video_name, warn_unconverged
from .params import GraphParams, SolverParams, check_dtype, check_packed
from .results import CsrSolution, Graph, Neighbours, Propagation
from .seeds import is_uniform_seeds, pack_seeds, resolve_seeds

# name -> (module, attribute): loaded on first access (they import numba)
_LAZY = {
    "propagate": (".api", "propagate"), "similarity": (".api", "similarity"), "solve": (".api", "solve"),
    "anchor_neighbours": (".api", "anchor_neighbours"), "solve_csr": (".api", "solve_csr"),
    "check_graph_memory": (".backends", "check_graph_memory"), "backend_names": (".backends", "names"),
    "max_cosine": (".cpu.weights", "max_cosine"), "propagate_official": (".official", "propagate_official"),
    "weight_distance": (".official", "weight_distance"),
}


def __getattr__(name):
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(import_module(module, __name__), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "propagate", "similarity", "solve", "Graph", "Propagation", "GraphParams", "SolverParams",
    "ConvergenceWarning", "InputError", "DISTANCES", "backend_names",
    # normality across videos: nearest anchors of other videos, CG on one sparse joint graph
    "anchor_neighbours", "solve_csr", "Neighbours", "CsrSolution",
    # used by the method layer (lanp/): checks, the loss-weight kernel, the official presets' kernels
    "warn_unconverged", "check_graph_memory", "check_dtype", "check_packed", "is_uniform_seeds",
    "pack_seeds", "resolve_seeds", "video_name", "max_cosine", "propagate_official", "weight_distance",
]
