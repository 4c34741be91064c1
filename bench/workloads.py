"""Seeded benchmark workloads with the structure of real snippet features.

Each video picks one of a few scenes (a positive "post-ReLU" centre shared across videos), moves
smoothly around it (a few low-frequency cosine modes in time), carries small per-snippet noise, and
about half of the videos get one interior anomaly segment (a shift along one of a few anomaly
directions, never touching the first or last 10 % of the video). Every value is > 0, so no snippet
is ever all zero. Generation is block-wise per video, so the (N, D) float32 output is the only
large allocation.

Workloads (see bench/RESULTS.md):
  ucf32      1610 x 32 x D (D = 2048: the standard 32-segment UCF-Crime setting)
  ucf_full   the real UCF-Crime training lengths (frames // 16, bench/data/ucf_train_lengths.txt),
             790,271 snippets, run banded with window 50
  packed     any length list (sweeps)
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

DATA = Path(__file__).with_name("data")
UCF_LENGTHS = DATA / "ucf_train_lengths.txt"
UCF_WINDOW = 50


def ucf_lengths() -> np.ndarray:
    """Per-video snippet counts of the UCF-Crime training set (1610 videos, frames // 16)."""
    return np.loadtxt(UCF_LENGTHS, dtype=np.int64)


def make_packed(lengths, dim: int, seed: int = 0, num_scenes: int = 6, num_anomalies: int = 4,
                motion: float = 0.08, noise: float = 0.02, anomaly: float = 0.35,
                dtype=np.float32):
    """(features (N, D), offsets (V+1,) int64) for the given per-video lengths."""
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    world = np.random.default_rng(12345)
    scenes = (0.5 + world.random((num_scenes, dim))).astype(dtype)          # positive centres
    directions = world.random((num_anomalies, dim)).astype(dtype)
    rng = np.random.default_rng(seed)
    x = np.empty((int(offsets[-1]), dim), dtype=dtype)
    modes = 3
    for v, L in enumerate(lengths):
        a, b = int(offsets[v]), int(offsets[v + 1])
        xv = x[a:b]
        rng.standard_normal((L, dim), dtype=dtype, out=xv)
        xv *= noise
        xv += scenes[rng.integers(num_scenes)]
        t = (np.arange(L) + 0.5) / L
        basis = np.cos(np.pi * np.outer(t, np.arange(1, modes + 1))).astype(dtype)   # (L, modes)
        coef = rng.standard_normal((modes, dim), dtype=dtype) * (motion / np.arange(1, modes + 1)[:, None]).astype(dtype)
        xv += basis @ coef
        if L >= 10 and rng.random() < 0.5:
            margin = max(1, L // 10)
            seg = int(rng.integers(max(1, L // 10), max(2, L // 3)))
            lo = int(rng.integers(margin, max(margin + 1, L - margin - seg)))
            xv[lo:min(lo + seg, L - margin)] += anomaly * directions[rng.integers(num_anomalies)]
        np.abs(xv, out=xv)
        xv += 1e-3
    return x, offsets


@functools.lru_cache(maxsize=4)
def ucf32(num_videos: int = 1610, dim: int = 2048, seed: int = 0):
    return make_packed(np.full(num_videos, 32), dim, seed)


@functools.lru_cache(maxsize=2)
def ucf_full(dim: int = 2048, seed: int = 1, max_videos: int | None = None):
    lengths = ucf_lengths()
    if max_videos is not None:
        lengths = lengths[:max_videos]
    return make_packed(lengths, dim, seed)


def uniform(num_videos: int, length: int, dim: int, seed: int = 2):
    return make_packed(np.full(num_videos, length), dim, seed)
