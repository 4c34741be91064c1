"""The number of normal videos from the data: thresholds on the video scores.

The paper fixes N_nor (the number of normal training videos, assumed known). Two data-driven
rules pick it from the video scores s (V,) instead (higher = more abnormal):

- ``otsu``: the cut t that maximises the between-class variance of {s <= t} and {s > t}
  (Otsu 1979, exact over every cut between sorted scores);
- ``gmm``: a two-component 1-D Gaussian mixture fitted by EM (initialised at the lower and upper
  quartiles, variances floored at 1e-6 of the total); a video is abnormal when the component of
  the larger mean is the more probable one.

Both return N_nor, clipped to [1, V - 1] when V >= 2 (the method needs a normal list and something
to label), and :func:`n_normal_from_scores` dispatches by name.
"""
from __future__ import annotations

import numpy as np

SPLITS = ("count", "otsu", "gmm")


def otsu_n_normal(scores: np.ndarray) -> int:
    """N_nor = the size of the lower class of the Otsu cut of ``scores``."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    V = s.shape[0]
    if V < 2 or s[0] == s[-1]:
        return max(1, V // 2) if V >= 2 else 1
    k = np.arange(1, V)                                  # lower class = s[:k]
    csum = np.cumsum(s)
    mean_lo = csum[:-1] / k
    mean_hi = (csum[-1] - csum[:-1]) / (V - k)
    between = k * (V - k) * (mean_hi - mean_lo) ** 2
    between[s[1:] == s[:-1]] = -np.inf                   # a cut must fall between distinct scores
    return _clip(int(k[int(np.argmax(between))]), V)


def gmm_n_normal(scores: np.ndarray, iterations: int = 200) -> int:
    """N_nor = the videos more probably from the lower-mean component of a 2-Gaussian mixture."""
    s = np.asarray(scores, dtype=np.float64)
    V = s.shape[0]
    if V < 2 or np.ptp(s) == 0:
        return max(1, V // 2) if V >= 2 else 1
    floor = 1e-6 * s.var()
    mu = np.quantile(s, [0.25, 0.75])
    var = np.full(2, s.var())
    pi = np.array([0.5, 0.5])
    for _ in range(iterations):
        logp = -0.5 * (s[:, None] - mu) ** 2 / var - 0.5 * np.log(2 * np.pi * var) + np.log(pi)
        logp -= logp.max(axis=1, keepdims=True)
        r = np.exp(logp)
        r /= r.sum(axis=1, keepdims=True)
        nk = r.sum(axis=0) + 1e-12
        new_mu = (r * s[:, None]).sum(axis=0) / nk
        var = np.maximum((r * (s[:, None] - new_mu) ** 2).sum(axis=0) / nk, floor)
        pi = nk / V
        done = np.allclose(new_mu, mu, rtol=1e-10, atol=1e-12 * (1 + np.abs(mu).max()))
        mu = new_mu
        if done:
            break
    high = int(np.argmax(mu))
    return _clip(int(np.sum(r[:, high] <= 0.5)), V)


def _clip(n: int, V: int) -> int:
    return min(max(n, 1), V - 1) if V >= 2 else 1


def n_normal_from_scores(scores: np.ndarray, split: str) -> int:
    if split == "otsu":
        return otsu_n_normal(scores)
    if split == "gmm":
        return gmm_n_normal(scores)
    raise ValueError(f"normal_split={split!r} is invalid here: choose otsu or gmm (count uses n_normal / "
                     f"normal_fraction)")
