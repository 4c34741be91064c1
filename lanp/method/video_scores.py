"""Video scores: a registry of named scores, each in two parts.

A score is computed in two steps so that every runner (in memory, one file, sharded) can use it:
``per_video(z, offsets) -> {name: (V,) or (V, k) array}`` runs in the first pass on whole videos
(it must depend on each video alone), and ``combine(stats, lengths) -> (scores (V,), attrs)`` runs
in the global step on those small arrays of the whole dataset.

- ``std`` (the paper): score_v = std(z over video v), population std.
- ``std-length-adjusted``: log std(z) minus a robust (Huber) straight-line fit against log L over
  the dataset: how much more spread a video's z has than a video of its length typically has
  (std(z) alone is largely a length detector on real data).
- ``seed-low-tail``: z calibrated against the video's own seeds, zn = z / mean(z at the first and
  last snippet); score = 1 - q10(zn), the low tail of the calibrated normality (a robust tail
  statistic: one odd snippet does not move it, a tenth of the video does).
- ``seed-low-tail-length-adjusted``: seed-low-tail minus its robust (Huber) straight-line fit on
  log L (the low tail of a longer video reaches lower by chance: seed-low-tail rises with length).
- ``low-tail``: 1 - q10 of z itself, for normalities already comparable across videos (the
  cross-video recipe's similarity to other videos' seeds).
- ``share-below``: the share of a video's snippets whose zn falls below a dataset-level threshold,
  the 10 % quantile of zn over all snippets of the dataset (from per-video histograms of zn on
  [0, 2] in 400 bins, so it is computed per video in the first pass and combined globally).

Add a score with :func:`register`; ``lanp propagate --video-score`` lists every registered name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import numpy as np

from lanp.method.labels import video_std

Stats = Dict[str, np.ndarray]


@dataclass(frozen=True)
class VideoScore:
    """One named video score (see the module docstring for the two parts)."""

    name: str
    description: str
    per_video: Callable[[np.ndarray, np.ndarray], Stats]
    combine: Callable[[Stats, np.ndarray], Tuple[np.ndarray, dict]]


_REGISTRY: Dict[str, VideoScore] = {}


def register(score: VideoScore) -> VideoScore:
    if score.name in _REGISTRY:
        raise ValueError(f"video score {score.name!r} is registered twice")
    _REGISTRY[score.name] = score
    return score


def names() -> Tuple[str, ...]:
    return tuple(_REGISTRY)


def get(name: str) -> VideoScore:
    if name not in _REGISTRY:
        raise ValueError(f"video_score={name!r} is invalid: choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def huber_line(x: np.ndarray, y: np.ndarray, c: float = 1.345, iterations: int = 50):
    """Robust straight-line fit y ~ a + b x by iteratively re-weighted least squares with Huber
    weights (scale: MAD of the residuals). Returns (a, b). A constant x gives b = 0."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size == 0:
        return 0.0, 0.0
    if np.ptp(x) == 0.0 or x.size < 3:
        return float(np.median(y)), 0.0
    w = np.ones_like(x)
    a = b = 0.0
    for _ in range(iterations):
        sw = w.sum()
        mx, my = (w * x).sum() / sw, (w * y).sum() / sw
        sxx = (w * (x - mx) ** 2).sum()
        b_new = (w * (x - mx) * (y - my)).sum() / sxx if sxx > 0 else 0.0
        a_new = my - b_new * mx
        r = y - a_new - b_new * x
        scale = 1.4826 * np.median(np.abs(r - np.median(r)))
        if not scale > 0:
            a, b = a_new, b_new
            break
        u = np.abs(r) / (c * scale)
        w = np.where(u <= 1.0, 1.0, 1.0 / np.maximum(u, 1e-300))
        converged = abs(a_new - a) + abs(b_new - b) < 1e-12 * (1.0 + abs(a_new) + abs(b_new))
        a, b = a_new, b_new
        if converged:
            break
    return float(a), float(b)


def length_adjusted_scores(scores: np.ndarray, lengths: np.ndarray):
    """log s minus its robust fit on log L. Returns (adjusted (V,), (a, b)).

    Zero scores (e.g. L = 1) are floored at 1e-6 times the median positive score before the log."""
    s = np.asarray(scores, dtype=np.float64)
    positive = s[s > 0]
    floor = 1e-6 * (np.median(positive) if positive.size else 1.0)
    log_s = np.log(np.maximum(s, floor))
    log_l = np.log(np.asarray(lengths, dtype=np.float64))
    a, b = huber_line(log_l, log_s)
    return log_s - (a + b * log_l), (a, b)


def _std_stats(z, offsets) -> Stats:
    return {"std": video_std(z, offsets)}


def _std(stats: Stats, lengths) -> Tuple[np.ndarray, dict]:
    return stats["std"], {"video_score": "std"}


def _std_length_adjusted(stats: Stats, lengths) -> Tuple[np.ndarray, dict]:
    adjusted, (a, b) = length_adjusted_scores(stats["std"], lengths)
    return adjusted, {"video_score": "std-length-adjusted", "video_score_fit_intercept": a,
                      "video_score_fit_slope": b}


def seed_normalised(z: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """zn = z / mean(z at the video's first and last snippet), per video (float64; a zero seed
    mean gives zn = 0 there)."""
    z = np.asarray(z, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    seeds = 0.5 * (z[offsets[:-1]] + z[offsets[1:] - 1])
    scale = np.repeat(seeds, np.diff(offsets))
    return np.divide(z, scale, out=np.zeros_like(z), where=scale > 0)


TAIL_QUANTILE = 0.1
HIST_EDGES = np.linspace(0.0, 2.0, 401)


def _video_quantiles(values, offsets) -> np.ndarray:
    """(V,) float64: the TAIL_QUANTILE quantile of ``values`` over each video."""
    return np.asarray([np.quantile(np.asarray(values[a:b], dtype=np.float64), TAIL_QUANTILE)
                       for a, b in zip(offsets[:-1], offsets[1:])], dtype=np.float64)


def _low_tail_stats(z, offsets) -> Stats:
    return {"zn_q10": _video_quantiles(seed_normalised(z, offsets), offsets)}


def _raw_low_tail_stats(z, offsets) -> Stats:
    return {"z_q10": _video_quantiles(z, offsets)}


def _raw_low_tail(stats: Stats, lengths) -> Tuple[np.ndarray, dict]:
    return 1.0 - stats["z_q10"], {"video_score": "low-tail", "video_score_quantile": TAIL_QUANTILE}


def _low_tail(stats: Stats, lengths) -> Tuple[np.ndarray, dict]:
    return 1.0 - stats["zn_q10"], {"video_score": "seed-low-tail", "video_score_quantile": TAIL_QUANTILE}


def _hist_stats(z, offsets) -> Stats:
    zn = np.clip(seed_normalised(z, offsets), HIST_EDGES[0], HIST_EDGES[-1])
    bins = np.minimum(np.searchsorted(HIST_EDGES, zn, side="right") - 1, HIST_EDGES.size - 2)
    video = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    hist = np.zeros((len(offsets) - 1, HIST_EDGES.size - 1), dtype=np.int64)
    np.add.at(hist, (video, bins), 1)
    return {"zn_hist": hist}


def _share_below(stats: Stats, lengths) -> Tuple[np.ndarray, dict]:
    hist = stats["zn_hist"]
    total = np.cumsum(hist.sum(axis=0))
    cut = int(np.searchsorted(total, TAIL_QUANTILE * total[-1], side="left"))   # bins [0, cut] are "below"
    share = hist[:, :cut + 1].sum(axis=1) / np.maximum(hist.sum(axis=1), 1)
    return share.astype(np.float64), {"video_score": "share-below", "video_score_quantile": TAIL_QUANTILE,
                                      "video_score_threshold": float(HIST_EDGES[cut + 1])}


register(VideoScore("std", "std(z) of the video (the paper)", _std_stats, _std))
register(VideoScore("std-length-adjusted", "log std(z) minus its robust fit on log length",
                    _std_stats, _std_length_adjusted))
register(VideoScore("seed-low-tail", "1 - the 10 % quantile of z / z at the video's seeds", _low_tail_stats, _low_tail))
def _low_tail_length_adjusted(stats: Stats, lengths) -> Tuple[np.ndarray, dict]:
    raw = 1.0 - stats["zn_q10"]
    a, b = huber_line(np.log(np.asarray(lengths, dtype=np.float64)), raw)
    return raw - (a + b * np.log(np.asarray(lengths, dtype=np.float64))), {
        "video_score": "seed-low-tail-length-adjusted", "video_score_quantile": TAIL_QUANTILE,
        "video_score_fit_intercept": a, "video_score_fit_slope": b}


register(VideoScore("seed-low-tail-length-adjusted", "seed-low-tail minus its robust fit on log length",
                    _low_tail_stats, _low_tail_length_adjusted))
register(VideoScore("low-tail", "1 - the 10 % quantile of z (for normalities comparable across videos, "
                    "e.g. the cross-video recipe's)", _raw_low_tail_stats, _raw_low_tail))
register(VideoScore("share-below", "share of snippets whose seed-calibrated z is below the dataset's 10 % quantile",
                    _hist_stats, _share_below))


def video_scores(z: np.ndarray, offsets: np.ndarray, method: str = "std"):
    """(V,) scores of ``method`` on packed z and a dict of attributes describing them."""
    score = get(method)
    return score.combine(score.per_video(np.asarray(z), np.asarray(offsets)), np.diff(offsets))
