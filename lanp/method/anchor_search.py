"""Nearest anchors of other videos, exact or through a d-dimensional projection (issue 15, item 4).

The cross-video recipes need, for every snippet x_i, the k largest cosines to the anchors of other
videos. :func:`lanp.kernels.anchor_neighbours` finds them exactly in O(N A D) (~5e12 flops on the
UCF-Crime training lengths at D = 1024: most of a cross-video run). The projected search keeps
every returned similarity exact and lets only the choice of anchor miss:

1. an orthonormal basis P (D, d) of the anchors' space: the top-d right singular vectors of the
   unit anchors (``pca``, uncentred: the mean direction is the first) or an orthonormalised
   seeded Gaussian matrix (``random``);
2. with unit rows u = x / ||x||, unit anchors b, p_ia = (P'u) . (P'b) and the residual norms
   e_i = sqrt(1 - ||P'u||^2), r_a = sqrt(1 - ||P'b||^2), Cauchy-Schwarz bounds the exact cosine:

       p_ia - e_i r_a  <=  cos(x_i, b_a)  <=  p_ia + e_i r_a  =  [P'u, e_i] . [P'b, r_a]

   The right side is a cosine of unit (d+1)-vectors, so the exact kernel finds the c anchors
   with the largest upper bound (own video excluded, as always) in O(N A d);
3. the candidates whose upper bound reaches the k-th largest lower bound are re-scored exactly in
   float64 in full D (the others cannot be among the k best of the candidates), and the k-th
   largest exact cosine is the result.

A row is *certified* (provably the exact search's answer) when its k-th exact cosine reaches the
c-th upper bound, or when at most c anchors are eligible: no other anchor can beat it. With
d >= min(A, D) (PCA) the bounds are equalities and the search is exact. Memory: O(chunk A) in
the kernel (its own chunking) plus O(BLOCK_ROWS (c + d)) here: rows are searched BLOCK_ROWS at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np
from numba import njit, prange

from lanp.kernels import anchor_neighbours
from lanp.kernels.codes import STATUS_OK
from lanp.kernels.cpu.neighbours import dot64, inverse_norms

SEARCHES = ("exact", "projected")
PROJECTIONS = ("pca", "random")
POWER_STEPS = 6        # subspace iterations of the PCA fit
OVERSAMPLE = 16        # extra columns of the iterated subspace
BLOCK_ROWS = 16384     # rows searched at a time: the (rows, c) arrays stay ~10 MB whatever the chunk
MARGIN = 1e-6          # rounding allowance of the bounds (float32 projected rows): never prune on a tie


@njit(cache=True, parallel=True)
def rescore_kept(x, inv, unit, index, keep, out):
    """out[i, j] = (x_i . unit[index[i, j]]) * inv[i] in float64 where keep[i, j] (the exact
    kernel's own float64 dot, :func:`lanp.kernels.cpu.neighbours.dot64`: the same value it returns
    for the same pair, whatever the chunking). x (n, D), inv (n,), unit (A, D) float64, index /
    keep / out (n, c). (A kernel in the method layer until kernels/ has one with a GPU twin.)"""
    for i in prange(x.shape[0]):
        for j in range(index.shape[1]):
            if keep[i, j]:
                out[i, j] = dot64(x[i], unit[index[i, j]]) * inv[i]


def check_search(search: str, dims: int, candidates: int, projection: str, neighbours: int) -> None:
    """ValueError naming the bad parameter of an anchor search."""
    if search not in SEARCHES:
        raise ValueError(f"anchor_search={search!r} is invalid: choose one of {', '.join(SEARCHES)}")
    if projection not in PROJECTIONS:
        raise ValueError(f"projection={projection!r} is invalid: choose one of {', '.join(PROJECTIONS)}")
    for name, value in (("search_dims", dims), ("search_candidates", candidates)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}={value!r} is invalid: it must be an integer >= 1")
    if candidates < neighbours:
        raise ValueError(f"search_candidates={candidates!r} is invalid: it must be >= neighbours = {neighbours} "
                         f"(the k-th nearest anchor is picked among the candidates)")


def unit_rows(rows: np.ndarray) -> np.ndarray:
    """rows / ||rows|| in float64 (zero rows stay zero: the kernel refuses them itself)."""
    rows = np.asarray(rows, dtype=np.float64)
    norm = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    return rows / np.where(norm > 0, norm, 1.0)[:, None]


def orthonormal(y: np.ndarray) -> np.ndarray:
    """An orthonormal basis (D, r) of the columns of y (D, m), r <= m its numerical rank: twice
    y <- y V diag(lambda)^-1/2 from the eigendecomposition of the small (m, m) y'y (directions
    with lambda <= 1e-12 lambda_max dropped). Only matrix products and an (m, m) eigensolver:
    LAPACK's threaded QR of a (1024, 80) matrix took 0.5 s, its (1024, 1024) eigensolver 17 s on
    the loaded 2-core machine (a thread pool fighting the other jobs), 0.25 s single-threaded."""
    for _ in range(2):
        values, vectors = np.linalg.eigh(y.T @ y)
        keep = values > 1e-12 * max(float(values[-1]), 1e-300)
        y = y @ (vectors[:, keep] / np.sqrt(values[keep]))
    return np.ascontiguousarray(y[:, ::-1])            # largest direction first


def fit_basis(unit_anchors: np.ndarray, dims: int, projection: str = "pca", seed: int = 0) -> np.ndarray:
    """Orthonormal basis P (D, d') of the projection, d' <= min(dims, D).

    pca: the top principal directions of the unit anchors (A, D), uncentred, by subspace
    iteration on their (D, D) second moment G = U'U from a seeded start: Q <- orth(G Q)
    POWER_STEPS times with ``OVERSAMPLE`` extra columns, then the top d' Ritz vectors. Any
    orthonormal P keeps the search's bounds valid, so an inexact subspace costs recall, never
    correctness. With dims >= min(A, D) P spans every anchor (the search is exact);
    random: an orthonormalised (D, d') standard normal matrix drawn from ``seed``."""
    A, D = unit_anchors.shape
    rng = np.random.default_rng(seed)
    if projection == "random":
        return orthonormal(rng.standard_normal((D, min(dims, D))))
    if dims >= D or A == 0:
        return np.eye(D, min(dims, D))
    if dims >= A:                                       # the anchors' own span
        return orthonormal(unit_anchors.T.copy())
    G = unit_anchors.T @ unit_anchors
    q = orthonormal(rng.standard_normal((D, min(D, dims + OVERSAMPLE))))
    for _ in range(POWER_STEPS):
        q = orthonormal(G @ q)
    values, vectors = np.linalg.eigh(q.T @ G @ q)                       # Rayleigh-Ritz, small
    return np.ascontiguousarray(q @ vectors[:, ::-1][:, :dims])


@dataclass
class SearchStats:
    """What a projected search did: rows, (row, anchor) pairs re-scored in full D, rows certified
    exact by the bounds."""

    rows: int = 0
    rescored: int = 0
    certified: int = 0

    def add(self, other: "SearchStats") -> None:
        self.rows += other.rows
        self.rescored += other.rescored
        self.certified += other.certified


class Found(NamedTuple):
    """The k anchors kept for every row: similarity (n, k) float64 (exact cosines, largest first,
    -inf where none), index (n, k) int64 anchor rows (-1 where none), stats."""

    similarity: np.ndarray
    index: np.ndarray
    stats: SearchStats


class ProjectedAnchors:
    """The anchors prepared for the projected search (see the module docstring).

    anchors (A, D) rows, anchor_video (A,) their global videos; dims d, candidates c,
    projection 'pca' | 'random' (seeded by ``seed``)."""

    def __init__(self, anchors: np.ndarray, anchor_video: np.ndarray, dims: int, candidates: int,
                 projection: str = "pca", seed: int = 0):
        self.raw = np.asarray(anchors)
        self.unit = np.ascontiguousarray(unit_rows(anchors))
        self.bad_anchor = not np.all(np.isfinite(self.unit) & np.any(self.unit != 0, axis=1)[:, None])
        self.anchor_video = np.asarray(anchor_video, dtype=np.int64)
        self.videos = np.unique(self.anchor_video)
        self.basis = fit_basis(self.unit, dims, projection, seed)
        self.candidates = int(min(candidates, max(1, self.unit.shape[0])))
        projected = self.unit @ self.basis
        self.residual = np.sqrt(np.maximum(0.0, 1.0 - np.einsum("ij,ij->i", projected, projected)))
        self.augmented = np.ascontiguousarray(np.concatenate([projected, self.residual[:, None]], axis=1))

    @property
    def dims(self) -> int:
        return self.basis.shape[1]

    def search(self, x: np.ndarray, offsets: np.ndarray, k: int, first_video: int = 0, backend: str = "auto",
               video_ids=None, where: str = "features", dtype=None):
        """:class:`Found` for the rows of the chunk ``x`` (n, D): similarity (n, k) float64 exact
        cosines, largest first, -inf where fewer than k anchors are eligible; index (n, k) the
        anchors (-1 there); stats."""
        dt = np.dtype(dtype or (x.dtype if x.dtype in (np.float32, np.float64) else np.float32))
        n = x.shape[0]
        x = np.ascontiguousarray(x, dtype=dt)
        inv = np.empty(n)
        status = np.empty(n, dtype=np.int8)
        inverse_norms(x, float(np.finfo(dt).max), inv, status)            # the exact kernel's own norms
        if self.bad_anchor or np.any(status != STATUS_OK):
            # a bad row or anchor: the exact kernel names it (video, snippet or anchor) in its InputError
            # (and should it pass them, its answer is the exact one)
            nb = anchor_neighbours(x, offsets, self.raw, self.anchor_video, k=k, first_video=first_video,
                                   backend=backend, video_ids=video_ids, where=where)
            return Found(nb.similarity, nb.index, SearchStats(n, 0, n))
        if self.unit.shape[0] == 0:
            return Found(np.full((n, k), -np.inf), np.full((n, k), -1, dtype=np.int64), SearchStats(n, 0, n))
        video = np.repeat(np.arange(offsets.shape[0] - 1) + first_video, np.diff(offsets))
        parts = [self._block(x[lo:lo + BLOCK_ROWS], inv[lo:lo + BLOCK_ROWS], video[lo:lo + BLOCK_ROWS], k, dt, backend)
                 for lo in range(0, n, BLOCK_ROWS)]
        stats = SearchStats(n, sum(p.stats.rescored for p in parts), sum(p.stats.certified for p in parts))
        return Found(np.concatenate([p.similarity for p in parts]), np.concatenate([p.index for p in parts]), stats)

    def _block(self, x, inv, video, k, dt, backend) -> Found:
        """The search on rows x (b, D) (checked: finite, nonzero) of global videos ``video`` (b,),
        sorted; a block may cut a video (each row's answer depends on that row alone)."""
        b = x.shape[0]
        cuts = np.flatnonzero(np.diff(video)) + 1
        offsets = np.concatenate([[0], cuts, [b]]).astype(np.int64)
        p = (x @ self.basis.astype(dt)).astype(np.float64) * inv[:, None]
        e = np.sqrt(np.maximum(0.0, 1.0 - np.einsum("ij,ij->i", p, p)))
        rows = np.ascontiguousarray(np.concatenate([p, e[:, None]], axis=1), dtype=dt)
        nb = anchor_neighbours(rows, offsets, self.augmented.astype(dt), self.anchor_video, k=max(self.candidates, k),
                               first_video=int(video[0]), backend=backend)
        index, upper = nb.index, nb.similarity                                    # (b, c), largest first
        valid = index >= 0
        lower = np.where(valid, upper - 2.0 * e[:, None] * self.residual[np.maximum(index, 0)], -np.inf)
        kth_lower = lower.max(axis=1) if k == 1 else -np.sort(-lower, axis=1)[:, k - 1]
        keep = valid & (upper >= kth_lower[:, None] - MARGIN)
        exact = np.full(index.shape, -np.inf)
        rescore_kept(x, inv, self.unit, index, keep, exact)
        if k == 1:                                                             # exact, largest first
            order = np.argmax(exact, axis=1)[:, None]
        else:
            order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        best = np.take_along_axis(exact, order, axis=1)
        chosen = np.where(np.isfinite(best), np.take_along_axis(index, order, axis=1), -1)
        own = np.bincount(np.searchsorted(self.videos, self.anchor_video), minlength=self.videos.size)
        place = np.minimum(np.searchsorted(self.videos, video), max(self.videos.size - 1, 0))
        own_count = np.where(self.videos[place] == video, own[place], 0) if self.videos.size else np.zeros(b, int)
        everything = self.anchor_video.size - own_count <= index.shape[1]   # every eligible anchor a candidate
        certified = everything | (best[:, -1] >= upper[:, -1] + MARGIN)
        return Found(best, chosen, SearchStats(b, int(keep.sum()), int(certified.sum())))


def exact_search(x, offsets, anchors, anchor_video, k, first_video=0, backend="auto", video_ids=None,
                 where="features") -> Found:
    """The exact kernel's k nearest anchors (see :func:`lanp.kernels.anchor_neighbours`)."""
    nb = anchor_neighbours(x, offsets, anchors, anchor_video, k=k, first_video=first_video, backend=backend,
                           video_ids=video_ids, where=where)
    return Found(nb.similarity, nb.index, SearchStats(x.shape[0], 0, x.shape[0]))


def prepare(anchors, anchor_video, search: str, dims: int, candidates: int, projection: str,
            seed: int = 0) -> Optional[ProjectedAnchors]:
    """The prepared anchors of a projected search; None for the exact one."""
    if search == "exact":
        return None
    return ProjectedAnchors(anchors, anchor_video, dims, candidates, projection, seed)
