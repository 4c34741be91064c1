"""Pseudo-labels and loss weights from normal magnitudes (the paper's section 3.3).

All functions work on packed arrays: z (N,), offsets (V+1,), and are vectorised over videos.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np


def video_std(z: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """std(z over video v) (population std, float64), shape (V,): the paper's video score."""
    z = np.asarray(z, dtype=np.float64)
    lengths = np.diff(offsets)
    mean = np.add.reduceat(z, offsets[:-1]) / lengths
    centred = z - np.repeat(mean, lengths)
    return np.sqrt(np.add.reduceat(centred * centred, offsets[:-1]) / lengths)


def resolve_n_normal(num_videos: int, n_normal: Optional[int] = None,
                     normal_fraction: Optional[float] = None) -> int:
    """N_nor from a count or a fraction of the videos (floor, at least 1)."""
    if n_normal is not None and normal_fraction is not None:
        raise ValueError("give n_normal or normal_fraction, not both")
    if n_normal is None:
        fraction = 0.5 if normal_fraction is None else normal_fraction
        if not (isinstance(fraction, (int, float)) and 0.0 < fraction <= 1.0):
            raise ValueError(f"normal_fraction={fraction!r} is invalid: it must be in (0, 1]")
        return max(1, int(math.floor(fraction * num_videos)))
    if isinstance(n_normal, bool) or int(n_normal) != n_normal or not 1 <= n_normal <= num_videos:
        raise ValueError(f"n_normal={n_normal!r} is invalid: it must be an integer in [1, {num_videos}] "
                         f"(the number of videos)")
    return int(n_normal)


def split_videos(scores: np.ndarray, n_normal: int) -> np.ndarray:
    """video_abnormal (V,) bool: all but the n_normal lowest-score videos (ties: earlier video first)."""
    order = np.argsort(scores, kind="stable")
    abnormal = np.ones(scores.shape[0], dtype=bool)
    abnormal[order[:n_normal]] = False
    return abnormal


def pseudo_labels(z: np.ndarray, offsets: np.ndarray, video_abnormal: np.ndarray,
                  abnormal_ratio: float = 0.4) -> np.ndarray:
    """y_hat (N,) uint8: in each abnormal video the floor(r * L) lowest-z snippets are 1.

    Ties in z go to the earlier snippet. Normal videos are all 0.
    """
    if not 0.0 <= abnormal_ratio <= 1.0:
        raise ValueError(f"abnormal_ratio={abnormal_ratio!r} is invalid: it must be in [0, 1]")
    lengths = np.diff(offsets)
    video = np.repeat(np.arange(lengths.shape[0]), lengths)
    position = np.arange(z.shape[0]) - np.repeat(offsets[:-1], lengths)
    order = np.lexsort((position, np.asarray(z, dtype=np.float64), video))   # by video, z, position
    rank = np.empty(z.shape[0], dtype=np.int64)
    rank[order] = np.arange(z.shape[0]) - np.repeat(offsets[:-1], lengths)
    count = np.floor(abnormal_ratio * lengths).astype(np.int64)
    labels = (rank < np.repeat(count, lengths)) & np.repeat(video_abnormal, lengths)
    return labels.astype(np.uint8)


def confident_normal_videos(scores: np.ndarray, video_abnormal: np.ndarray,
                            confident_fraction: float = 0.1) -> np.ndarray:
    """Indices of the max(1, floor(h * N_nor)) lowest-score normal videos (lowest first)."""
    if not 0.0 < confident_fraction <= 1.0:
        raise ValueError(f"confident_fraction={confident_fraction!r} is invalid: it must be in (0, 1]")
    normal = np.flatnonzero(~video_abnormal)
    if normal.size == 0:
        raise ValueError("no normal video: n_normal must be at least 1")
    count = max(1, int(math.floor(confident_fraction * normal.size)))
    order = normal[np.argsort(scores[normal], kind="stable")]
    return order[:count]


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float64); the caller guarantees non-zero rows."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def loss_weights(x: np.ndarray, labels: np.ndarray, normal_list: np.ndarray) -> np.ndarray:
    """w_q = exp(-|d_q - y_hat_q|), d_q = min over m in M of (1 - cos(x_q, m))
                                       = 1 - max_m (x_q . m / ||m||) / ||x_q||.

    x: (n, D) snippet features; labels: (n,) pseudo-labels; normal_list: (|M|, D) mean features.
    Returns (n,) float64. The dot products run in x's dtype (float32 features: d to ~1e-6) in
    lanp.kernels.cpu.max_cosine, row by row: no (n x |M|) temporary, and every row's weight is
    independent of how the rows were chunked.
    """
    from lanp.kernels import max_cosine
    dtype = np.dtype(x.dtype if x.dtype in (np.float32, np.float64) else np.float64)
    block = np.ascontiguousarray(x, dtype=dtype)
    best = np.empty(block.shape[0], dtype=np.float64)
    max_cosine(block, np.ascontiguousarray(unit_rows(normal_list), dtype=dtype), dtype.type(0), best)
    return np.exp(-np.abs((1.0 - best) - labels))
