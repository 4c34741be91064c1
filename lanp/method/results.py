"""The result types of the method layer, at the bottom of its import graph.

A run has three steps, and each has one type:

- :class:`FirstPass`: the per-video first pass over some whole videos (a chunk, a shard or the
  dataset): normal magnitudes z, CG results, the per-video statistics the global step needs, and
  each video's candidate row for the normal list;
- :class:`Decision`: the global step on those small per-video arrays: video scores, the
  normal/abnormal split, the normal list M;
- :class:`Labels`: the finished labels of a dataset (what a labels file holds).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np


@dataclass
class FirstPass:
    """Pass 1 over V whole videos with N snippets in all.

    z:          (N,) normal magnitudes (None in a summary that travels without them).
    lengths:    (V,) int64 snippets per video.
    iterations: (V,) int32; residual (V,) float64; converged (V,) bool: per-video CG results.
    stats:      name -> (V,) or (V, k) per-video statistics (video-score inputs, prior violations).
    rows:       (V, D) float64 candidate row of each video for the normal list (e.g. its mean feature).
    backend:    what ran the propagation; kernel_seconds: time spent in it.
    """

    z: Optional[np.ndarray]
    lengths: np.ndarray
    iterations: np.ndarray
    residual: np.ndarray
    converged: np.ndarray
    stats: Dict[str, np.ndarray]
    rows: np.ndarray
    backend: str
    kernel_seconds: float = 0.0

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)

    def summary(self) -> "FirstPass":
        """The same pass without z (what a shard sends to the client)."""
        return FirstPass(None, self.lengths, self.iterations, self.residual, self.converged, self.stats,
                         self.rows, self.backend, self.kernel_seconds)

    def arrays(self) -> Dict[str, np.ndarray]:
        """Every array, flat (``stat_<name>`` for the statistics): the work-file layout."""
        out = {"lengths": self.lengths, "iterations": self.iterations, "residual": self.residual,
               "converged": self.converged, "rows": self.rows}
        if self.z is not None:
            out["z"] = self.z
        out.update({f"stat_{k}": v for k, v in self.stats.items()})
        return out

    @classmethod
    def from_arrays(cls, arrays: Dict[str, np.ndarray], backend: str, kernel_seconds: float) -> "FirstPass":
        stats = {k[len("stat_"):]: v for k, v in arrays.items() if k.startswith("stat_")}
        return cls(arrays.get("z"), arrays["lengths"], arrays["iterations"], arrays["residual"],
                   arrays["converged"], stats, arrays["rows"], backend, kernel_seconds)

    @classmethod
    def concat(cls, parts: Sequence["FirstPass"]) -> "FirstPass":
        """Passes over consecutive videos, joined in order (z only where every part has it)."""
        parts = list(parts)
        z = None if any(p.z is None for p in parts) else np.concatenate([p.z for p in parts])
        return cls(z, np.concatenate([p.lengths for p in parts]),
                   np.concatenate([p.iterations for p in parts]), np.concatenate([p.residual for p in parts]),
                   np.concatenate([p.converged for p in parts]),
                   {k: np.concatenate([p.stats[k] for p in parts]) for k in parts[0].stats},
                   np.concatenate([p.rows for p in parts]),
                   ",".join(dict.fromkeys(p.backend for p in parts)),
                   sum(p.kernel_seconds for p in parts))


@dataclass
class Decision:
    """The global step over V videos.

    video_score: (V,) float64; video_abnormal: (V,) bool; normal_list: (k,) video indices, in the
    list's order; means: (k, D) float64, the normal list M; attrs: labels-file attributes.
    """

    video_score: np.ndarray
    video_abnormal: np.ndarray
    normal_list: np.ndarray
    means: np.ndarray
    attrs: dict = field(default_factory=dict)


@dataclass
class Labels:
    """Labels of a dataset of V videos, N snippets (the datasets of a labels file).

    normality (N,) z as float32 (or float64 where a recipe keeps it); pseudo_label (N,) uint8;
    weight (N,) float32; video_score (V,) float32; video_abnormal (V,) bool; cg_iterations (V,)
    int32; cg_residual (V,) float32; cg_converged (V,) bool; offsets (V+1,); video_ids (V,).
    extra: datasets a recipe adds, by name; few-shot runs (:mod:`lanp.method.fewshot`) add
    abnormality (N,) float32 in [0, 1], label_source (N,) uint8 (0 pseudo, 1 human) and
    video_human (V,) int8 (-1 unlabelled, 0 human normal, 1 human abnormal).
    """

    video_ids: List[str]
    offsets: np.ndarray
    normality: np.ndarray
    pseudo_label: np.ndarray
    weight: np.ndarray
    video_score: np.ndarray
    video_abnormal: np.ndarray
    cg_iterations: np.ndarray
    cg_residual: np.ndarray
    cg_converged: np.ndarray
    backend: str
    seconds: float = 0.0
    kernel_seconds: float = 0.0
    attrs: dict = field(default_factory=dict)
    extra: Dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def abnormality(self) -> Optional[np.ndarray]:
        return self.extra.get("abnormality")

    @property
    def label_source(self) -> Optional[np.ndarray]:
        return self.extra.get("label_source")

    @property
    def video_human(self) -> Optional[np.ndarray]:
        return self.extra.get("video_human")

    def by_video(self, name: str) -> Dict[str, np.ndarray]:
        """A per-snippet dataset ('normality', 'pseudo_label', 'weight' or one of ``extra``) split by video id."""
        values = self.extra[name] if name in self.extra else getattr(self, name)
        return {vid: values[self.offsets[v]:self.offsets[v + 1]] for v, vid in enumerate(self.video_ids)}
