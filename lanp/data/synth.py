"""Seeded synthetic UVAD data in lanp's packed layout, with frame-level ground truth.

A "world" (seeded by ``world_seed``) holds a few scene centres and a few anomaly directions; each
video (seeded by ``seed``) picks a scene, drifts smoothly around it, and abnormal videos carry one
or two interior anomaly segments that never touch the first or last 10 % of the video. So the
normality prior holds, anomalies are temporally consistent, and a train and a test set drawn from
one world with different seeds share scenes and anomaly types.

This is the ``easy`` world of :mod:`lanp.data.worlds` (kept bit for bit): so easy that the distance to
a video's ends finds its anomalies. The other worlds there are calibrated on real I3D features.
"""
from __future__ import annotations

from dataclasses import dataclass

from typing import Optional

import numpy as np

FRAMES_PER_SNIPPET = 16


@dataclass
class SyntheticDataset:
    features: np.ndarray        # (N, D) float32
    offsets: np.ndarray         # (V+1,) int64
    video_ids: list             # V str
    snippet_labels: np.ndarray  # (N,) uint8, 1 inside anomalies
    video_labels: np.ndarray    # (V,) uint8

    def frame_labels(self, frames_per_snippet: int = FRAMES_PER_SNIPPET):
        """(frame_labels (N*fps,), frame_offsets (V+1,)): every snippet label repeated per frame."""
        return (np.repeat(self.snippet_labels, frames_per_snippet),
                self.offsets * frames_per_snippet)


def make_synthetic(num_videos: int = 120, dim: int = 64, min_length: int = 24, max_length: int = 160,
                   abnormal_fraction: float = 0.4, num_scenes: int = 6, num_anomaly_types: int = 4,
                   drift: float = 0.25, noise: float = 0.08, anomaly_strength: float = 1.2,
                   seed: int = 0, world_seed: int = 0, prefix: str = "video") -> SyntheticDataset:
    """Generate the dataset (features are non-negative-free, smooth in time, never zero)."""
    if num_videos < 1 or dim < 2 or not 1 <= min_length <= max_length:
        raise ValueError(f"need num_videos >= 1, dim >= 2 and 1 <= min_length <= max_length, got "
                         f"{num_videos}, {dim}, {min_length}, {max_length}")
    world = np.random.default_rng(world_seed)
    scenes = world.normal(size=(num_scenes, dim))
    scenes /= np.linalg.norm(scenes, axis=1, keepdims=True)
    anomalies = world.normal(size=(num_anomaly_types, dim))
    anomalies /= np.linalg.norm(anomalies, axis=1, keepdims=True)

    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_length, max_length + 1, size=num_videos)
    abnormal = rng.random(num_videos) < abnormal_fraction
    features, labels = [], []
    for v in range(num_videos):
        L = int(lengths[v])
        steps = rng.normal(size=(L, dim)) * (drift / np.sqrt(max(L, 1)))
        walk = np.cumsum(steps, axis=0)
        x = scenes[rng.integers(num_scenes)] + walk + noise * rng.normal(size=(L, dim)) / np.sqrt(dim)
        y = np.zeros(L, dtype=np.uint8)
        if abnormal[v] and L >= 10:
            margin = max(1, int(np.ceil(0.1 * L)))
            for _ in range(rng.integers(1, 3)):
                seg = int(rng.integers(max(1, L // 10), max(2, L // 4) + 1))
                lo = int(rng.integers(margin, max(margin + 1, L - margin - seg + 1)))
                hi = min(lo + seg, L - margin)
                direction = anomalies[rng.integers(num_anomaly_types)]
                ramp = np.ones(hi - lo)
                x[lo:hi] += anomaly_strength * ramp[:, None] * direction
                y[lo:hi] = 1
        else:
            abnormal[v] = False
        features.append(x.astype(np.float32))
        labels.append(y)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return SyntheticDataset(
        features=np.concatenate(features), offsets=offsets,
        video_ids=[f"{prefix}_{v:04d}" for v in range(num_videos)],
        snippet_labels=np.concatenate(labels), video_labels=abnormal.astype(np.uint8))


def write_synthetic(data: SyntheticDataset, features_path, gt_path=None,
                    frames_per_snippet: int = FRAMES_PER_SNIPPET, attrs: Optional[dict] = None) -> None:
    """Features in the packed layout; ground truth as lanp's packed gt.h5 (frame and snippet labels).
    ``attrs`` are added to both files' attributes (e.g. the command's resolved configuration)."""
    from lanp.data.io import write_h5
    write_h5(features_path, {"features": data.features, "offsets": data.offsets,
                             "video_ids": data.video_ids},
             {"generator": "lanp.data.synth", "frames_per_snippet": frames_per_snippet, **(attrs or {})})
    if gt_path is not None:
        frames, frame_offsets = data.frame_labels(frames_per_snippet)
        write_h5(gt_path, {"frame_labels": frames, "frame_offsets": frame_offsets,
                           "snippet_labels": data.snippet_labels, "offsets": data.offsets,
                           "video_ids": data.video_ids, "video_labels": data.video_labels},
                 {"frames_per_snippet": frames_per_snippet, **(attrs or {})})
