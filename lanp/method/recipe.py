"""The method as a recipe: the base class holds the whole procedure, variants override one step.

A run over V videos has three steps; every runner (:mod:`lanp.runners`) calls them in this order
and never branches on which recipe it drives:

1. :meth:`Recipe.first_pass` on consecutive whole videos (a chunk, a shard or everything):
   normality z (:meth:`Recipe.normality`), the per-video statistics of the video score
   (:mod:`lanp.method.video_scores`) and of the diagnostics, and each video's candidate row for
   the normal list (:meth:`Recipe.candidate_rows`). Nothing in it depends on the other videos.
2. :meth:`Recipe.decide` on the joined per-video arrays of the whole dataset: video scores, the
   normal/abnormal split (:meth:`Recipe.split`), the normal list M (:meth:`Recipe.normal_list`).
3. :meth:`Recipe.second_pass` on the same chunks: pseudo-labels (:meth:`Recipe.pseudo_labels`) and
   loss weights (:meth:`Recipe.weights`).

:class:`Recipe` itself is the paper (section 3): z = (I - alpha S)^-1 y by lanp.kernels with the
options of :class:`lanp.method.options.PropagateConfig`; score std(z) (or another registered
score); the N_nor lowest-score videos normal; in each abnormal video the floor(r L) lowest-z
snippets pseudo-abnormal; M = the mean features of the max(1, floor(h N_nor)) lowest-score normal
videos; w = exp(-|d - y_hat|), d = min over M of 1 - cos.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from typing import Optional, Tuple

import numpy as np

from lanp.kernels import (InputError, check_dtype, check_graph_memory, propagate, resolve_seeds,
                          video_name, warn_unconverged)
from lanp.method import diagnostics
from lanp.method import labels as L
from lanp.method import video_scores
from lanp.method.options import PropagateConfig
from lanp.method.results import Decision, FirstPass
from lanp.method.splits import n_normal_from_scores

PRIOR_VIOLATION = "prior_violation"


class Recipe:
    """The paper's recipe (see the module docstring); subclasses override single steps.

    Class attributes: ``name`` (what the labels file's backend and attributes call it) and
    ``z_dtype`` (the dtype z is kept in between the passes).
    """

    name = "paper"
    z_dtype = np.float32
    needs_context = False          # True: the runners gather context_rows from every video first

    def __init__(self, config: Optional[PropagateConfig] = None):
        self.config = config or PropagateConfig()
        self.score = video_scores.get(self.config.video_score)

    # -- identity ------------------------------------------------------------------------
    def pass1_key(self) -> dict:
        """Everything that changes the first pass (the sharded runner's work-file key)."""
        c = self.config
        return {"recipe": self.name, "alpha": c.alpha, "sigma": c.sigma, "distance": c.distance,
                "normalize": c.normalize, "window": c.window, "temporal_scale": c.temporal_scale,
                "terms": c.terms, "seeds": list(c.seeds), "tol": c.tol, "maxiter": c.maxiter,
                "backend": c.backend, "dtype": c.dtype, "video_score": c.video_score,
                "abnormal_ratio": self.abnormal_ratio}

    def run_key(self) -> dict:
        """Every option (equal run keys and inputs mean equal outputs)."""
        return {"recipe": self.name, **asdict(self.config)}

    def attrs(self) -> dict:
        """The options as labels-file attributes."""
        return self.config.attrs()

    @property
    def abnormal_ratio(self) -> float:
        return self.config.abnormal_ratio

    def read_dtype(self) -> np.dtype:
        """The dtype the runners read features in."""
        return check_dtype(self.config.dtype)

    # -- checks before any work ----------------------------------------------------------
    def check(self, lengths: np.ndarray, video_ids, where: str) -> None:
        """Refuse videos the recipe cannot label (seeds out of range, a graph too large), before any work."""
        resolve_seeds(self.config.seeds, lengths, video_ids, where)
        check_graph_memory(lengths, self.config.window, video_ids, where)

    def check_dataset(self, num_videos: int) -> None:
        """Refuse a dataset the global step cannot split (e.g. N_nor > V)."""
        self.n_normal(num_videos)

    # -- context (recipes with needs_context) ----------------------------------------------
    def context_rows(self, x: np.ndarray, offsets: np.ndarray, first_video: int):
        """(rows (m, D), global video (m,)) this chunk contributes to the recipe's context."""
        raise NotImplementedError(f"recipe {self.name!r} needs no context")

    def with_context(self, rows: np.ndarray, videos: np.ndarray) -> "Recipe":
        """A copy of the recipe that holds the joined context rows of every video."""
        return self

    def n_normal(self, num_videos: int) -> int:
        return L.resolve_n_normal(num_videos, self.config.n_normal, self.config.normal_fraction)

    # -- pass 1 --------------------------------------------------------------------------
    def normality(self, x: np.ndarray, offsets: np.ndarray, video_ids, where: str, first_video: int):
        """z = (I - alpha S)^-1 y per video. Returns an object with z (n,), iterations, residual,
        converged (v,) and backend. ``first_video`` is the global index of video 0 of ``x``."""
        return propagate(x, offsets, video_ids=video_ids, where=where, warn=False, **self.config.kernel_kwargs())

    def check_rows(self, x: np.ndarray, offsets: np.ndarray, video_ids, where: str) -> None:
        """The loss weights need the cosine of every snippet: refuse all-zero feature vectors.

        Where this recipe's normality is the kernels' propagation on L2-normalised rows or the
        cosine distance, the kernels have refused them already (on every backend), so nothing
        is read again; otherwise each row is read up to its first nonzero value
        (:func:`lanp.kernels.cpu.rows.first_zero_row`)."""
        c = self.config
        if type(self).normality is Recipe.normality and (c.normalize == "l2" or c.distance == "cosine"):
            return
        from lanp.kernels.cpu.rows import first_zero_row
        row = int(first_zero_row(np.ascontiguousarray(x))) if x.ndim == 2 and x.shape[0] else -1
        if row >= 0:
            v = int(np.searchsorted(offsets, row, side="right")) - 1
            raise InputError(f"{where}: {video_name(video_ids, v)}, snippet {row - int(offsets[v])} is an "
                             f"all-zero feature vector: the cosine of the loss weights is undefined for it")

    def candidate_rows(self, x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """(v, D) float64: each video's mean feature (its row of M should it be listed). The sums
        are those of ``np.add.reduceat`` in float64, bit for bit, from one pass over whole rows
        (:func:`lanp.kernels.cpu.rows.video_sums`; numpy's own walks the columns: 25 s on the
        UCF-Crime training set)."""
        from lanp.kernels.cpu.rows import video_sums
        lengths = np.diff(offsets)
        return video_sums(x, offsets) / lengths[:, None]

    def video_stats(self, z: np.ndarray, offsets: np.ndarray) -> dict:
        """Per-video statistics of the global step: the video score's and the prior violations."""
        stats = dict(self.score.per_video(z, offsets))
        stats[PRIOR_VIOLATION] = diagnostics.prior_violations(z, offsets, self.abnormal_ratio)
        return stats

    def first_pass(self, x: np.ndarray, offsets: np.ndarray, video_ids, where: str,
                   first_video: int = 0) -> FirstPass:
        """Pass 1 over the whole videos of packed ``x`` (n, D) with local ``offsets`` (v+1,)."""
        t0 = time.perf_counter()
        r = self.normality(x, offsets, video_ids, where, first_video)
        seconds = time.perf_counter() - t0
        self.check_rows(x, offsets, video_ids, where)          # after the kernel's own checks
        z = np.asarray(r.z, dtype=self.z_dtype)
        return FirstPass(z, np.diff(offsets), np.asarray(r.iterations, np.int32), np.asarray(r.residual, np.float64),
                         np.asarray(r.converged, bool), self.video_stats(z, offsets),
                         self.candidate_rows(x, offsets), r.backend, seconds)

    # -- global step ---------------------------------------------------------------------
    def split(self, scores: np.ndarray) -> np.ndarray:
        """video_abnormal (V,): all but the N_nor lowest-score videos (N_nor by ``normal_split``)."""
        if self.config.normal_split == "count":
            return L.split_videos(scores, self.n_normal(scores.shape[0]))
        return L.split_videos(scores, n_normal_from_scores(scores, self.config.normal_split))

    def normal_list(self, scores: np.ndarray, abnormal: np.ndarray) -> np.ndarray:
        """Indices of the videos of M: the max(1, floor(h N_nor)) lowest-score normal videos."""
        return L.confident_normal_videos(scores, abnormal, self.config.confident_fraction)

    def split_attrs(self, abnormal: np.ndarray, listed: np.ndarray) -> dict:
        return {"n_normal": int((~abnormal).sum()), "confident_videos": len(listed)}

    def decide(self, first: FirstPass, video_ids, where: str) -> Decision:
        """The global step on the per-video arrays of the whole dataset."""
        scores, score_attrs = self.score.combine(first.stats, first.lengths)
        scores = np.asarray(scores, dtype=np.float64)
        abnormal = self.split(scores)
        listed = np.asarray(self.normal_list(scores, abnormal), dtype=np.int64)
        means = first.rows[listed]
        empty = np.flatnonzero(~np.any(means != 0, axis=1))
        if empty.size:
            raise InputError(f"{where}: the mean feature of confident normal "
                             f"{video_name(video_ids, int(listed[empty[0]]))} is zero: cosine undefined")
        attrs = {**self.split_attrs(abnormal, listed), **score_attrs,
                 **diagnostics.diagnose_from_summaries(first.lengths, scores, abnormal, first.iterations,
                                                       first.residual, first.stats[PRIOR_VIOLATION])}
        return Decision(scores, abnormal, listed, means, attrs)

    def warn(self, first: FirstPass, video_ids, where: str) -> None:
        """One ConvergenceWarning for the videos whose CG stopped above tol."""
        warn_unconverged(first.converged, first.residual, self.config.tol, self.config.maxiter, video_ids,
                         where, stacklevel=3)

    # -- pass 2 --------------------------------------------------------------------------
    def pseudo_labels(self, z: np.ndarray, offsets: np.ndarray, abnormal: np.ndarray) -> np.ndarray:
        return L.pseudo_labels(z, offsets, abnormal, self.abnormal_ratio)

    def weights(self, x: np.ndarray, pseudo: np.ndarray, means: np.ndarray) -> np.ndarray:
        """w = exp(-|d - y_hat|), d = min over M of 1 - cos (float32)."""
        return L.loss_weights(x, pseudo, means).astype(np.float32)

    def second_pass(self, x: np.ndarray, z: np.ndarray, offsets: np.ndarray, abnormal: np.ndarray,
                    decision: Decision) -> Tuple[np.ndarray, np.ndarray]:
        """(pseudo-labels (n,) uint8, weights (n,) float32) of the videos of ``x``; ``abnormal``
        is their slice of the decision's split."""
        pseudo = self.pseudo_labels(z, offsets, abnormal)
        return pseudo, self.weights(x, pseudo, decision.means)

    def outputs(self, first: FirstPass, decision: Optional[Decision] = None) -> dict:
        """The labels' ``normality`` (N,) float32 from the first pass, plus any datasets a variant
        adds (name -> array; the few-shot recipe's abnormality and label sources); ``decision``:
        the global step's, for variants whose outputs need it (the dual prior's dataset ranks)."""
        return {"normality": np.asarray(first.z, dtype=np.float32)}

