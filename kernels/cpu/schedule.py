"""Static schedule of videos over CPU threads (greedy longest-processing-time)."""
from __future__ import annotations

import numba
import numpy as np
from numba import njit


@njit(cache=True)
def _longest_processing_time(cost, order, threads):
    """Greedy LPT: each video (most expensive first) goes to the least-loaded thread."""
    load = np.zeros(threads)
    owner = np.empty(order.shape[0], dtype=np.int64)
    for slot in range(order.shape[0]):
        best = 0
        for t in range(1, threads):
            if load[t] < load[best]:
                best = t
        owner[slot] = best
        load[best] += cost[order[slot]]
    return owner


def schedule(lengths: np.ndarray, band: int, dim: int, threads: int = None):
    """Static balanced schedule over threads: (order (V,), bounds (threads+1,)); thread t runs
    videos order[bounds[t]:bounds[t+1]], largest first.

    Estimated cost of a video: L * width * (D + 40) (the distances, then exp/log and ~10 CG
    iterations per stored entry). numba's prange splits its range statically, so ragged batches
    are balanced here by greedy longest-processing-time rather than by chunking.
    """
    threads = numba.get_num_threads() if threads is None else threads
    L = lengths.astype(np.float64)
    width = L if band == 0 else np.minimum(L, 2 * band + 1)
    cost = L * width * (dim + 40.0) + 1000.0
    order = np.argsort(-cost, kind="stable").astype(np.int64)
    owner = _longest_processing_time(cost, order, threads)
    grouped = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[grouped], np.arange(threads + 1)).astype(np.int64)
    return order[grouped], bounds
