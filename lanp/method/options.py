"""The options of a labelling run (``lanp propagate``), validated once."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np

from lanp.kernels import GraphParams, SolverParams, check_dtype
from lanp.method import video_scores

PRESETS = ("paper", "official-ucf", "official-sht")
NORMALIZE = ("l2", "none")


@dataclass
class PropagateConfig:
    """Every hyper-parameter of ``lanp propagate`` (defaults: the paper on L2-normalised features).

    Graph: alpha, sigma, distance, normalize ('l2' | 'none'), window (None: dense), temporal_scale
    (None: s = L), terms ('both' | 'feature' | 'temporal'), seeds. Split and labels: n_normal or
    normal_fraction (default half the videos), abnormal_ratio r, confident_fraction h. Solver: tol,
    maxiter, backend, dtype. preset: 'paper' (these options) or an official preset (which fixes the
    graph, solver, split and weights). video_score: a name of :mod:`lanp.method.video_scores`.
    """

    alpha: float = 0.99
    sigma: float = 0.1
    distance: str = "sqeuclidean"
    normalize: str = "l2"
    window: Optional[int] = None
    temporal_scale: Optional[float] = None
    terms: str = "both"
    seeds: Sequence[int] = (0, -1)
    n_normal: Optional[int] = None
    normal_fraction: Optional[float] = None
    abnormal_ratio: float = 0.4
    confident_fraction: float = 0.1
    tol: float = 1e-6
    maxiter: int = 1000
    backend: str = "auto"
    dtype: str = "float32"
    preset: str = "paper"
    video_score: str = "std"

    def __post_init__(self):
        if self.normalize not in NORMALIZE:
            raise ValueError(f"normalize={self.normalize!r} is invalid: choose l2 or none")
        self.seeds = tuple(self.seeds)
        check_dtype(self.dtype)
        self.graph_params()
        self.solver_params()
        if not 0.0 <= self.abnormal_ratio <= 1.0:
            raise ValueError(f"abnormal_ratio={self.abnormal_ratio!r} is invalid: it must be in [0, 1]")
        if not 0.0 < self.confident_fraction <= 1.0:
            raise ValueError(f"confident_fraction={self.confident_fraction!r} is invalid: it must be in (0, 1]")
        if self.preset not in PRESETS:
            raise ValueError(f"preset={self.preset!r} is invalid: choose one of {', '.join(PRESETS)}")
        video_scores.get(self.video_score)

    def graph_params(self) -> GraphParams:
        return GraphParams(sigma=self.sigma, distance=self.distance, normalize=self.normalize == "l2",
                           window=self.window, temporal_scale=self.temporal_scale, terms=self.terms)

    def solver_params(self) -> SolverParams:
        return SolverParams(alpha=self.alpha, seeds=self.seeds, tol=self.tol, maxiter=self.maxiter)

    def kernel_kwargs(self) -> dict:
        """Keyword arguments of :func:`lanp.kernels.propagate` for these options."""
        g, s = self.graph_params(), self.solver_params()
        return dict(alpha=s.alpha, sigma=g.sigma, distance=g.distance, normalize=g.normalize,
                    window=g.window, temporal_scale=g.temporal_scale, terms=g.terms, seeds=s.seeds, tol=s.tol,
                    maxiter=s.maxiter, dtype=self.dtype, backend=self.backend)

    def attrs(self) -> dict:
        """Every option as an HDF5 attribute (None as 'none', sequences as int64 arrays)."""
        out = {}
        for key, value in asdict(self).items():
            if value is None:
                value = "none"
            elif isinstance(value, (tuple, list)):
                value = np.asarray(value, dtype=np.int64)
            out[key] = value
        return out
