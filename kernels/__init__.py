"""lanp.kernels: normality-propagation kernels on packed ragged batches.

Inputs are ``features (N, D)`` and ``offsets (V+1,)``; video v owns rows offsets[v]:offsets[v+1].
No file I/O and no torch here, so other UVAD code can import the kernels alone::

    from lanp.kernels import propagate
    result = propagate(features, offsets, alpha=0.99, sigma=0.1, window=None)
    result.z, result.iterations, result.residual
"""
from .api import Graph, Propagation, propagate, similarity, solve
from .backends import names as backend_names
from .params import DISTANCES, ConvergenceWarning, GraphParams, InputError, SolverParams

__all__ = [
    "propagate", "similarity", "solve", "Graph", "Propagation", "GraphParams", "SolverParams",
    "ConvergenceWarning", "InputError", "DISTANCES", "backend_names",
]
