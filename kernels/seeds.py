"""Seed snippets: checked against every video's length and packed for the kernels.

y_v = 1 at the seeds of video v. ``seeds`` is one list of positions for every video, e.g. (0, -1),
or one list per video; negative positions count from the end of their video.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import InputError, video_name


def resolve_seeds(seeds: Sequence[int], lengths: np.ndarray, video_ids=None, where: str = "features") -> np.ndarray:
    """Check that every seed position exists in every video (-L <= s < L). Returns seeds as int64."""
    s = np.asarray(seeds, dtype=np.int64)
    need = max(int(s.max()) + 1, int(-s.min()) if s.min() < 0 else 0)
    short = np.flatnonzero(lengths < need)
    if short.size:
        v = int(short[0])
        raise InputError(f"{where}: seeds={list(seeds)} are out of range for {video_name(video_ids, v)} "
                         f"of length L = {int(lengths[v])} (needs L >= {need}); {short.size} such video(s)")
    return s


def is_uniform_seeds(seeds) -> bool:
    """True when ``seeds`` is one list of positions for every video (a sequence of integers);
    False when it holds one list per video (a sequence of integer sequences or arrays)."""
    if isinstance(seeds, np.ndarray):
        return seeds.ndim == 1
    items = list(seeds)
    return all(isinstance(s, (int, np.integer)) for s in items)


def pack_seeds(seeds, lengths: np.ndarray, video_ids=None, where: str = "features"):
    """The seed snippets of every video as packed arrays for the kernels.

    seeds: positions for all videos alike, e.g. (0, -1); or one sequence of positions per video
    (len(seeds) == V). Negative positions count from the end of their video.
    Returns (positions (M,) int64 with 0 <= positions < L_v, seed_offsets (V+1,) int64): video v's
    seeds are positions[seed_offsets[v]:seed_offsets[v+1]], at least one each.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    V = lengths.shape[0]
    if is_uniform_seeds(seeds):
        s = resolve_seeds(tuple(int(p) for p in seeds), lengths, video_ids, where)
        positions = s[None, :] + np.where(s < 0, lengths[:, None], 0)
        return positions.ravel(), np.arange(V + 1, dtype=np.int64) * s.shape[0]
    per_video = list(seeds)
    if len(per_video) != V:
        raise InputError(f"{where}: seeds has {len(per_video)} per-video lists for {V} videos")
    counts = np.empty(V, dtype=np.int64)
    packed = []
    for v, (own, L) in enumerate(zip(per_video, lengths)):
        arr = np.asarray(own)
        if arr.ndim != 1 or arr.size == 0:
            raise InputError(f"{where}: {video_name(video_ids, v)} has seeds={own!r}; give at least one "
                             f"snippet position (a 1-D list of integers)")
        if not (np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_):
            raise InputError(f"{where}: {video_name(video_ids, v)} has seeds={own!r}; positions must be "
                             f"integers (negative counts from the end)")
        arr = arr.astype(np.int64)
        bad = arr[(arr >= L) | (arr < -L)]
        if bad.size:
            raise InputError(f"{where}: {video_name(video_ids, v)} has seed position {int(bad[0])}, out of "
                             f"range for its length L = {int(L)} (allowed {-int(L)} .. {int(L) - 1})")
        packed.append(np.where(arr < 0, arr + L, arr))
        counts[v] = arr.size
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return np.concatenate(packed), offsets
