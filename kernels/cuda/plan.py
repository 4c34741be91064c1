"""Launch plans for the CUDA C kernels in ``lanp.cu`` (pure numpy; shared by the cupy backend and
the host-library tests, so both drive the kernels the same way). What fits on a device comes
from :mod:`lanp.kernels.cuda.limits` (its attributes), never from constants of one architecture.

A similarity launch has one block per *work item*: a dense video whole, or a chunk of rows of a
banded video (long banded videos are split so that one video does not serialise the launch; the
chunk also recomputes the log affinities of its k halo rows on each side, which it needs for
their log-sum-exp). Items are ordered most expensive first.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import InputError, video_name
from .limits import DeviceLimits, KernelAttributes, dynamic_shared_max

BLOCK = 256                 # LANP_BLOCK in lanp.cu
FUSED_MAX_L = 128           # videos up to this length take the fused similarity + CG kernel
# graph entries one thread block may own: a dense video is one block (its row log-sum-exps need
# every row), so a longer one would run on one SM while the others idle
BLOCK_ENTRIES_MAX = 8192 * 8192


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


def split_fused(lengths, band: int, device: DeviceLimits, kernel: KernelAttributes,
                max_l: int = FUSED_MAX_L):
    """(short videos for the fused kernel, the rest), each sorted longest first, and the dynamic
    shared memory in bytes the fused launch needs. A video is short when L <= max_l and its
    scratch fits next to the kernel's static shared memory under the device's opt-in limit."""
    lengths = np.asarray(lengths, dtype=np.int64)
    need = fused_doubles(lengths, band) * 8
    short = (lengths <= max_l) & (need <= dynamic_shared_max(device, kernel))
    order = np.argsort(-lengths, kind="stable").astype(np.int64)
    fused = order[short[order]]
    rest = order[~short[order]]
    smem = int(need[fused].max()) if fused.size else 0
    return fused, rest, smem


def subset_rows(offsets, videos):
    """The packed sub-batch of ``videos``: (rows (n,) int64 global row of each of its snippets,
    sub_offsets (len(videos)+1,) int64)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    videos = np.asarray(videos, dtype=np.int64)
    lengths = offsets[videos + 1] - offsets[videos]
    sub_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    rows = np.repeat(offsets[videos] - sub_offsets[:-1], lengths) + np.arange(int(sub_offsets[-1]))
    return rows.astype(np.int64), sub_offsets


def subset_seeds(seeds, videos):
    """Packed seeds (positions, seed_offsets) of ``videos`` only, in that order (local positions
    are unchanged)."""
    positions, seed_offsets = (np.asarray(a, dtype=np.int64) for a in seeds)
    videos = np.asarray(videos, dtype=np.int64)
    rows, sub_offsets = subset_rows(seed_offsets, videos)
    return positions[rows], sub_offsets


def two_step_bytes(lengths, band: int, dim: int, itemsize: int) -> np.ndarray:
    """(V,) device bytes the similarity + CG pair needs per video beyond the batch's own arrays:
    the float64 graph, a gathered copy of the features, norms / lse / halo scratch and the four
    CG vectors (z, r, p, q)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    halo = 0 if band == 0 else 2 * band * (2 * band + 1) * 8 * -(-lengths // default_rows_per_item(band))
    graph = lengths * lengths * 8 if band == 0 else lengths * (2 * band + 1) * 8   # as allocated
    return (graph + lengths * dim * itemsize
            + 6 * lengths * 8 + halo)


def memory_groups(need, budget: int):
    """Split videos (indices into ``need``, kept in order) into consecutive groups whose total
    bytes stay within ``budget``; a video over the budget alone gets a group of its own (the
    caller refuses it first, with a remedy)."""
    groups, current, used = [], [], 0
    for v, bytes_v in enumerate(np.asarray(need, dtype=np.int64)):
        if current and used + bytes_v > budget:
            groups.append(np.array(current, dtype=np.int64))
            current, used = [], 0
        current.append(v)
        used += int(bytes_v)
    if current:
        groups.append(np.array(current, dtype=np.int64))
    return groups


def check_block_work(lengths, band: int, video_ids, where: str, splits_bands: bool,
                     limit: int = BLOCK_ENTRIES_MAX) -> None:
    """Refuse a video whose graph one thread block would have to build alone: dense videos are
    one block each; banded ones too unless the kernel ``splits_bands`` into row chunks."""
    lengths = np.asarray(lengths, dtype=np.int64)
    width = lengths if band == 0 else np.minimum(2 * band + 1, 2 * lengths - 1)
    entries = lengths * width
    if band and splits_bands:
        return
    v = int(np.argmax(entries)) if lengths.size else 0
    if lengths.size and entries[v] > limit:
        remedy = ("use a banded graph (window=50, --window 50), which the cupy backend splits over "
                  "many blocks, or backend='cpu'") if band == 0 else "use backend='cupy' or backend='cpu'"
        raise InputError(f"{where}: {video_name(video_ids, v)} has L = {int(lengths[v])} snippets; its "
                         f"{'dense' if band == 0 else 'banded'} graph of {int(entries[v])} entries would be "
                         f"built by one GPU thread block (at most {limit}): {remedy}")
