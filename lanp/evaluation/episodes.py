"""The episodic protocol of Anomaly Crossing (Sun et al. 2022) on snippet features: 2-way K-shot
video classification, query accuracy mean ± std over episodes (never a best episode).

An episode, drawn from the TEST split with ``default_rng([seed, e])``: K support and Q query
videos of each class (abnormal, normal), all distinct. Each video is one vector:

- ``embedding="features"``: the mean (``pooling="mean"``) or the element-wise max (``"max"``) of its
  snippet features, L2-normalised (``normalize=True``, the default, like the graph's features);
- ``embedding="score"``: a method's video score (``video_scores`` (V,), e.g. the max snippet score
  of the detector), a 1-d vector.

A query is classified by the nearest class prototype (the mean of the class's K support vectors,
squared Euclidean distance); a tie counts half. Episode accuracy = correct queries / 2Q. Anomaly
Crossing classifies trimmed clips with a learned backbone and a meta context module; here the
backbone is fixed, so the protocol measures how separable the videos are in a feature or score
space with K examples of each class, not that paper's model.

API::

    result = run_episodes(features, offsets, video_labels, shots=5, queries=5, episodes=200, seed=0)
    result["accuracy"]      # {"mean", "std"}; result["accuracies"] every episode's value
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from lanp.kernels import InputError

POOLINGS = ("mean", "max")


def video_vectors(features, offsets, pooling: str = "mean", normalize: bool = True) -> np.ndarray:
    """(V, D) float64: each video's mean or max over its snippets (rows L2-normalised with ``normalize``)."""
    if pooling not in POOLINGS:
        raise InputError(f"pooling={pooling!r} is invalid: choose mean or max")
    x = np.asarray(features, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    if (lengths <= 0).any():
        v = int(np.flatnonzero(lengths <= 0)[0])
        raise InputError(f"video {v} has no snippets: it has no vector to classify")
    starts = offsets[:-1]
    if pooling == "mean":
        out = np.add.reduceat(x, starts, axis=0) / lengths[:, None]
    else:
        out = np.maximum.reduceat(x, starts, axis=0)
    if normalize:
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.where(norm > 0, norm, 1.0)
    return out


def episode_accuracy(vectors: np.ndarray, labels: np.ndarray, support: np.ndarray, query: np.ndarray) -> float:
    """Share of ``query`` videos whose nearest prototype (mean of the ``support`` vectors of a class)
    has their class; a tie counts half."""
    proto = [vectors[support[labels[support] == c]].mean(axis=0) for c in (0, 1)]
    d = np.stack([np.sum((vectors[query] - p) ** 2, axis=1) for p in proto], axis=1)
    truth = labels[query]
    right = np.where(truth == 1, d[:, 1] < d[:, 0], d[:, 0] < d[:, 1]).astype(np.float64)
    right[d[:, 0] == d[:, 1]] = 0.5
    return float(right.mean())


def run_episodes(features=None, offsets=None, video_labels=None, *, shots: int = 5, queries: int = 5,
                 episodes: int = 100, seed: int = 0, pooling: str = "mean", normalize: bool = True,
                 video_scores: Optional[np.ndarray] = None) -> dict:
    """Query accuracy over ``episodes`` episodes (module docstring). Gives ``video_scores`` (V,) to
    classify by a method's video score instead of the pooled features (``features`` may then be None)."""
    for name, value, low in (("shots", shots, 1), ("queries", queries, 1), ("episodes", episodes, 1)):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise InputError(f"{name}={value!r} is invalid: it must be an integer >= {low}")
    y = (np.asarray(video_labels) > 0).astype(np.int8)
    if video_scores is not None:
        s = np.asarray(video_scores, dtype=np.float64)
        if s.shape != y.shape:
            raise InputError(f"video_scores has shape {s.shape} for {y.shape[0]} videos")
        if not np.isfinite(s).all():
            v = int(np.flatnonzero(~np.isfinite(s))[0])
            raise InputError(f"video_scores[{v}] = {s[v]}: every video score must be finite")
        vectors, embedding = s[:, None], "score"
    else:
        vectors, embedding = video_vectors(features, offsets, pooling, normalize), "features"
        if vectors.shape[0] != y.shape[0]:
            raise InputError(f"{vectors.shape[0]} videos in the features but {y.shape[0]} video labels")
    classes = [np.flatnonzero(y == c) for c in (0, 1)]
    need = int(shots) + int(queries)
    for c, members in zip(("normal", "abnormal"), classes):
        if members.size < need:
            raise InputError(f"the test split has {members.size} {c} videos: {shots} shots + {queries} queries "
                             f"per class need {need}")
    acc = []
    for e in range(int(episodes)):
        rng = np.random.default_rng([int(seed), e])
        picks = [rng.choice(members, size=need, replace=False) for members in classes]
        support = np.concatenate([p[:shots] for p in picks])
        query = np.concatenate([p[shots:] for p in picks])
        acc.append(episode_accuracy(vectors, y, support, query))
    a = np.asarray(acc)
    return {"protocol": "2-way K-shot video classification, nearest class prototype", "embedding": embedding,
            "pooling": pooling if embedding == "features" else None, "shots": int(shots), "queries": int(queries),
            "episodes": int(episodes), "seed": int(seed),
            "accuracy": {"mean": float(a.mean()), "std": float(a.std())}, "accuracies": [float(v) for v in a]}
