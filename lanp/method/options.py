"""The options of a labelling run (``lanp propagate``), validated once."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np

from lanp.kernels import GraphParams, SolverParams, check_dtype
from lanp.method import video_scores
from lanp.method.splits import SPLITS

PRESETS = ("recommended", "paper", "dual-prior", "tri-prior", "tail-adjusted", "official-ucf", "official-sht", "cross-video")
# what 'recommended' stands for (docs/presets.md: the preset that won across the synthetic worlds)
RECOMMENDED = "tri-prior"
RANKING_PRESETS = ("dual-prior", "tri-prior")   # label the top share of the dataset's snippets, no video split
# the video score each preset uses unless one is given: the paper's std(z), and for the in-video
# recipe the length-free score that won on every synthetic world before the dual prior
# (docs/compare.md); 'recommended' keeps it for the few-shot recipe, which builds on the in-video one
DEFAULT_VIDEO_SCORE = {"recommended": "seed-low-tail-length-adjusted", "tail-adjusted": "seed-low-tail-length-adjusted"}
NORMALIZE = ("l2", "none")


@dataclass
class PropagateConfig:
    """Every hyper-parameter of ``lanp propagate`` (defaults: the paper on L2-normalised features).

    Graph: alpha, sigma, distance, normalize ('l2' | 'none'), window (None: dense), temporal_scale
    (None: s = L), terms ('both' | 'feature' | 'temporal'), seeds. Split and labels: n_normal or
    normal_fraction (default half the videos), abnormal_ratio r, confident_fraction h. Solver: tol,
    maxiter, backend, dtype. preset: 'recommended' (the default: today 'tri-prior', the paper's
    graph with normality inside and across videos and an isolation forest's rarity, ranked over the
    dataset, :mod:`lanp.method.triprior`), 'dual-prior' (the same without the forest, the default
    before it, :mod:`lanp.method.dualprior`), 'paper' (these options with the paper's std(z)
    score: the paper bit for bit), 'tail-adjusted' (the paper's recipe with the length-free
    seed-low-tail-length-adjusted video score; the default before the dual prior), an official
    preset (which fixes the graph, solver, split and weights) or 'cross-video'. video_score: a name
    of :mod:`lanp.method.video_scores`; None takes the preset's (std, or
    seed-low-tail-length-adjusted for 'tail-adjusted' and for few-shot 'recommended'; the dual and
    tri priors rank snippets, not videos, and take none).
    normal_split: 'count' (N_nor from n_normal / normal_fraction, the paper) | 'otsu' | 'gmm'
    (N_nor from the video scores, :mod:`lanp.method.splits`).
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
    preset: str = "recommended"
    video_score: Optional[str] = None
    normal_split: str = "count"

    def __post_init__(self):
        if self.normalize not in NORMALIZE:
            raise ValueError(f"normalize={self.normalize!r} is invalid: choose l2 or none")
        self.seeds = tuple(self.seeds)
        check_dtype(self.dtype)
        self._check_ranges()
        self.graph_params()
        self.solver_params()
        if not 0.0 <= self.abnormal_ratio <= 1.0:
            raise ValueError(f"abnormal_ratio={self.abnormal_ratio!r} is invalid: it must be in [0, 1]")
        if not 0.0 < self.confident_fraction <= 1.0:
            raise ValueError(f"confident_fraction={self.confident_fraction!r} is invalid: it must be in (0, 1]")
        if self.preset not in PRESETS:
            raise ValueError(f"preset={self.preset!r} is invalid: choose one of {', '.join(PRESETS)}")
        if self.video_score is None:
            self.video_score = DEFAULT_VIDEO_SCORE.get(self.preset, "std")
        video_scores.get(self.video_score)
        if self.normal_split not in SPLITS:
            raise ValueError(f"normal_split={self.normal_split!r} is invalid: choose one of {', '.join(SPLITS)}")

    def _check_ranges(self) -> None:
        """Values the kernels' parameter checks let through but the arithmetic cannot hold (issue 18):
        1 / (2 sigma^2) must be a finite non-zero float64, window and seeds must fit an int32 index,
        tol must be a relative residual below 1."""
        import math

        s = self.sigma
        if isinstance(s, (int, float)) and math.isfinite(s) and s > 0 and not 1e-100 <= s <= 1e100:
            raise ValueError(f"sigma={s!r} is invalid: it must be in [1e-100, 1e100] (1 / (2 sigma^2) must be a "
                             f"finite, non-zero float64; sigma = 0.1 on L2-normalised features)")
        limit = 2 ** 31 - 1
        if self.window is not None and not isinstance(self.window, bool) and isinstance(self.window, int) \
                and self.window > limit:
            raise ValueError(f"window={self.window!r} is invalid: at most {limit} snippets (a window wider than "
                             f"every video is the dense graph: leave --window out)")
        for seed in self.seeds:
            if isinstance(seed, int) and not -limit <= seed <= limit:
                raise ValueError(f"seeds={list(self.seeds)!r} is invalid: seed {seed} is beyond +-{limit}; seeds are "
                                 f"snippet positions (negative: from the end), e.g. 0,-1")
        if isinstance(self.tol, (int, float)) and math.isfinite(self.tol) and self.tol >= 1:
            raise ValueError(f"tol={self.tol!r} is invalid: it is a relative residual and must be in (0, 1) "
                             f"(default 1e-6); tol >= 1 stops CG before its first iteration")
        n = self.n_normal
        if n is not None and not isinstance(n, bool) and isinstance(n, int) and not 1 <= n <= limit:
            raise ValueError(f"n_normal={n!r} is invalid: it must be an integer >= 1 (at most the number of videos)")

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
