"""Launch plans for the CUDA C kernels in ``lanp.cu`` (pure numpy; shared by the cupy backend and
the host-library tests, so both drive the kernels the same way).

A similarity launch has one block per *work item*: a dense video whole, or a chunk of rows of a
banded video (long banded videos are split so that one video does not serialise the launch; the
chunk also recomputes the log affinities of its k halo rows on each side, which it needs for
their log-sum-exp). Items are ordered most expensive first.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

BLOCK = 256                 # LANP_BLOCK in lanp.cu
FUSED_MAX_L = 128           # videos up to this length take the fused similarity + CG kernel
FUSED_SMEM_LIMIT = 227 * 1024   # sm_90 opt-in maximum of dynamic shared memory per block


@dataclass
class SimilarityPlan:
    items: np.ndarray           # (n, 6) int64: video, r0, r1, norms offset, lse offset, halo offset
    norm_size: int              # doubles of scratch for the norms
    lse_size: int               # doubles of scratch for the row log-sum-exps
    halo_size: int              # doubles of scratch for the halo rows' log affinities
    graph_offsets: Optional[np.ndarray]     # dense: (V+1,) int64 cumsum(L^2); banded: None
    values_shape: tuple         # shape of the float64 output


def default_rows_per_item(band: int) -> int:
    """Rows per banded work item: the halo costs 2k / rows extra work, so at least 8k rows."""
    return max(512, 8 * band)


def similarity_plan(lengths, band: int, rows_per_item: Optional[int] = None,
                    videos: Optional[np.ndarray] = None) -> SimilarityPlan:
    """Work items for ``lanp_similarity_*`` over ``videos`` (default: all) of a packed batch.

    band 0 = dense (one item per video, output flat with graph_offsets = cumsum(L^2) over *all*
    videos, zero-size for those not planned); band k: rows split in chunks of ``rows_per_item``,
    output (N, 2k+1).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    V = lengths.shape[0]
    videos = np.arange(V, dtype=np.int64) if videos is None else np.asarray(videos, dtype=np.int64)
    rows = []
    if band == 0:
        sizes = np.zeros(V, dtype=np.int64)
        sizes[videos] = lengths[videos] ** 2
        graph_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        for v in videos:
            L = int(lengths[v])
            rows.append((int(v), 0, L, L, L, 0, L * L))
        values_shape = (int(graph_offsets[-1]),)
    else:
        graph_offsets = None
        R = rows_per_item or default_rows_per_item(band)
        for v in videos:
            L = int(lengths[v])
            for r0 in range(0, L, R):
                r1 = min(L, r0 + R)
                e0, e1 = max(0, r0 - band), min(L, r1 + band)
                c0, c1 = max(0, e0 - band), min(L, e1 + band)
                halo_rows = (e1 - e0) - (r1 - r0)
                rows.append((int(v), r0, r1, c1 - c0, e1 - e0, halo_rows * (2 * band + 1),
                             (e1 - e0) * min(2 * band + 1, L)))
        values_shape = (int(lengths.sum()), 2 * band + 1)
    if not rows:
        items = np.zeros((0, 6), dtype=np.int64)
        return SimilarityPlan(items, 1, 1, 1, graph_offsets, values_shape)
    table = np.array(rows, dtype=np.int64)
    table = table[np.argsort(-table[:, 6], kind="stable")]      # most expensive first
    items = np.empty((table.shape[0], 6), dtype=np.int64)
    items[:, :3] = table[:, :3]
    for col, size_col in ((3, 3), (4, 4), (5, 5)):
        sizes = table[:, size_col]
        items[:, col] = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return SimilarityPlan(items, max(1, int(table[:, 3].sum())), max(1, int(table[:, 4].sum())),
                          max(1, int(table[:, 5].sum())), graph_offsets, values_shape)


def fused_doubles(L, band: int):
    """Doubles of (shared) scratch the fused kernel needs per video (lanp_fused_doubles)."""
    L = np.asarray(L, dtype=np.int64)
    k = np.zeros_like(L) if band == 0 else np.minimum(band, L - 1)
    width = np.where(k == 0, L, 2 * k + 1)
    return L * width + 5 * L


def split_fused(lengths, band: int, max_l: int = FUSED_MAX_L, smem_limit: int = FUSED_SMEM_LIMIT):
    """(short videos for the fused kernel, the rest), each sorted longest first, and the dynamic
    shared memory in bytes the fused launch needs."""
    lengths = np.asarray(lengths, dtype=np.int64)
    need = fused_doubles(lengths, band) * 8
    short = (lengths <= max_l) & (need + 8 * BLOCK <= smem_limit)
    order = np.argsort(-lengths, kind="stable").astype(np.int64)
    fused = order[short[order]]
    rest = order[~short[order]]
    smem = int(need[fused].max()) if fused.size else 0
    return fused, rest, smem
