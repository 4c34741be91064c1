"""Feature-level domain alignment: map source-domain snippet rows into a target domain's space.

Cross-domain few-shot (issue 16): labelled snippets come from a SOURCE feature file; before they
become prototypes in the TARGET's graph they are aligned with the target's feature statistics,
fitted on rows believed normal on both sides (the target's confident normal snippets from a first,
label-free pass; the source's labelled-normal snippets). This is a stand-in for Anomaly Crossing's
self-supervised adaptation of the backbone on the target's normal videos, NOT an equivalent: the
features are fixed and only their first two moments are moved.

Methods (``fit_alignment(source (n_s, D), target (n_t, D), method)``; statistics in float64, the
covariances with the 1/n estimator):

- ``"coral"`` (correlation alignment, Sun, Feng & Saenko 2016): match the mean and the full
  covariance,
      x' = (x - mu_s) C_s^{-1/2} C_t^{1/2} + mu_t,
  with symmetric matrix square roots and each covariance shrunk toward a scaled identity,
  C = (1 - lam) S + lam (tr S / D) I (``shrinkage``: a number in [0, 1], or "auto" for each side's
  Ledoit-Wolf estimate). Directions in which the shrunk source covariance has (numerically) no
  variance are dropped by the inverse root (pseudo-inverse), so an all-zero feature maps to the
  target's mean there. With shrinkage 0 and full-rank covariances, the aligned source rows have
  exactly the target's mean and covariance (to rounding).
- ``"whiten"``: the diagonal version: standardise each feature with the source's mean and standard
  deviation, colour it with the target's, x'_d = (x_d - mu_s,d) sd_t,d / sd_s,d + mu_t,d (the
  variance is shrunk as above, per feature, toward the mean variance). Needs far fewer rows than
  CORAL's D x D covariance and cannot rotate.
- ``"none"``: the identity (x' = x), the no-adaptation control.

Refusals (InputError): the two sides of different D, a side with fewer than 2 rows, a
non-finite value (named by side, row and feature), an unknown method or a shrinkage outside [0, 1].
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from lanp.kernels import InputError

METHODS = ("coral", "whiten", "none")
EIGEN_RTOL = 1e-10        # eigenvalues below this share of the largest count as zero (pseudo-inverse)


@dataclass(frozen=True)
class Alignment:
    """A fitted map from source rows to target rows: x' = (x - source_mean) @ matrix + target_mean
    (``matrix`` (D, D) for coral, a diagonal given as (D,) for whiten, None for none)."""
    method: str
    source_mean: np.ndarray
    target_mean: np.ndarray
    matrix: Optional[np.ndarray]
    shrinkage: tuple = (0.0, 0.0)          # (source lam, target lam) actually used

    @property
    def dim(self) -> int:
        return int(self.source_mean.shape[0])

    def apply(self, rows) -> np.ndarray:
        """(m, D) source rows -> (m, D) float64 rows in the target's space."""
        x = _rows(rows, "rows", min_rows=0)
        if x.shape[1] != self.dim:
            raise InputError(f"rows have D = {x.shape[1]} but the alignment was fitted on D = {self.dim}")
        if self.method == "none":
            return x.copy()
        centred = x - self.source_mean
        moved = centred * self.matrix if self.matrix.ndim == 1 else centred @ self.matrix
        return moved + self.target_mean


def _rows(a, side: str, min_rows: int) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(f"{side}: expected a 2-d array (rows, D), got shape {x.shape}")
    if x.shape[0] < min_rows:
        raise InputError(f"{side}: {x.shape[0]} row(s), need at least {min_rows} to fit a mean and a "
                         f"(co)variance")
    bad = ~np.isfinite(x)
    if bad.any():
        r, d = (int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{side}: row {r}, feature {d} holds {float(np.asarray(a)[r, d])}: every value must be "
                         f"finite")
    return x


def ledoit_wolf_shrinkage(x: np.ndarray) -> float:
    """Ledoit & Wolf's (2004) shrinkage intensity lam in [0, 1] of the 1/n covariance of (n, D) rows
    toward (tr S / D) I: lam = min(b2, d2) / d2 with d2 = ||S - mu I||_F^2 and
    b2 = (1/n^2) sum_k ||x_k x_k^T - S||_F^2 (x_k centred). 0 when S is already a scaled identity."""
    xc = x - x.mean(axis=0)
    n, D = xc.shape
    S = xc.T @ xc / n
    mu = np.trace(S) / D
    d2 = float(np.sum((S - mu * np.eye(D)) ** 2))
    if d2 <= 0.0:
        return 0.0
    b2 = (float(np.sum(np.sum(xc ** 2, axis=1) ** 2)) - n * float(np.sum(S ** 2))) / n ** 2
    return float(min(max(b2, 0.0), d2) / d2)


def _shrinkage(value, x) -> float:
    if isinstance(value, str):
        if value != "auto":
            raise InputError(f"shrinkage={value!r} is invalid: it must be 'auto' or a number in [0, 1]")
        return ledoit_wolf_shrinkage(x)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and 0 <= value <= 1):
        raise InputError(f"shrinkage={value!r} is invalid: it must be 'auto' or a number in [0, 1]")
    return float(value)


def shrunk_covariance(x: np.ndarray, lam: float) -> np.ndarray:
    """(1 - lam) S + lam (tr S / D) I with S the 1/n covariance of the (n, D) rows."""
    xc = x - x.mean(axis=0)
    S = xc.T @ xc / x.shape[0]
    return (1.0 - lam) * S + lam * (np.trace(S) / S.shape[0]) * np.eye(S.shape[0])


def _roots(C: np.ndarray):
    """(C^{1/2}, C^{-1/2} as a pseudo-inverse) of a symmetric positive semi-definite C."""
    e, V = np.linalg.eigh((C + C.T) / 2)
    keep = e > EIGEN_RTOL * max(float(e.max()), 0.0)
    root = np.sqrt(np.where(keep, e, 0.0))
    inv = np.where(keep, 1.0 / np.where(keep, root, 1.0), 0.0)
    return (V * root) @ V.T, (V * inv) @ V.T


def fit_alignment(source_normal, target_normal, method: str = "coral",
                  shrinkage: Union[str, float] = "auto") -> Alignment:
    """Fit the map of the module docstring from ``source_normal`` (n_s, D) to ``target_normal``
    (n_t, D) rows (any float dtype; kept in float64)."""
    if method not in METHODS:
        raise InputError(f"method={method!r} is invalid: choose one of {', '.join(METHODS)}")
    xs = _rows(source_normal, "source rows", 2)
    xt = _rows(target_normal, "target rows", 2)
    if xs.shape[1] != xt.shape[1]:
        raise InputError(f"source rows have D = {xs.shape[1]} but target rows have D = {xt.shape[1]}: one "
                         f"feature space cannot be aligned with the other")
    mu_s, mu_t = xs.mean(axis=0), xt.mean(axis=0)
    if method == "none":
        return Alignment("none", mu_s, mu_t, None)
    lam_s, lam_t = _shrinkage(shrinkage, xs), _shrinkage(shrinkage, xt)
    if method == "whiten":
        var_s, var_t = xs.var(axis=0), xt.var(axis=0)
        var_s = (1.0 - lam_s) * var_s + lam_s * var_s.mean()
        var_t = (1.0 - lam_t) * var_t + lam_t * var_t.mean()
        keep = var_s > EIGEN_RTOL * max(float(var_s.max()), 0.0)
        scale = np.where(keep, np.sqrt(var_t) / np.sqrt(np.where(keep, var_s, 1.0)), 0.0)
        return Alignment("whiten", mu_s, mu_t, scale, (lam_s, lam_t))
    _, inv_root_s = _roots(shrunk_covariance(xs, lam_s))
    root_t, _ = _roots(shrunk_covariance(xt, lam_t))
    return Alignment("coral", mu_s, mu_t, inv_root_s @ root_t, (lam_s, lam_t))
