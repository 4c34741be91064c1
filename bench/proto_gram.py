"""Scratch profile of lanp.kernels.cpu on UCF-32 (not a benchmark): python bench/proto_gram.py

Times the stages of the fused kernel separately by calling lanp's own numba helpers from small
prange drivers (chunk size 1, like lanp), and a few variants, all on the same UCF-32 input.

Written against kernels/cpu.py at commit c040432 (the numbers in bench/RESULTS.md "Where the CPU
kernel stands"); commit 135e5f9 renamed / replaced some helpers (gram_dense -> gram_tiles,
largest_first -> schedule), so stages that call them need adapting before re-use.
"""
import sys
import math
import time
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

from lanp.kernels import cpu, propagate

sys.path.insert(0, str(Path(__file__).parent))
import workloads  # noqa: E402


@njit(parallel=True)
def stage_read(x, offsets, zero):
    """One streaming pass: squared norms of every row (the memory-read part alone)."""
    for v in prange(offsets.shape[0] - 1):
        a = offsets[v]; L = offsets[v + 1] - a
        n = np.empty(L)
        cpu.squared_norms(x[a:a + L], zero, True, n)


@njit(parallel=True)
def stage_gram(x, offsets, zero):
    for v in prange(offsets.shape[0] - 1):
        a = offsets[v]; L = offsets[v + 1] - a
        G = np.empty((L, L))
        cpu.gram_dense(x[a:a + L], zero, G)


@njit(parallel=True)
def stage_graph(x, offsets, zero):
    for v in prange(offsets.shape[0] - 1):
        a = offsets[v]; L = offsets[v + 1] - a
        S = np.empty((L, L)); lse = np.empty(L)
        cpu.build_graph(x[a:a + L], zero, 0, 0, True, 50.0, 0.0, S, lse)


@njit(parallel=True)
def stage_graph_prefetch(x, offsets, zero, sink):
    """build_graph, after touching the next video's rows (one load per 64-byte line) first."""
    V = offsets.shape[0] - 1
    for v in prange(V):
        a = offsets[v]; L = offsets[v + 1] - a
        S = np.empty((L, L)); lse = np.empty(L)
        cpu.build_graph(x[a:a + L], zero, 0, 0, True, 50.0, 0.0, S, lse)


@njit(parallel=True, fastmath=True)
def stage_gram_pair(x, offsets, zero):
    """Gram of two videos per task, interleaved: while one video's tiles run from L2 the other's
    first tile row streams from memory (tests whether 2 independent streams per core help)."""
    V = offsets.shape[0] - 1
    for t in prange((V + 1) // 2):
        for v in (2 * t, min(2 * t + 1, V - 1)):
            a = offsets[v]; L = offsets[v + 1] - a
            G = np.empty((L, L))
            cpu.gram_dense(x[a:a + L], zero, G)


def best(f, *args, n=7):
    f(*args)
    ts = []
    for _ in range(n):
        t = time.perf_counter(); f(*args); ts.append(time.perf_counter() - t)
    return np.median(ts) * 1e3


def dyn(f):
    def g(*a):
        numba.set_parallel_chunksize(1)
        try:
            return f(*a)
        finally:
            numba.set_parallel_chunksize(0)
    return g


if __name__ == "__main__":
    x, off = workloads.ucf32()
    V = len(off) - 1
    same = np.arange(V + 1, dtype=np.int64) * 0 + np.arange(V + 1) % 2 * 32   # video 0 again and again
    same = np.zeros(V + 1, dtype=np.int64); same[1::2] = 32                    # (offsets 0,32,0,32,...)
    z = np.float32(0)
    rows = []
    rows.append(("lanp.kernels.propagate (paper, dense)", best(lambda: propagate(x, off))))
    rows.append(("  read pass only (squared_norms, all rows)", best(dyn(stage_read), x, off, z)))
    rows.append(("  gram_dense only", best(dyn(stage_gram), x, off, z)))
    rows.append(("  build_graph (gram + log/exp + lse)", best(dyn(stage_graph), x, off, z)))
    rows.append(("  gram_dense on one cached video x1610 (compute alone)", None))
    print("profile (median of 7, ms):")
    for name, t in rows:
        if t is not None:
            print(f"{t:9.1f}  {name}")
    # compute-only: offsets 0..32 repeated; use a kernel that loops without ragged offsets
    @njit(parallel=True)
    def gram_cached(x, V, zero):
        for v in prange(V):
            G = np.empty((32, 32))
            cpu.gram_dense(x[0:32], zero, G)
    print(f"{best(dyn(gram_cached), x, V, z):9.1f}  gram_dense on one cached video x{V} (compute alone)")
    print(f"{best(lambda: propagate(x, off, distance='rms', normalize=False)):9.1f}  propagate rms raw, dense (window None)")
    print(f"{best(lambda: propagate(x, off, distance='rms', normalize=False, window=50), n=3):9.1f}  propagate rms raw, window 50 (k -> 31: band path)")
    print(f"{best(lambda: propagate(x, off, window=50), n=3):9.1f}  propagate paper, window 50 (k -> 31: band path)")
    X = x.reshape(V, 32, -1)
    print(f"{best(lambda: np.matmul(X, X.transpose(0, 2, 1))):9.1f}  numpy batched matmul (BLAS, per-video sgemm)")


@njit(parallel=True)
def stage_raw_parts(x, offsets, zero, part):
    """The raw-feature dense path piece by piece: 1 = norms, 2 = + centring, 3 = + Gram of centred."""
    for v in prange(offsets.shape[0] - 1):
        a = offsets[v]; L = offsets[v + 1] - a
        xv = x[a:a + L]
        n = np.empty(L)
        cpu.squared_norms(xv, zero, False, n)
        if part >= 2:
            c = np.empty_like(xv)
            cpu.centred_rows(xv, c)
            if part >= 3:
                G = np.empty((L, L))
                cpu.gram_dense(c, zero, G)


@njit(parallel=True)
def stage_gram_copy(x, offsets, zero):
    """Gram of a contiguous copy of the video (same types as the centred path, no centring)."""
    for v in prange(offsets.shape[0] - 1):
        a = offsets[v]; L = offsets[v + 1] - a
        c = x[a:a + L].copy()
        G = np.empty((L, L))
        cpu.gram_dense(c, zero, G)


def raw_profile():
    x, off = workloads.ucf32()
    z = np.float32(0)
    for part, name in ((1, "norms"), (2, "norms + centred_rows"), (3, "norms + centred_rows + gram(centred)")):
        print(f"{best(dyn(stage_raw_parts), x, off, z, part):9.1f}  raw dense path: {name}")
    print(f"{best(dyn(stage_gram_copy), x, off, z):9.1f}  gram_dense of a .copy() of each video")
    print(f"{best(dyn(stage_gram), x, off, z):9.1f}  gram_dense of the slice x[a:a+L]")


@njit(parallel=True)
def stage_graph_any(x, offsets, zero, k, distance, normalize, inv_two_sigma2):
    for v in prange(offsets.shape[0] - 1):
        a = offsets[v]; L = offsets[v + 1] - a
        kk = 0 if k == 0 else min(k, L - 1)
        S = np.empty((L, L if kk == 0 else 2 * kk + 1)); lse = np.empty(L)
        cpu.build_graph(x[a:a + L], zero, kk, distance, normalize, inv_two_sigma2, 0.0, S, lse)


def graph_profile():
    x, off = workloads.ucf32()
    z = np.float32(0)
    for k, dist, norm, name in ((0, 0, True, "dense, sqeuclidean, unit"), (0, 1, False, "dense, rms, raw"),
                                (0, 0, False, "dense, sqeuclidean, raw"), (50, 1, False, "band k=31, rms, raw"),
                                (50, 0, True, "band k=31, sqeuclidean, unit")):
        print(f"{best(dyn(stage_graph_any), x, off, z, k, dist, norm, 50.0, n=3):9.1f}  build_graph {name}")


@njit(parallel=True)
def stage_band(x, offsets, order, zero, k, part):
    """The banded path piece by piece: 1 = norms, 2 = + pair_distances (band layout), 3 = + whole build_graph."""
    for t in prange(order.shape[0]):
        v = order[t]
        a = offsets[v]; L = offsets[v + 1] - a
        xv = x[a:a + L]
        kk = min(k, L - 1)
        S = np.empty((L, 2 * kk + 1)); lse = np.empty(L)
        if part < 3:
            n = np.empty(L)
            cpu.squared_norms(xv, zero, True, n)
            if part == 2:
                cpu.pair_distances(xv, n, True, zero, kk, False, S)
        else:
            cpu.build_graph(xv, zero, kk, 0, True, 50.0, 0.0, S, lse)


def band_profile(dim=128):
    x, off = workloads.ucf_full(dim=dim)
    z = np.float32(0)
    order = cpu.largest_first(np.diff(off), 50)
    for part, name in ((1, "norms"), (2, "norms + pair_distances"), (3, "build_graph (all)")):
        print(f"{best(dyn(stage_band), x, off, order, z, 50, part, n=3):9.1f}  UCF-full D={dim} banded: {name}")
    print(f"{best(lambda: propagate(x, off, window=50), n=3):9.1f}  UCF-full D={dim}: propagate window 50")
    r = propagate(x, off, window=50)
    L = np.diff(off)
    print("  CG iterations: median", np.median(r.iterations), "max", r.iterations.max(),
          "longest video iterations", r.iterations[np.argmax(L)])


@njit(parallel=True, fastmath=cpu.FASTMATH)
def exp_pass(a, out):
    """out = exp(a): the cost of one scalar math.exp per stored graph entry."""
    for i in prange(a.shape[0]):
        for c in range(a.shape[1]):
            out[i, c] = math.exp(a[i, c])


def critical_path(dim=128):
    """UCF-full banded: the longest video alone vs all the others (2 threads)."""
    x, off = workloads.ucf_full(dim=dim)
    L = np.diff(off)
    v = int(np.argmax(L))
    xl = x[off[v]:off[v + 1]]
    rest = np.concatenate([x[:off[v]], x[off[v + 1]:]])
    roff = np.concatenate([[0], np.cumsum(np.delete(L, v))])
    print(f"{best(lambda: propagate(xl, np.array([0, L[v]]), window=50), n=3):9.1f}  longest video alone (L={L[v]}), window 50")
    print(f"{best(lambda: propagate(rest, roff, window=50), n=3):9.1f}  the other {len(L) - 1} videos, window 50")
    a = -np.random.default_rng(0).random((int(off[-1]), 101)) * 200
    out = np.empty_like(a)
    print(f"{best(exp_pass, a, out, n=3):9.1f}  {a.size / 1e6:.0f}M scalar exps (one per stored band entry), 2 threads")


def api_split(dim=128):
    """UCF-full banded through the public API: similarity() then solve(), against propagate()."""
    from lanp.kernels import similarity, solve
    x, off = workloads.ucf_full(dim=dim)
    print(f"{best(lambda: propagate(x, off, window=50), n=3):9.1f}  propagate (fused)")
    print(f"{best(lambda: similarity(x, off, window=50), n=3):9.1f}  similarity (graph only)")
    g = similarity(x, off, window=50)
    print(f"{best(lambda: solve(g), n=3):9.1f}  solve (CG only)")
    from lanp.kernels.params import check_packed
    print(f"{best(lambda: check_packed(x, off, None, 'f'), n=3):9.1f}  check_packed (input validation)")


def schedule_test(dim=128, window=50):
    """Is the chunk size 1 of run_dynamic honoured? Same kernel, two visiting orders: lanp's
    largest-first, and largest-first dealt alternately into two halves (balanced even under a
    static split of the iteration space into one contiguous block per thread)."""
    from lanp.kernels.params import resolve_seeds
    x, off = workloads.ucf_full(dim=dim)
    L = np.diff(off)
    V, N = len(L), int(off[-1])
    seeds = resolve_seeds((0, -1), L, None, "f")
    lf = cpu.largest_first(L, window)
    dealt = np.concatenate([lf[0::2], lf[1::2]])

    def call(order):
        outs = (np.empty(N, np.float32), np.empty(V, np.int32), np.empty(V), np.empty(V, np.bool_),
                np.empty(V, np.int8), np.empty(V, np.int64))
        cpu.run_dynamic(cpu.propagate_packed, x, off, order, np.float32(0), window, 0, True, 50.0, 0.0,
                        seeds, 0.99, 1e-6, 1000, *outs)
        return outs

    for name, order in (("largest-first (lanp)", lf), ("largest-first dealt into 2 halves", dealt)):
        print(f"{best(lambda: call(order), n=3):9.1f}  propagate_packed, order {name}")
    print("  numba threading layer:", numba.threading_layer(), " chunksize now:", numba.get_parallel_chunksize())
