"""The tri prior (issue 15): the dual prior (:mod:`lanp.method.dualprior`) plus a third normality,
how hard a snippet is to isolate from the rest of the dataset.

Three normalities per snippet i of video v:

- zn_i, the paper's in-video propagation over its video's seeds (as the dual prior);
- n_i, the cosine to the nearest seed snippet of another video (as the dual prior);
- r_i, the isolation-forest anomaly score of x_i (Liu, Ting and Zhou 2008),
  r_i = 2^(-E[h(x_i)] / c(psi)) in (0, 1), E[h] the mean path length over ``trees`` random trees
  of psi = min(256, m) rows each, c(psi) the mean path length of an unsuccessful binary-search-tree
  search; large r = easily isolated = rare (scikit-learn's ``IsolationForest``, ``-score_samples``).

Each is ranked over every snippet of the dataset (F_z, F_n, F_r from per-video histograms, as the
dual prior does), and the abnormality is the mean of the three rank-abnormalities:

    a_i = 1 - (F_z(zn_i) + F_n(n_i) + 1 - F_r(r_i)) / 3             in [0, 1]

The top ``abnormal_share`` q of a are pseudo-abnormal, weights 1, no video split (the dual prior's
rule). The forest is fit on an evenly spaced sample of at most ``per_video`` snippets of every video
(``lanp.method.dualprior.sample_positions``; about 8V rows, 12,880 on the UCF-Crime training
lengths), gathered in the context pass together with the cross-video anchors, so every runner
(in memory, one file, sharded) fits the same forest (fixed ``forest_seed``, one job) and gives the
same labels. Why: the dual prior's two terms both measure normality against the prior's seed
snippets; the forest measures rarity against the whole dataset, which does not depend on the prior
holding (an isolation forest over the training snippets alone reached 0.80 test AUC on the held-back
real benchmark). In lanp's synthetic worlds the third term raised the hard-world mean test AUC of the
dual prior by about 3 points (docs/compare.md).
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from lanp.method.dualprior import Bins, DualPriorRecipe, DualPriorSettings, HistogramCdf, sample_rows, video_histograms
from lanp.method.options import PropagateConfig

MAX_FIT_ROWS = 1 << 20        # refuse to fit the forest on more rows than this (memory)
SAMPLE_MARK = 1 << 40         # context rows of the forest's sample carry video + SAMPLE_MARK (a sharded
                              # run shifts every video index by its shard's start, which keeps the mark)
SCORE_BLOCK = 8192            # at least this many rows per thread when scoring
R_BINS = Bins(hi=1.0)         # r in (0, 1], spread over the middle: equal bins


def fit_forest(sample: np.ndarray, trees: int, seed: int):
    """scikit-learn's ``IsolationForest`` of ``trees`` trees on the (m, D) ``sample`` (psi =
    min(256, m) rows per tree, random_state ``seed``, one job: the same sample gives the same forest)."""
    from sklearn.ensemble import IsolationForest

    sample = np.asarray(sample, dtype=np.float32)
    return IsolationForest(n_estimators=int(trees), max_samples=min(256, sample.shape[0]), random_state=int(seed),
                           n_jobs=1).fit(sample)


def forest_scores(forest, x: np.ndarray) -> np.ndarray:
    """``forest.score_samples(x)`` (n,), in row blocks on a thread pool (one thread per usable core).
    A row's score sums its path lengths over the trees in a fixed order and never looks at other
    rows, so the blocks give the sequential result bit for bit (scikit-learn's own n_jobs splits the
    trees instead, and sums them in whatever order the threads finish); the trees release the GIL."""
    threads = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
                  -(-x.shape[0] // SCORE_BLOCK))
    if threads <= 1:
        return forest.score_samples(x)
    starts = np.linspace(0, x.shape[0], threads + 1).astype(np.int64)
    with ThreadPoolExecutor(threads) as pool:
        parts = pool.map(lambda k: forest.score_samples(x[starts[k]:starts[k + 1]]), range(threads))
        return np.concatenate(list(parts))


@dataclass(frozen=True)
class TriPriorSettings:
    """The tri prior's constants: the dual prior's (``dual``), and the isolation forest's —
    ``per_video`` sampled snippets per video to fit on, ``trees`` trees, ``forest_seed``."""

    dual: DualPriorSettings = field(default_factory=DualPriorSettings)
    per_video: int = 8
    trees: int = 100
    forest_seed: int = 0

    def __post_init__(self):
        for name, lo, hi in (("per_video", 1, 1 << 16), ("trees", 1, 1 << 14), ("forest_seed", 0, 2 ** 32 - 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
                raise ValueError(f"{name}={value!r} is invalid: it must be an integer in [{lo}, {hi}]")

    def attrs(self) -> dict:
        return {**self.dual.attrs(), "tri_per_video": int(self.per_video), "tri_trees": int(self.trees),
                "tri_forest_seed": int(self.forest_seed)}


class TriPriorRecipe(DualPriorRecipe):
    """The tri prior (see the module docstring): the dual prior's recipe with the forest's column.
    z is (N, 3) [zn, n, r] (+ the human-label columns of the dual prior)."""

    name = "tri-prior"
    TERMS = 3
    TABLES = DualPriorRecipe.TABLES + (("dual_cdf_r", "dual_hist_r", R_BINS),)

    def __init__(self, config: Optional[PropagateConfig] = None, settings: Optional[TriPriorSettings] = None,
                 human=None, video_ids=(), lengths=None):
        self.tri = settings or TriPriorSettings()
        super().__init__(config, self.tri.dual, human, video_ids, lengths)
        self.forest = None

    def fresh(self) -> "TriPriorRecipe":
        return type(self)(self.config, self.tri, self.human, self.video_ids,
                          self.lengths if self.human is not None else None)

    # -- context: the anchors and the forest's sample ---------------------------------------
    def context_rows(self, x: np.ndarray, offsets: np.ndarray, first_video: int):
        """The cross-video anchors (global video v), then every video's evenly spaced sample of at
        most ``per_video`` snippets, marked by the video v + SAMPLE_MARK."""
        rows, videos = super().context_rows(x, offsets, first_video)
        picks = sample_rows(offsets, self.tri.per_video)
        owner = np.repeat(np.arange(offsets.shape[0] - 1, dtype=np.int64),
                          np.minimum(np.diff(offsets), self.tri.per_video))       # min(L_v, m) picks each
        return (np.concatenate([rows, np.asarray(x[picks], dtype=np.float64).reshape(picks.size, -1)]),
                np.concatenate([np.asarray(videos, np.int64), owner + first_video + SAMPLE_MARK]))

    def with_context(self, rows: np.ndarray, videos: np.ndarray) -> "TriPriorRecipe":
        videos = np.asarray(videos, dtype=np.int64)
        anchor = videos < SAMPLE_MARK
        out = super().with_context(np.asarray(rows)[anchor], videos[anchor])
        sample = np.asarray(rows)[~anchor]
        if sample.shape[0] > MAX_FIT_ROWS:
            raise ValueError(f"per_video={self.tri.per_video} gives {sample.shape[0]} rows to fit the isolation "
                             f"forest on, more than {MAX_FIT_ROWS}: lower per_video")
        out.forest_rows = int(sample.shape[0])
        if sample.shape[0]:
            out.forest = fit_forest(sample, self.tri.trees, self.tri.forest_seed)
        # the sample's digest, not its rows, identifies the context (the recipe travels to every shard's worker)
        out._sample_digest = hashlib.sha256(np.ascontiguousarray(sample).tobytes()).hexdigest()
        return out

    def _context_digest(self) -> str:
        h = hashlib.sha256(super()._context_digest().encode())
        h.update(getattr(self, "_sample_digest", "none").encode())
        return h.hexdigest()[:32]

    # -- identity -------------------------------------------------------------------------
    def pass1_key(self) -> dict:
        return {**super().pass1_key(), "recipe": self.name, "tri": asdict(self.tri)}

    def run_key(self) -> dict:
        return {**super().run_key(), "recipe": self.name, "tri": asdict(self.tri)}

    def attrs(self) -> dict:
        out = {**super().attrs(), **self.tri.attrs(), "recipe": self.name}
        if self.forest is not None:
            out["tri_forest_rows"] = self.forest_rows
        return out

    # -- pass 1 ---------------------------------------------------------------------------
    def extra_terms(self, x: np.ndarray) -> list:
        """[r]: the forest's anomaly score of every row (1 for none, when no video was sampled)."""
        if self.forest is None:
            raise RuntimeError("the tri-prior recipe needs its forest: run it through a runner "
                               "(lanp.label, lanp.runners), which fits it in the context pass")
        x = np.asarray(x, dtype=np.float32)
        return [-forest_scores(self.forest, x).astype(np.float64) if x.shape[0] else np.zeros(0)]

    def video_stats(self, z: np.ndarray, offsets: np.ndarray) -> dict:
        """The dual prior's statistics (its sample holds all three columns) and the histogram of r."""
        stats = super().video_stats(z, offsets)
        stats["dual_hist_r"] = video_histograms(z[:, 2], offsets, R_BINS, self.unlabelled(z).astype(np.int64))
        return stats

    # -- global step ----------------------------------------------------------------------
    def abnormality(self, z: np.ndarray, cdf_zn: HistogramCdf, cdf_u: HistogramCdf, cdf_r: HistogramCdf) -> np.ndarray:
        """a = 1 - (F_z(zn) + F_n(n) + 1 - F_r(r)) / 3 for rows (zn, n, r); F_n(n) = 1 - F_u(1 - n)."""
        z = np.asarray(z, np.float64)
        return 1.0 - (cdf_zn(z[:, 0]) + (1.0 - cdf_u(1.0 - z[:, 1])) + (1.0 - cdf_r(z[:, 2]))) / 3.0

    def outputs(self, first, decision=None) -> dict:
        out = super().outputs(first, decision)
        out["isolation_score"] = np.asarray(first.z)[:, 2].astype(np.float32)
        return out
