"""The official presets' kernels (CPU): the public code's propagation and loss-weight distance.

:func:`propagate_official` runs :func:`lanp.kernels.cpu.official.official_packed` (its formulas are
there), :func:`weight_distance` runs :func:`lanp.kernels.cpu.weights.weight_distance_rows`.
"""
from __future__ import annotations

import numpy as np

from .codes import COSINE, RMS
from .contract import poisoned_solver_outputs, poisoned_status, raise_for_status
from .cpu.official import official_packed
from .cpu.schedule import schedule
from .cpu.weights import weight_distance_rows
from .params import check_alpha, check_packed, check_positive
from .results import Propagation

VARIANTS = {"rms": RMS, "cosine": COSINE}
WEIGHT_DISTANCES = {"cosine": COSINE, "rms": RMS}
OFFICIAL_STATUS = {1: "a NaN or Inf value",
                   2: "an all-zero feature vector (its cosine is undefined)",
                   3: "a negative degree (its cosine similarities sum below 0; the public code would "
                      "produce NaN)"}


def weight_distance(x, means, kind: str) -> np.ndarray:
    """d (n,) float64, the distance of every row to its nearest normal mean, for ``kind``
    'cosine' (official-ucf: d = 1 - x.m / max(||x|| ||m||, 1e-6)) or 'rms' (official-sht:
    d = sqrt(||x - m||^2 / D)), min over the M means; x (n, D) any float, means (M, D), M >= 1."""
    if kind not in WEIGHT_DISTANCES:
        raise ValueError(f"weight distance {kind!r} is invalid: choose one of {', '.join(WEIGHT_DISTANCES)}")
    x = np.ascontiguousarray(x, dtype=np.float64)
    means = np.ascontiguousarray(means, dtype=np.float64)
    if means.ndim != 2 or means.shape[0] == 0 or means.shape[1] != x.shape[1]:
        raise ValueError(f"normal list of shape {means.shape} for features of width {x.shape[1]}: "
                         f"it needs at least one mean of the same width")
    out = np.full(x.shape[0], np.nan)                  # poisoned: unwritten rows show
    weight_distance_rows(x, means, WEIGHT_DISTANCES[kind], out)
    return out


def propagate_official(features, offsets, *, variant: str, sigma: float = 0.1, alpha: float = 0.99,
                       rtol: float = 1e-6, maxiter: int = 10, max_k: int = 50, video_ids=None,
                       where: str = "features") -> Propagation:
    """The public code's per-video propagation on packed features (N, D) float32/float64 and
    offsets (V+1,). variant 'rms' (official-ucf) or 'cosine' (official-sht).

    Returns a :class:`lanp.kernels.Propagation` whose z (N,) float64 is the post-processed z. Bad
    input raises InputError naming the video and snippet. Hitting ``maxiter`` is the public
    code's behaviour, so no ConvergenceWarning is raised (``converged`` still reports it).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r} is invalid: choose one of {', '.join(VARIANTS)}")
    check_alpha(alpha)
    check_positive("sigma", sigma)
    check_positive("rtol", rtol)
    for name, value in (("maxiter", maxiter), ("max_k", max_k)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name}={value!r} is invalid: it must be an integer >= 1")
    x = np.asarray(features)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    x = np.ascontiguousarray(x)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    check_packed(x, offsets, video_ids, where)
    V, N = offsets.shape[0] - 1, x.shape[0]
    z, iters, residual, converged = poisoned_solver_outputs(N, V)
    status, where_idx = poisoned_status(V, dtype=np.int32)
    order, bounds = schedule(np.diff(offsets), int(max_k), x.shape[1])
    official_packed(x, offsets, order, bounds, VARIANTS[variant], 1.0 / (2.0 * sigma * sigma),
                    float(alpha), float(rtol), int(maxiter), int(max_k), z, iters, residual, converged,
                    status, where_idx)
    raise_for_status(status, where_idx, offsets, video_ids, None, where, messages=OFFICIAL_STATUS)
    return Propagation(z=z, iterations=iters, residual=residual, converged=converged,
                       backend=f"cpu-official-{variant}")
