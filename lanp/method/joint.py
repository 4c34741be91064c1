"""The joint graph (issue 15, item 4): one propagation over every video, linked through the seeds.

The paper propagates inside each video. Here the temporal graph of every video and edges from each
snippet to its k most similar seed snippets of *other* videos form one graph over all N snippets,

    W = B + (E + E') / 2,    (I - alpha D^-1/2 W D^-1/2) z = y,    y = 1 at every video's seeds,

solved once by sparse CG (:func:`lanp.kernels.solve_csr`, CSR from :func:`lanp.kernels.cpu.csr.joint_csr`):

- B, the in-video part, sparse: each video's normalised graph S_v = D_v^-1/2 W_v D_v^-1/2 of the
  paper's affinity (the options' sigma, distance, temporal term) on a window of ``window`` temporal
  neighbours each side (:func:`lanp.kernels.similarity`), so every video brings the same weight
  whatever its length;
- E, the cross-video part: snippet i -> its ``neighbours`` nearest anchors a of other videos
  (the cross-video recipe's search, exact values), weight
  ``cross_weight * exp(-(1 - cos(x_i, a)) / sigma^2) / (2 window)``: the paper's affinity of unit
  rows, exp(-||u_i - u_a||^2 / 2 sigma^2), scaled to about one band entry.

A snippet reached by normal snippets of other videos through their seeds gets normality from them;
one unlike anything elsewhere gets it from its own video's temporal neighbours only. z is then
comparable across videos and the rest is the cross-video recipe's (video score ``low-tail``, the
N_nor lowest normal, r = 0.2).

Memory and runners: the system couples all videos, so it is built and solved on the chunk that
holds every video: the in-memory runner (:func:`lanp.label`, ``lanp compare``) or a feature file
whose features fit one read chunk (256 MiB by default). A chunk with fewer videos (a larger file, a
sharded run) is refused with an InputError before any propagation: the cross-video recipe, which
needs no joint solve, runs there. Memory: the CSR, about (2 window + 2 neighbours + 1) N entries of
16 bytes, plus the band (N, 2 window + 1) float64.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from lanp.kernels import InputError, similarity, solve_csr
from lanp.kernels.cpu.csr import joint_csr
from lanp.kernels.results import Propagation
from lanp.method.crossvideo import CrossVideoRecipe, CrossVideoSettings, seed_rows
from lanp.method.options import PropagateConfig


@dataclass(frozen=True)
class JointSettings(CrossVideoSettings):
    """The joint graph's constants on top of the cross-video ones (its search, score and r)."""

    neighbours: int = 3           # anchor edges per snippet
    window: int = 5               # temporal neighbours each side in the in-video band
    cross_weight: float = 1.0     # an anchor edge in band entries (1: about one temporal neighbour)

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.window, bool) or not isinstance(self.window, (int, np.integer)) or self.window < 1:
            raise ValueError(f"window={self.window!r} is invalid: it must be an integer >= 1 (the joint graph's "
                             f"in-video band must be sparse)")
        if not (isinstance(self.cross_weight, (int, float)) and np.isfinite(self.cross_weight)
                and self.cross_weight >= 0):
            raise ValueError(f"cross_weight={self.cross_weight!r} is invalid: it must be a finite number >= 0")

    def attrs(self) -> dict:
        return {f"joint_{k}": v for k, v in asdict(self).items()}


class JointGraphRecipe(CrossVideoRecipe):
    """The joint-graph recipe (see the module docstring)."""

    name = "joint-graph"

    def __init__(self, config: Optional[PropagateConfig] = None, settings: Optional[JointSettings] = None):
        super().__init__(config, settings or JointSettings())

    def check(self, lengths, video_ids, where) -> None:
        """Seeds in range; the graph is the sparse band (no dense per-video graph to refuse)."""
        from lanp.kernels import resolve_seeds
        resolve_seeds(self.config.seeds, lengths, video_ids, where)

    def _require_every_video(self, offsets, first_video, where) -> None:
        total = int(self.anchor_video.max()) + 1 if self.anchor_video.size else 0
        have = offsets.shape[0] - 1
        if first_video != 0 or have != total:
            raise InputError(
                f"{where}: the joint-graph recipe solves one system over all {total} videos, but this runner gives "
                f"it videos {first_video}..{first_video + have - 1} at a time (a file larger than one read chunk, "
                f"or a sharded run): run it in memory (lanp.label, lanp compare), or use --preset cross-video")

    def normality(self, x, offsets, video_ids, where, first_video):
        if self.anchors is None:
            raise RuntimeError("the joint-graph recipe needs its anchors: run it through a runner (lanp.label, "
                               "lanp.runners), which gathers them first")
        self._require_every_video(offsets, first_video, where)
        s, c = self.settings, self.config
        N = int(offsets[-1])
        band = similarity(x, offsets, sigma=c.sigma, distance=c.distance, normalize=c.normalize == "l2",
                          window=s.window, temporal_scale=c.temporal_scale, terms=c.terms, dtype=c.dtype,
                          backend=c.backend, video_ids=video_ids, where=where).values
        found = self.nearest(x, offsets, s.neighbours, video_ids, where, first_video)
        rows = seed_rows(c.seeds, offsets)                        # the anchors' rows, in anchor order
        keep = found.index.ravel() >= 0
        src = np.repeat(np.arange(N), found.index.shape[1])[keep]
        dst = rows[found.index.ravel()[keep]]
        weight = s.cross_weight * np.exp(-(1.0 - found.similarity.ravel()[keep]) / c.sigma ** 2) / (2 * s.window)
        indptr, indices, data = joint_csr(np.asarray(band), offsets, s.window, src, dst, weight)
        del band
        y = np.zeros(N)
        y[rows] = 1.0
        r = solve_csr(indptr, indices, data, y, alpha=c.alpha, tol=c.tol, maxiter=c.maxiter, backend=c.backend,
                      warn=False, where=where)
        V = offsets.shape[0] - 1
        z = np.asarray(r.z, dtype=np.float64)
        return Propagation(z=z, iterations=np.full(V, r.iterations, np.int32), residual=np.full(V, r.residual),
                           converged=np.full(V, bool(r.converged)), backend=f"{c.backend}+joint-csr")
