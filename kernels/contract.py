"""What every backend does around its kernels, written once: poison the outputs before a kernel
runs, turn per-video status codes into one clear error, and check that every video was written.

Poison: z NaN, iterations -1, residual NaN, converged False, status STATUS_UNWRITTEN; anything
still poisoned after a kernel is a backend bug, never a plausible zero.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .arrays import to_numpy
from .codes import (NO_BAD_ROW, STATUS_KEY_STRIDE, STATUS_NEGATIVE_DEGREE, STATUS_NONFINITE, STATUS_OK,
                    STATUS_UNWRITTEN, STATUS_ZERO)
from .errors import InputError, video_name
from .params import GraphParams
from .results import Propagation


def poisoned_solver_outputs(N: int, V: int, z_dtype=np.float64, xp=np, converged_dtype=np.bool_):
    """(z (N,) NaN in ``z_dtype``, iterations (V,) int32 -1, residual (V,) NaN, converged (V,)
    False) in the array module ``xp`` (numpy or cupy)."""
    return (xp.full(N, np.nan, dtype=z_dtype), xp.full(V, -1, dtype=np.int32),
            xp.full(V, np.nan), xp.zeros(V, dtype=converged_dtype))


def poisoned_status(V: int, dtype=np.int8):
    """(status (V,) STATUS_UNWRITTEN, where (V,) int64 -1): the CPU kernels' per-video report."""
    return np.full(V, STATUS_UNWRITTEN, dtype=dtype), np.full(V, -1, dtype=np.int64)


def bug(where: str, video_ids, v: int, count: int) -> RuntimeError:
    return RuntimeError(f"{where}: the kernel wrote no result for {video_name(video_ids, v)} "
                        f"({count} video(s)): this is a bug in lanp, please report it")


def raise_for_status(status, where_idx, offsets, video_ids, params: Optional[GraphParams], where: str,
                     messages: Optional[dict] = None, features=None) -> None:
    """Turn per-video status codes (codes.STATUS_*; where_idx: the bad snippet) into one
    InputError naming the first bad video, snippet and row, or a RuntimeError for a video the
    kernel never wrote. ``messages`` overrides the description of a status code. With the host
    ``features`` the kernel read, a "zero" row that holds nonzero values is called what it is: a
    squared norm that underflows in the compute dtype."""
    status = np.asarray(status)
    bad = np.flatnonzero(status != STATUS_OK)
    if not bad.size:
        return
    v = int(bad[0])
    if status[v] == STATUS_UNWRITTEN:
        raise bug(where, video_ids, v, bad.size)
    why = "cosine distance" if params is not None and params.distance == "cosine" else "L2 normalisation"
    what = {STATUS_NONFINITE: "a NaN or Inf value (or a value too large to square in this dtype)",
            STATUS_ZERO: f"an all-zero feature vector, which {why} cannot use",
            STATUS_NEGATIVE_DEGREE: "a negative degree", **(messages or {})}[int(status[v])]
    snippet = int(where_idx[v])
    if int(status[v]) == STATUS_ZERO and features is not None and not messages:
        row = np.asarray(features[int(offsets[v]) + snippet])
        if np.any(row != 0):
            what = (f"a feature vector whose squared norm underflows to 0 in {row.dtype} (largest |value| "
                    f"{float(np.max(np.abs(row))):.3g}), which {why} cannot use: use --dtype float64 or rescale "
                    f"the features")
    raise InputError(f"{where}: {video_name(video_ids, v)}, snippet {snippet} "
                     f"(row {int(offsets[v]) + snippet}) has {what}; {bad.size} bad video(s) in all")


def raise_bad_rows(bad, offsets, video_ids, params: GraphParams, where: str) -> None:
    """GPU form of :func:`raise_for_status`: bad[v] = STATUS_KEY_STRIDE * snippet + status of the
    first bad snippet of video v (an atomic min), NO_BAD_ROW where there is none."""
    bad = np.asarray(bad)
    status = np.where(bad == NO_BAD_ROW, STATUS_OK, bad % STATUS_KEY_STRIDE).astype(np.int8)
    where_idx = np.where(bad == NO_BAD_ROW, -1, bad // STATUS_KEY_STRIDE).astype(np.int64)
    raise_for_status(status, where_idx, offsets, video_ids, params, where)


def check_written(result: Propagation, video_ids, where: str) -> None:
    """Raise if any video still has the poisoned iteration count -1 (a backend bug)."""
    missing = np.flatnonzero(to_numpy(result.iterations) < 0)
    if missing.size:
        raise bug(where, video_ids, int(missing[0]), missing.size)


# -- the cross-video kernels (anchor_neighbours, solve_csr) -------------------------------------

NEIGHBOUR_POISON = -2           # an index no kernel writes (a missing anchor is -1)


def poisoned_neighbours(N: int, k: int, xp=np):
    """(index (N, k) int64 NEIGHBOUR_POISON, similarity (N, k) NaN) in the array module ``xp``."""
    return xp.full((N, k), NEIGHBOUR_POISON, dtype=np.int64), xp.full((N, k), np.nan)


def check_neighbours_written(index, where: str) -> None:
    """Raise if any entry of a Neighbours index is still poisoned (a backend bug)."""
    missing = np.flatnonzero((to_numpy(index) == NEIGHBOUR_POISON).any(axis=1))
    if missing.size:
        raise RuntimeError(f"{where}: the kernel wrote no neighbours for row {int(missing[0])} "
                           f"({missing.size} row(s)): this is a bug in lanp, please report it")


def raise_for_row(row: int, status: int, offsets, video_ids, where: str) -> None:
    """InputError for a bad snippet row (codes.STATUS_*) of a packed batch: names its video and
    snippet, in the style of :func:`raise_for_status`."""
    v = int(np.searchsorted(offsets, row, side="right")) - 1
    what = {STATUS_NONFINITE: "a NaN or Inf value (or a value too large to square in this dtype)",
            STATUS_ZERO: "an all-zero feature vector, which cosine similarity cannot use"}[int(status)]
    raise InputError(f"{where}: {video_name(video_ids, v)}, snippet {row - int(offsets[v])} "
                     f"(row {row}) has {what}")


def raise_for_anchor(a: int, status: int, anchor_video, where: str) -> None:
    """InputError for a bad anchor row (codes.STATUS_*), naming the anchor and its video."""
    what = {STATUS_NONFINITE: "a NaN or Inf value (or a value too large to square in this dtype)",
            STATUS_ZERO: "an all-zero feature vector, which cosine similarity cannot use"}[int(status)]
    raise InputError(f"{where}: anchor {a} (of global video {int(anchor_video[a])}) has {what}")


def raise_for_csr_key(key: int, indptr, indices, data, where: str) -> None:
    """InputError for the first bad entry of a CSR matrix W (key = CSR_KEY_STRIDE * entry + code,
    codes.CSR_*), naming its row, column and weight; nothing for NO_BAD_ENTRY."""
    from .codes import (CSR_ASYMMETRIC, CSR_BAD_WEIGHT, CSR_COLUMN_RANGE, CSR_DIAGONAL, CSR_KEY_STRIDE,
                        CSR_UNSORTED, NO_BAD_ENTRY)
    key = int(key)
    if key == NO_BAD_ENTRY:
        return
    e, code = divmod(key, CSR_KEY_STRIDE)
    indptr = to_numpy(indptr)
    i = int(np.searchsorted(indptr, e, side="right")) - 1
    j = int(to_numpy(indices[e:e + 1])[0])
    w = float(to_numpy(data[e:e + 1])[0])
    N = indptr.shape[0] - 1
    mirror, present = 0.0, False
    if code == CSR_ASYMMETRIC:
        lo, hi = int(indptr[j]), int(indptr[j + 1])
        columns = to_numpy(indices[lo:hi])
        found = np.flatnonzero(columns == i)
        present = bool(found.size)
        mirror = float(to_numpy(data[lo + int(found[0]):lo + int(found[0]) + 1])[0]) if present else 0.0
    what = {CSR_COLUMN_RANGE: f"its column is outside [0, {N})",
            CSR_UNSORTED: f"its column is not above the previous one of row {i}: each row's columns must be "
                          "strictly increasing (canonical CSR; scipy: W.sum_duplicates())",
            CSR_BAD_WEIGHT: "W must be finite and >= 0",
            CSR_DIAGONAL: "W must have a zero diagonal",
            CSR_ASYMMETRIC: f"but W[{j}, {i}] = {mirror!r}{'' if present else ' (absent)'}: W must be symmetric "
                            "bit for bit (e.g. W = (W + W.T) / 2)"}[code]
    raise InputError(f"{where}: W[{i}, {j}] = {w!r} (entry {e}): {what}")
