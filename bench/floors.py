"""Hardware floors measured in the same run, and the work lanp's CPU kernel does (bytes, flops).

read_bandwidth(): bytes/s of a parallel reduction over an array far larger than the caches (every
core reads; the best of a few passes). gemm_rate(): flop/s of numpy float32 matmul (BLAS, all
threads). A lanp result is reported as floor / measured, where

    floor = max(bytes_read / read_bandwidth, flops / gemm_rate)

and bytes_read / flops are counted from what ``lanp.kernels.cpu`` does (see kernel_work).
"""
from __future__ import annotations

import time

import numpy as np
from numba import njit, prange


@njit(parallel=True, fastmath=True, cache=True)
def _parallel_sum(a):
    """Sum in 64 contiguous blocks spread over the threads (vectorised float32 lanes)."""
    n = a.shape[0]
    nb = 64
    step = (n + nb - 1) // nb
    out = np.zeros(nb)
    for b in prange(nb):
        acc = np.float32(0.0)
        for i in range(b * step, min(n, (b + 1) * step)):
            acc += a[i]
        out[b] = acc
    return out.sum()


def read_bandwidth(nbytes: int = 1 << 30, repeats: int = 5) -> float:
    """Memory read bandwidth in bytes/s (parallel float32 reduction, best of ``repeats``)."""
    a = np.full(nbytes // 4, 1.0, dtype=np.float32)   # touched, so pages are resident
    _parallel_sum(a[:1024])
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        _parallel_sum(a)
        best = min(best, time.perf_counter() - t)
    return a.nbytes / best


def gemm_rate(n: int = 2048, k: int = 2048, repeats: int = 5, dtype=np.float32) -> float:
    """BLAS matmul rate in flop/s on an (n, k) @ (k, n) product (best of ``repeats``)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, k), dtype=dtype)
    b = rng.standard_normal((k, n), dtype=dtype)
    c = a @ b
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n * n * k / best


def gram_flops(lengths: np.ndarray, dim: int, window=None) -> float:
    """Flops of the distance stage of lanp.kernels.cpu on its default path (unit rows), as the
    code computes it (2 flops per element of D per dot product): gram_tiles evaluates 4 x 4
    tiles (16 dot products) off the diagonal, over the upper triangle (dense) or, banded, for
    each block of 4 rows up to column i0 + 4 + k; the diagonal blocks go two at a time as upper
    triangles (20 dot products per pair; an odd last block is paired with itself). A band
    covering the whole video is built dense. The norms come from the Gram diagonal. The rms and
    raw-feature band paths use direct differences (3 flops per element, 1 x 4 groups) and so do
    ~1.5x this: the floor counts the least work.
    """
    L = np.asarray(lengths, dtype=np.int64)
    total = 0
    for n in L:
        blocks = np.arange(0, n, 4)
        if window is None or window >= n - 1:
            off_diagonal = (n - blocks - 1) // 4
        else:
            off_diagonal = (np.minimum(n, blocks + 4 + window) - blocks - 1) // 4
        total += 16 * int(off_diagonal.sum()) + 20 * ((len(blocks) + 1) // 2)
    return float(2.0 * dim * total)


def kernel_work(lengths: np.ndarray, dim: int, itemsize: int, window=None,
                iterations: np.ndarray | None = None) -> dict:
    """Bytes and flops of one lanp.kernels.propagate call (features in memory).

    bytes: the features are read once from memory (N * D * itemsize); the per-video graph
    (L^2 or L(2k+1) float64) is a per-thread scratch that stays in cache for short videos and is
    not counted (it is counted separately as graph_bytes). flops: the Gram (gram_flops) plus
    CG: 2 flops per stored graph entry of every row a matvec touches, for each iteration and
    the final residual. Dense: every row. Banded (the paper's seeds at both ends): CG works on
    the rows its Krylov vectors reach, min(L, 2 ((t + 1) k + 1)) rows in matvec t. The exp/log
    work is not flops-bound and is not counted.
    """
    L = np.asarray(lengths, dtype=np.int64)
    N = int(L.sum())
    width = L if window is None else np.minimum(2 * window + 1, L)
    entries = (L * width).astype(np.float64)
    it = np.full(L.shape, 10) if iterations is None else np.asarray(iterations, dtype=np.int64)
    cg = 0.0
    for n, w, t in zip(L, width, it):
        if window is None or window >= n - 1:
            rows = float(n) * (t + 1)
        else:
            reach = (np.arange(t + 1) + 1) * window + 1
            rows = float(np.minimum(n, 2 * reach).sum())
        cg += 2.0 * w * rows
    return {"bytes": float(N * dim * itemsize), "gram_flops": gram_flops(L, dim, window),
            "cg_flops": cg, "graph_bytes": float((entries * 8).sum())}


def floor_seconds(work: dict, bandwidth: float, gemm: float) -> dict:
    t_mem = work["bytes"] / bandwidth
    t_flop = (work["gram_flops"] + work["cg_flops"]) / gemm
    return {"floor_mem_s": t_mem, "floor_flop_s": t_flop, "floor_s": max(t_mem, t_flop),
            "bound": "memory" if t_mem >= t_flop else "compute"}
