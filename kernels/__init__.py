"""lanp.kernels: normality-propagation kernels on packed ragged batches.

Inputs are ``features (N, D)`` and ``offsets (V+1,)``; video v owns rows offsets[v]:offsets[v+1].
No file I/O and no torch here, so other UVAD code can import the kernels alone::

    from lanp.kernels import propagate
    result = propagate(features, offsets, alpha=0.99, sigma=0.1, window=None)
    result.z, result.iterations, result.residual

Across videos: :func:`anchor_neighbours` (each snippet's most similar anchors of other videos)
and :func:`solve_csr` (CG on a joint sparse graph in CSR).

Reference (layout, numerics, backends, the Backend protocol, the codes): docs/kernels.md.
"""
from .api import anchor_neighbours, propagate, similarity, solve, solve_csr
from .backends import check_graph_memory
from .backends import names as backend_names
from .codes import DISTANCES
from .cpu.weights import max_cosine
from .errors import ConvergenceWarning, InputError, video_name, warn_unconverged
from .official import propagate_official, weight_distance
from .params import GraphParams, SolverParams, check_dtype, check_packed
from .results import CsrSolution, Graph, Neighbours, Propagation
from .seeds import is_uniform_seeds, pack_seeds, resolve_seeds

__all__ = [
    "propagate", "similarity", "solve", "Graph", "Propagation", "GraphParams", "SolverParams",
    "ConvergenceWarning", "InputError", "DISTANCES", "backend_names",
    # normality across videos: nearest anchors of other videos, CG on one sparse joint graph
    "anchor_neighbours", "solve_csr", "Neighbours", "CsrSolution",
    # used by the method layer (lanp/): checks, the loss-weight kernel, the official presets' kernels
    "warn_unconverged", "check_graph_memory", "check_dtype", "check_packed", "is_uniform_seeds",
    "pack_seeds", "resolve_seeds", "video_name", "max_cosine", "propagate_official", "weight_distance",
]
