"""Statistics that tell whether snippet features look like real ones (used to calibrate the worlds of
:mod:`lanp.data.worlds` on real ShanghaiTech I3D features; see ``docs/worlds.md``).

:func:`feature_statistics` takes a sample of videos -- like the real one: a handful of normal videos
of one camera, 31-49 snippets each -- and returns a flat dict of numbers; :data:`STAT_RANGES` holds
the documented range of each for the realistic worlds (the real sample's value lies inside it).
:func:`calibration_sample` picks such a sample from a world's split, so the same statistic is
computed on comparable data.
"""
from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

MAX_LAG = 8
SAMPLE_VIDEOS = 7
SAMPLE_LENGTHS = (31, 49)     # the real sample's shortest and longest video

# statistic -> (low, high, meaning). Each range holds the real ShanghaiTech sample's value and, with some
# room, the spread of the realistic worlds over seeds 0-5 at D = 128 and 256 (bench/calibrate_worlds.py).
STAT_RANGES: Dict[str, Tuple[float, float, str]] = {
    "min": (0.0, 0.0, "smallest value (features are non-negative)"),
    "mean": (0.12, 0.30, "mean value"),
    "zero_fraction": (0.0, 0.06, "share of values exactly 0"),
    "small_fraction": (0.03, 0.22, "share of values below 0.01"),
    "dim_mean_q10": (0.006, 0.05, "10 % quantile over dimensions of the per-dimension mean"),
    "dim_mean_q50": (0.06, 0.18, "median over dimensions of the per-dimension mean"),
    "dim_mean_q90": (0.25, 0.70, "90 % quantile over dimensions of the per-dimension mean"),
    "dim_std_q50": (0.04, 0.14, "median over dimensions of the per-dimension standard deviation"),
    "dim_cv_q50": (0.45, 1.10, "median over dimensions of std / mean"),
    "pca_1": (0.12, 0.55, "share of the variance on the first principal component"),
    "pca_10": (0.55, 0.9, "share of the variance on the first 10 principal components"),
    "pca_50": (0.85, 0.995, "share of the variance on the first 50 principal components"),
    "acf_1": (0.4, 0.8, "lag-1 autocorrelation of snippets (per-video centred, mean over videos)"),
    "acf_2": (0.28, 0.65, "lag-2 autocorrelation"),
    "acf_4": (0.05, 0.45, "lag-4 autocorrelation"),
    "acf_8": (-0.25, 0.20, "lag-8 autocorrelation"),
    "adjacent_sqdist": (0.03, 0.10, "median squared distance of neighbouring snippets (unit rows)"),
    "within_sqdist": (0.1, 0.35, "mean squared distance of two snippets of one video (unit rows)"),
    "between_sqdist": (0.16, 0.55, "mean squared distance of snippets of two videos of one camera (unit rows)"),
    "between_within_ratio": (1.2, 2.4, "between_sqdist / within_sqdist"),
}


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def _mean_sqdist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.maximum(2.0 - 2.0 * (a @ b.T), 0.0)))


def autocorrelation(videos: Sequence[np.ndarray], max_lag: int = MAX_LAG) -> np.ndarray:
    """(max_lag,) lag-k correlation of per-video centred snippets, pooled over dimensions, averaged over
    the videos longer than the lag."""
    out = np.full(max_lag, np.nan)
    for lag in range(1, max_lag + 1):
        values = []
        for x in videos:
            x = np.asarray(x, dtype=np.float64)
            if x.shape[0] <= lag + 1:
                continue
            c = x - x.mean(axis=0)
            a, b = c[:-lag], c[lag:]
            den = np.sqrt((a * a).sum() * (b * b).sum())
            if den > 0:
                values.append((a * b).sum() / den)
        if values:
            out[lag - 1] = float(np.mean(values))
    return out


def feature_statistics(videos: Sequence[np.ndarray], other_scene: Optional[Sequence[np.ndarray]] = None) -> dict:
    """Statistics of a sample of videos, each (L, D) (crops already averaged); ``other_scene``: videos of
    other scenes, for ``other_scene_sqdist`` (NaN without them). Keys: those of STAT_RANGES, plus
    ``acf_3`` ... ``acf_7``, ``other_scene_sqdist``, ``videos``, ``snippets``, ``dim``."""
    videos = [np.asarray(v, dtype=np.float64) for v in videos]
    X = np.concatenate(videos)
    m, s = X.mean(axis=0), X.std(axis=0)
    cv = s[m > 0] / m[m > 0]
    centred = X - m
    ev = np.linalg.svd(centred, compute_uv=False) ** 2
    ev = ev / ev.sum()
    units = [_unit(v) for v in videos]
    adjacent = np.concatenate([np.maximum(2.0 - 2.0 * np.sum(u[1:] * u[:-1], axis=1), 0.0) for u in units])
    within = float(np.mean([_mean_sqdist(u, u) * len(u) / max(len(u) - 1, 1) for u in units]))
    between = (float(np.mean([_mean_sqdist(units[i], units[j]) for i, j in combinations(range(len(units)), 2)]))
               if len(units) > 1 else float("nan"))
    other = float("nan")
    if other_scene:
        others = [_unit(v) for v in other_scene]
        other = float(np.mean([_mean_sqdist(a, b) for a in units for b in others]))
    acf = autocorrelation(videos)
    stats = {
        "videos": len(videos), "snippets": int(X.shape[0]), "dim": int(X.shape[1]),
        "min": float(X.min()), "mean": float(X.mean()), "zero_fraction": float(np.mean(X == 0)),
        "small_fraction": float(np.mean(X < 0.01)),
        "dim_mean_q10": float(np.quantile(m, 0.1)), "dim_mean_q50": float(np.quantile(m, 0.5)),
        "dim_mean_q90": float(np.quantile(m, 0.9)), "dim_std_q50": float(np.quantile(s, 0.5)),
        "dim_cv_q50": float(np.quantile(cv, 0.5)) if cv.size else float("nan"),
        "pca_1": float(ev[:1].sum()), "pca_10": float(ev[:10].sum()), "pca_50": float(ev[:50].sum()),
        **{f"acf_{k}": float(acf[k - 1]) for k in range(1, MAX_LAG + 1)},
        "adjacent_sqdist": float(np.median(adjacent)), "within_sqdist": within, "between_sqdist": between,
        "between_within_ratio": between / within if within > 0 else float("nan"),
        "other_scene_sqdist": other,
    }
    return stats


def out_of_range(stats: dict, ranges: Dict[str, Tuple[float, float, str]] = STAT_RANGES) -> List[str]:
    """The statistics outside their documented range, as 'name=value not in [low, high]'."""
    bad = []
    for name, (lo, hi, _) in ranges.items():
        value = stats.get(name)
        if value is None or not (lo <= value <= hi):
            bad.append(f"{name}={value!r} not in [{lo}, {hi}]")
    return bad


def calibration_sample(split, n_videos: int = SAMPLE_VIDEOS, lengths: Tuple[int, int] = SAMPLE_LENGTHS):
    """(videos, other_scene_videos) from a world split (:class:`lanp.data.worlds.Split`), comparable to the
    real sample: up to ``n_videos`` normal videos at least lengths[0] long whose first snippet shows the
    most common (scene, camera), each cut to its first lengths[1] snippets; and as many normal videos
    starting in other scenes, cut alike. Raises ValueError when fewer than 2 such videos exist."""
    lo, hi = lengths
    L = np.diff(split.offsets)
    ok = (np.asarray(split.video_labels) == 0) & (L >= lo)
    pairs = [(int(s), int(c)) for s, c in zip(split.video_scenes[ok], split.video_cameras[ok])]
    if not pairs:
        raise ValueError(f"no normal video of at least {lo} snippets to sample")
    values, counts = np.unique(np.array(pairs), axis=0, return_counts=True)
    scene, camera = (int(t) for t in values[int(np.argmax(counts))])
    same = np.flatnonzero(ok & (split.video_scenes == scene) & (split.video_cameras == camera))[:n_videos]
    other = np.flatnonzero(ok & (split.video_scenes != scene))[:n_videos]
    if same.size < 2:
        raise ValueError(f"only {same.size} normal video(s) of scene {scene}, camera {camera}: need 2")
    cut = lambda v: split.features[split.offsets[v]:split.offsets[v] + min(int(L[v]), hi)]
    return [cut(v) for v in same], [cut(v) for v in other]


def load_shanghaitech_sample(root) -> Tuple[List[str], List[np.ndarray]]:
    """(names, videos) of the real sample folder (``sample.list`` + (T, 10, 2048) .npy files), crops
    averaged to (T, 2048) float32."""
    root = Path(root)
    names = (root / "sample.list").read_text().split()
    videos = []
    for name in names:
        x = np.load(root / name, allow_pickle=False)
        videos.append(x.mean(axis=1) if x.ndim == 3 else x)
    return names, videos
