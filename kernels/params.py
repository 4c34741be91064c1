"""Validated parameters of the normality-propagation graph and solver, and the packed-input check.

Every backend receives a :class:`GraphParams` and a :class:`SolverParams`, so the checks and the
error messages live here once. Errors name the parameter and its allowed values.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from .codes import DISTANCE_CODES, DISTANCES
from .errors import InputError, video_name

TERMS = ("both", "feature", "temporal")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class GraphParams:
    """Similarity graph W = Wf * Wt (zero diagonal), normalised to S = D^-1/2 W D^-1/2.

    sigma:          Gaussian width of the feature term (sqeuclidean, rms), > 0.
    distance:       'sqeuclidean': Wf = exp(-||xi-xj||^2 / (2 sigma^2))   (the paper)
                    'rms':         Wf = exp(-sqrt(||xi-xj||^2 / D) / (2 sigma^2))
                    'cosine':      Wf = max(cos(xi, xj), 0)
    normalize:      L2-normalise every snippet before the distance.
    window:         None for a dense graph, else the half-width k >= 1 of a band |i-j| <= k.
    temporal_scale: None for s = L (the paper), else a fixed s > 0 in snippets; Wt = exp(-|i-j|/s).
    terms:          'both' (W = Wf * Wt, the paper) | 'feature' (W = Wf: Wt = 1, s = infinity) |
                    'temporal' (W = Wt: Wf = 1, 1 / (2 sigma^2) = 0; the features are still
                    checked for NaN/Inf, and for zero vectors when normalised).
    """

    sigma: float = 0.1
    distance: str = "sqeuclidean"
    normalize: bool = True
    window: Optional[int] = None
    temporal_scale: Optional[float] = None
    terms: str = "both"

    def __post_init__(self):
        check_positive("sigma", self.sigma)
        if self.distance not in DISTANCES:
            raise ValueError(f"distance={self.distance!r} is invalid: choose one of {', '.join(DISTANCES)}")
        if self.window is not None:
            if isinstance(self.window, bool) or int(self.window) != self.window or self.window < 1:
                raise ValueError(f"window={self.window!r} is invalid: it must be an integer >= 1 (or None for a dense graph)")
            object.__setattr__(self, "window", int(self.window))
        if self.temporal_scale is not None:
            check_positive("temporal_scale", self.temporal_scale)
            object.__setattr__(self, "temporal_scale", float(self.temporal_scale))
        if self.terms not in TERMS:
            raise ValueError(f"terms={self.terms!r} is invalid: choose one of {', '.join(TERMS)}")
        object.__setattr__(self, "sigma", float(self.sigma))
        object.__setattr__(self, "normalize", bool(self.normalize))

    @property
    def distance_code(self) -> int:
        """The distance the kernels compute (sqeuclidean when only Wt is used: Wf = 1 anyway)."""
        return DISTANCE_CODES["sqeuclidean" if self.terms == "temporal" else self.distance]

    @property
    def inv_two_sigma2(self) -> float:
        """1 / (2 sigma^2) as the kernels take it: 0 makes Wf = exp(0) = 1 (terms='temporal')."""
        return 0.0 if self.terms == "temporal" else 1.0 / (2.0 * self.sigma ** 2)

    @property
    def kernel_temporal_scale(self) -> float:
        """s as the kernels take it: 0 means s = L; infinity makes Wt = exp(0) = 1 (terms='feature')."""
        if self.terms == "feature":
            return math.inf
        return self.temporal_scale or 0.0

    @property
    def band(self) -> int:
        """Half-width passed to kernels: 0 means dense."""
        return 0 if self.window is None else self.window

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SolverParams:
    """CG for (I - alpha S) z = y with y = 1 at the seed snippets.

    alpha:   propagation strength in the open interval (0, 1).
    seeds:   snippet positions set to 1 in y; negative values count from the end (-1 = last).
    tol:     stop when ||y - A z_k|| / ||y|| <= tol (recursive residual), tol > 0.
    maxiter: iteration cap >= 1; videos that hit it are reported, never hidden.
    """

    alpha: float = 0.99
    seeds: tuple = (0, -1)
    tol: float = 1e-6
    maxiter: int = 1000

    def __post_init__(self):
        check_alpha(self.alpha)
        check_positive("tol", self.tol)
        if isinstance(self.maxiter, bool) or int(self.maxiter) != self.maxiter or self.maxiter < 1:
            raise ValueError(f"maxiter={self.maxiter!r} is invalid: it must be an integer >= 1")
        seeds = tuple(self.seeds)
        if not seeds:
            raise ValueError("seeds=() is invalid: give at least one snippet position, e.g. 0,-1")
        for s in seeds:
            if isinstance(s, bool) or int(s) != s:
                raise ValueError(f"seeds={seeds!r} is invalid: positions must be integers (negative counts from the end)")
        object.__setattr__(self, "seeds", tuple(int(s) for s in seeds))
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "tol", float(self.tol))
        object.__setattr__(self, "maxiter", int(self.maxiter))

    def as_dict(self) -> dict:
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        return d


def check_alpha(alpha) -> None:
    if not (isinstance(alpha, (int, float, np.floating)) and 0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha={alpha!r} is invalid: it must be inside the open interval (0, 1)")


def check_positive(name: str, value) -> None:
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or float(value) <= 0:
        raise ValueError(f"{name}={value!r} is invalid: it must be a finite number > 0")


def check_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is invalid: choose float32 or float64")
    return dt


def check_packed(features, offsets, video_ids=None, where: str = "features") -> tuple:
    """Check packed ragged input: features (N, D), offsets (V+1,) int with offsets[0] = 0,
    offsets[-1] = N and every video at least one snippet. Returns (N, D, V)."""
    if features.ndim != 2:
        raise InputError(f"{where}: features must be 2-D (N, D), got shape {tuple(features.shape)}")
    n, d = features.shape
    if d < 1:
        raise InputError(f"{where}: features have feature size D = 0")
    if offsets.ndim != 1 or offsets.shape[0] < 2:
        raise InputError(f"{where}: offsets must be 1-D (V+1,) with V >= 1, got shape {tuple(offsets.shape)}")
    if not np.issubdtype(offsets.dtype, np.integer):
        raise InputError(f"{where}: offsets must be integers, got {offsets.dtype}")
    off = np.asarray(offsets)
    if int(off[0]) != 0:
        raise InputError(f"{where}: offsets[0] = {int(off[0])}, it must be 0")
    if int(off[-1]) != n:
        raise InputError(f"{where}: offsets[-1] = {int(off[-1])} but features have N = {n} rows")
    lengths = np.diff(off)
    bad = np.flatnonzero(lengths < 0)
    if bad.size:
        v = int(bad[0])
        raise InputError(f"{where}: offsets are not non-decreasing at {video_name(video_ids, v)}: "
                         f"offsets[{v}] = {int(off[v])} > offsets[{v + 1}] = {int(off[v + 1])}")
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        raise InputError(f"{where}: {video_name(video_ids, int(empty[0]))} is empty (L = 0); "
                         f"{empty.size} empty video(s) in all")
    if video_ids is not None and len(video_ids) != lengths.shape[0]:
        raise InputError(f"{where}: {len(video_ids)} video ids for {lengths.shape[0]} videos")
    return n, d, lengths.shape[0]
