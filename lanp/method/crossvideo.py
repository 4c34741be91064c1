"""Normality across videos (issue 15): the normality prior of every video, used by all the others.

The paper propagates inside each video only. Normal patterns recur across videos and anomalies
rarely do, so the seed snippets of every video (first and last: normal by the prior) form an anchor
set A of 2V rows, and a snippet is as normal as it is similar to the anchors of *other* videos:

    n_i = max over anchors a of other videos of cos(x_i, a)          (its normality, in [-1, 1])

(:func:`lanp.kernels.anchor_neighbours`, exact search: O(N 2V D), seconds on the UCF-Crime
training lengths). n is comparable across videos, so the rest of the recipe is dataset-level:

- video score ``low-tail``: 1 - q10 of n over the video (a tenth of the video unlike anything
  normal elsewhere makes it abnormal; one odd snippet does not);
- split: the N_nor lowest-score videos normal (``normal_split`` count | otsu | gmm);
- pseudo-labels: in each abnormal video the floor(r L) least normal snippets, r = 0.2 (the paper's
  0.4 labels many normal snippets of short anomalies);
- normal list and weights as the paper's (mean features, w = exp(-|d - y_hat|)).

The in-video propagation still runs (its CG iterations and residuals are what the labels file
reports), but the labels come from n. The anchors are gathered in a context pass
before the first pass (:meth:`context_rows`), so every runner — in memory, one file, sharded —
computes the same n.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from typing import Optional

import numpy as np

from lanp.kernels import anchor_neighbours, pack_seeds
from lanp.method.options import PropagateConfig
from lanp.method.recipe import Recipe


@dataclass(frozen=True)
class CrossVideoSettings:
    """The constants of the cross-video recipe."""

    neighbours: int = 1           # n_i = the k-th largest similarity (k = 1: the nearest anchor)
    abnormal_ratio: float = 0.2   # floor(r L) least normal snippets of an abnormal video
    video_score: str = "low-tail"

    def attrs(self) -> dict:
        return {f"crossvideo_{k}": v for k, v in asdict(self).items()}


class CrossVideoRecipe(Recipe):
    """The cross-video recipe (see the module docstring). Needs the context pass: the runners
    call :meth:`context_rows` on every chunk, then :meth:`with_context` with the joined rows."""

    name = "cross-video"
    needs_context = True

    def __init__(self, config: Optional[PropagateConfig] = None, settings: Optional[CrossVideoSettings] = None):
        config = config or PropagateConfig()
        self.settings = settings or CrossVideoSettings()
        super().__init__(replace(config, video_score=self.settings.video_score))
        self.anchors: Optional[np.ndarray] = None
        self.anchor_video: Optional[np.ndarray] = None

    # -- context: the anchors -------------------------------------------------------------
    def context_rows(self, x: np.ndarray, offsets: np.ndarray, first_video: int):
        """(rows (m, D) float64, global video (m,)) of the anchors in this chunk: each video's
        distinct seed snippets, in order."""
        positions, seed_offsets = pack_seeds(self.config.seeds, np.diff(offsets))
        video = np.repeat(np.arange(offsets.shape[0] - 1), np.diff(seed_offsets))
        video, local = np.unique(np.stack([video, positions], axis=1), axis=0).T   # distinct, by video
        return np.asarray(x[offsets[video] + local], dtype=np.float64), video + first_video

    def with_context(self, rows: np.ndarray, videos: np.ndarray) -> "CrossVideoRecipe":
        out = CrossVideoRecipe(self.config, self.settings)
        out.anchors, out.anchor_video = np.ascontiguousarray(rows), np.asarray(videos, dtype=np.int64)
        return out

    def _context_digest(self) -> str:
        if self.anchors is None:
            return "none"
        h = hashlib.sha256(self.anchors.tobytes())
        h.update(self.anchor_video.tobytes())
        return h.hexdigest()[:32]

    # -- identity -------------------------------------------------------------------------
    def pass1_key(self) -> dict:
        return {**super().pass1_key(), "recipe": self.name, "settings": asdict(self.settings),
                "anchors": self._context_digest()}

    def run_key(self) -> dict:
        return {**super().run_key(), "recipe": self.name, "settings": asdict(self.settings),
                "anchors": self._context_digest()}

    def attrs(self) -> dict:
        return {**super().attrs(), "preset": self.name, **self.settings.attrs()}

    @property
    def abnormal_ratio(self) -> float:
        return self.settings.abnormal_ratio

    # -- pass 1 ---------------------------------------------------------------------------
    def normality(self, x, offsets, video_ids, where, first_video):
        if self.anchors is None:
            raise RuntimeError("the cross-video recipe needs its anchors: run it through a runner "
                               "(lanp.label, lanp.runners), which gathers them first")
        inside = super().normality(x, offsets, video_ids, where, first_video)
        nb = anchor_neighbours(x, offsets, self.anchors, self.anchor_video, k=self.settings.neighbours,
                               first_video=first_video, backend=self.config.backend, video_ids=video_ids,
                               where=where)
        n = nb.similarity[:, -1]
        n = np.where(np.isfinite(n), n, -1.0)                        # no eligible anchor: least normal
        return replace(inside, z=n, backend=f"{inside.backend}+anchors")
