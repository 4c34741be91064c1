"""The in-memory runner: any recipe over packed arrays or a list of per-video arrays."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from lanp.kernels import InputError, check_packed
from lanp.method.recipe import Recipe
from lanp.method.results import Labels
from lanp.runners import passes


class ArraySource:
    """Packed features in memory with the reading interface of :class:`lanp.data.io.FeatureFile`.

    features: (N, D) or (N, C, D) (C crops, averaged in float64 when read, as from a file);
    offsets: (V+1,) int64; video_ids: V names (default video_000000, ...).
    """

    def __init__(self, features, offsets, video_ids: Optional[Sequence[str]] = None, path: str = "features"):
        self.features = np.asarray(features)
        if self.features.ndim not in (2, 3):
            raise InputError(f"{path}: features must be (N, D) or (N, C, D), got shape {self.features.shape}")
        self.offsets = np.asarray(offsets, dtype=np.int64)
        V = self.offsets.shape[0] - 1
        self.video_ids = list(video_ids) if video_ids is not None else [f"video_{v:06d}" for v in range(V)]
        self.path = path
        check_packed(_Rows(self.features), self.offsets, self.video_ids, where=path)
        self.lengths = np.diff(self.offsets)

    @classmethod
    def from_videos(cls, videos: Sequence, video_ids=None, path: str = "features") -> "ArraySource":
        """One (L, D) or (L, C, D) array per video, packed in order."""
        videos = [np.asarray(v) for v in videos]
        if not videos:
            raise InputError(f"{path}: no videos given")
        shapes = {v.shape[1:] for v in videos}
        if len(shapes) != 1 or videos[0].ndim not in (2, 3):
            raise InputError(f"{path}: every video must be (L, D) or (L, C, D) with one D (and C), "
                             f"got shapes {sorted(str(v.shape) for v in videos)[:4]}")
        offsets = np.concatenate([[0], np.cumsum([v.shape[0] for v in videos])]).astype(np.int64)
        return cls(np.concatenate(videos, axis=0), offsets, video_ids, path)

    @property
    def num_videos(self) -> int:
        return self.offsets.shape[0] - 1

    @property
    def num_snippets(self) -> int:
        return int(self.offsets[-1])

    def chunks(self, max_bytes=None, itemsize=4):
        yield 0, self.num_videos                      # everything is in memory already

    def read(self, v0: int, v1: int, dtype=np.float32, reuse: bool = False):
        a, b = int(self.offsets[v0]), int(self.offsets[v1])
        raw = self.features[a:b]
        x = raw.mean(axis=1, dtype=np.float64).astype(dtype, copy=False) if raw.ndim == 3 else raw
        return np.ascontiguousarray(x, dtype=dtype), self.offsets[v0:v1 + 1] - self.offsets[v0]


class _Rows:
    def __init__(self, features):
        self.shape = (features.shape[0], features.shape[-1])
        self.ndim = 2


def label_arrays(recipe: Recipe, features, offsets, video_ids=None, where: str = "features") -> Labels:
    """Labels of ``recipe`` for packed in-memory features (N, D) or (N, C, D) and offsets (V+1,)."""
    return passes.run(recipe, ArraySource(features, offsets, video_ids, where))
