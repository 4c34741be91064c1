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
                     messages: Optional[dict] = None) -> None:
    """Turn per-video status codes (codes.STATUS_*; where_idx: the bad snippet) into one
    InputError naming the first bad video, snippet and row, or a RuntimeError for a video the
    kernel never wrote. ``messages`` overrides the description of a status code."""
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
