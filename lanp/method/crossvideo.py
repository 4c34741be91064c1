"""Normality across videos (issue 15): the normality prior of every video, used by all the others.

The paper propagates inside each video only. Normal patterns recur across videos and anomalies
rarely do, so the seed snippets of every video (first and last: normal by the prior) form an anchor
set A of 2V rows, and a snippet is as normal as it is similar to the anchors of *other* videos:

    n_i = max over anchors a of other videos of cos(x_i, a)          (its normality, in [-1, 1])

(:mod:`lanp.method.anchor_search`: by default candidates from a 64-dimensional PCA projection of the
anchors, the best 16 re-scored exactly; ``anchor_search="exact"``: :func:`lanp.kernels.anchor_neighbours`
in full D, O(N 2V D)). n is comparable across videos, so the rest of the recipe is dataset-level:

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

from lanp.kernels import pack_seeds
from lanp.method.anchor_search import check_search, exact_search, prepare
from lanp.method.options import PropagateConfig
from lanp.method.recipe import Recipe


def seed_places(seeds, offsets: np.ndarray):
    """(video (m,), position in the video (m,)) of every video's distinct seed snippets, in order:
    the anchors of the cross-video recipes."""
    positions, seed_offsets = pack_seeds(seeds, np.diff(offsets))
    video = np.repeat(np.arange(offsets.shape[0] - 1), np.diff(seed_offsets))
    video, local = np.unique(np.stack([video, positions], axis=1), axis=0).T   # distinct, by video
    return video, local


def seed_rows(seeds, offsets: np.ndarray) -> np.ndarray:
    """(m,) the packed rows of the anchors (:func:`seed_places`), in anchor order."""
    video, local = seed_places(seeds, offsets)
    return np.asarray(offsets[video] + local, dtype=np.int64)


@dataclass(frozen=True)
class CrossVideoSettings:
    """The constants of the cross-video recipe. The anchor search (:mod:`lanp.method.anchor_search`):
    ``projected`` (default: candidates by a d = ``search_dims`` projection, the best
    ``search_candidates`` re-scored exactly in full D; every similarity exact, only the choice can
    miss: recall and time in bench/RESULTS.md) or ``exact`` (:func:`lanp.kernels.anchor_neighbours`
    in full D)."""

    neighbours: int = 1           # n_i = the k-th largest similarity (k = 1: the nearest anchor)
    abnormal_ratio: float = 0.2   # floor(r L) least normal snippets of an abnormal video
    video_score: str = "low-tail"
    anchor_search: str = "projected"
    search_dims: int = 64
    search_candidates: int = 16
    search_projection: str = "pca"
    search_seed: int = 0          # of the random projection

    def __post_init__(self):
        check_search(self.anchor_search, self.search_dims, self.search_candidates, self.search_projection,
                     self.neighbours)

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
        self.search = None                      # the prepared projected search (None: exact)

    # -- context: the anchors -------------------------------------------------------------
    def context_rows(self, x: np.ndarray, offsets: np.ndarray, first_video: int):
        """(rows (m, D) float64, global video (m,)) of the anchors in this chunk: each video's
        distinct seed snippets, in order."""
        video, local = seed_places(self.config.seeds, offsets)
        return np.asarray(x[offsets[video] + local], dtype=np.float64), video + first_video

    def fresh(self) -> "CrossVideoRecipe":
        """A copy of the recipe without its context (subclasses with more settings override it)."""
        return type(self)(self.config, self.settings)

    def with_context(self, rows: np.ndarray, videos: np.ndarray) -> "CrossVideoRecipe":
        out = self.fresh()
        out.anchors, out.anchor_video = np.ascontiguousarray(rows), np.asarray(videos, dtype=np.int64)
        s = self.settings
        out.search = prepare(out.anchors, out.anchor_video, s.anchor_search, s.search_dims, s.search_candidates,
                             s.search_projection, s.search_seed)
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
        n = self.anchor_similarity(x, offsets, video_ids, where, first_video)[:, -1]
        n = np.where(np.isfinite(n), n, -1.0)                        # no eligible anchor: least normal
        return replace(inside, z=n, backend=f"{inside.backend}+anchors")

    def anchor_similarity(self, x, offsets, video_ids, where, first_video) -> np.ndarray:
        """(n, k) float64: each row's k largest cosines to anchors of other videos (exact values;
        with the projected search the choice of anchor may miss, see lanp.method.anchor_search)."""
        return self.nearest(x, offsets, self.settings.neighbours, video_ids, where, first_video).similarity

    def nearest(self, x, offsets, k, video_ids, where, first_video):
        """The k nearest anchors of other videos of every row (:class:`lanp.method.anchor_search.Found`),
        by the settings' search."""
        backend = self.config.backend
        if self.search is None:
            return exact_search(x, offsets, self.anchors, self.anchor_video, k, first_video, backend, video_ids, where)
        return self.search.search(x, offsets, k, first_video, backend, video_ids, where, dtype=self.config.dtype)
