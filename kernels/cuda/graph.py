"""numba.cuda twin of :mod:`lanp.kernels.cpu.graph`: one video's S per thread block.

Per video (block ``v``), with squared norms n_i = ||x_i||^2 and unit scale t_i = 1/sqrt(n_i)
(L2 normalisation or cosine; 1 otherwise):

    d2_ij = ||t_i x_i - t_j x_j||^2    (direct differences, float64 whatever the input dtype)
    a_ij  = log Wf(d2_ij) - |i - j| / s,  a_ii = -inf, -inf outside the band
    lse_i = logsumexp_j a_ij,  S_ij = exp(a_ij - (lse_i + lse_j) / 2)

x (N, D) float32/float64 device array; ``values`` flat float64 in the CPU layout (dense video v
at graph_offsets[v], banded row-major (N, 2k+1)); norms, lse (N,) float64 scratch; bad (V,) int32
lowered by an atomic min to codes.STATUS_KEY_STRIDE * snippet + status. Only barriers, shared
arrays and atomics are used, so the kernel also runs under the CUDA simulator.

The products t_i x_i are rounded on their own (libdevice's dmul_rn on the device), so FMA
contraction cannot make d2_ij and d2_ji differ or leave a rounding residue for a repeated
snippet: S is symmetric bit for bit and such a distance exactly 0, on the device as on the host
(tests/kernels/test_gpu.py checks it where a GPU exists; the simulator computes in Python floats).
"""
from __future__ import annotations

import math
from functools import lru_cache

from numba import cuda, float64

from ..codes import COSINE, RMS, STATUS_KEY_STRIDE, STATUS_NONFINITE, STATUS_ZERO
from .devices import simulator


@lru_cache(maxsize=None)
def similarity_kernel(block: int):
    """The compiled kernel for blocks of ``block`` threads (a power of two); launch one block
    per video: kernel[V, block](x, offsets, graph_offsets, band, distance, unit, inv_two_sigma2,
    temporal_scale, is_f32, values, norms, lse, bad)."""
    if block & (block - 1):
        raise ValueError(f"block={block!r} is invalid: it must be a power of two")

    if simulator():                         # Python floats: nothing to contract
        @cuda.jit(device=True)
        def mul_rn(u, w):
            return u * w
    else:                                   # never fused into an FMA with the difference
        from numba.cuda import libdevice

        @cuda.jit(device=True)
        def mul_rn(u, w):
            return libdevice.dmul_rn(u, w)

    @cuda.jit(device=True)
    def log_affinity(d2, dt, D, distance, inv_two_sigma2, inv_scale):
        if d2 < 0.0:
            d2 = 0.0
        if distance == COSINE:
            c = 1.0 - 0.5 * d2
            if c <= 0.0:
                return -math.inf
            return math.log(c) - dt * inv_scale
        if distance == RMS:
            return -math.sqrt(d2 / D) * inv_two_sigma2 - dt * inv_scale
        return -d2 * inv_two_sigma2 - dt * inv_scale

    @cuda.jit
    def similarity(x, offsets, graph_offsets, band, distance, unit, inv_two_sigma2,
                   temporal_scale, is_f32, values, norms, lse, bad):
        """values: flat float64 (dense at graph_offsets[v], banded row-major (N, 2k+1))."""
        v = cuda.blockIdx.x
        t = cuda.threadIdx.x
        a = offsets[v]
        L = offsets[v + 1] - a
        D = x.shape[1]
        width = L if band == 0 else 2 * band + 1
        base = graph_offsets[v] if band == 0 else a * width
        inv_scale = 1.0 / (L if temporal_scale <= 0.0 else temporal_scale)
        i = t
        while i < L:
            acc = 0.0
            for d in range(D):
                u = float64(x[a + i, d])
                acc += u * u
            norms[a + i] = acc
            status = 0
            if not (acc - acc == 0.0) or (is_f32 and acc > 3.4028234663852886e38):
                status = STATUS_NONFINITE
            elif unit and acc == 0.0:
                status = STATUS_ZERO
            if status != 0:
                cuda.atomic.min(bad, v, STATUS_KEY_STRIDE * i + status)
            i += block
        cuda.syncthreads()
        e = t
        while e < L * width:
            i = e // width
            c = e - i * width
            j = c if band == 0 else i + c - band
            if j < 0 or j >= L or j == i:
                values[base + e] = -math.inf
            elif unit and (norms[a + i] == 0.0 or norms[a + j] == 0.0):
                values[base + e] = math.nan     # reported through ``bad``; no 1/0 (simulator)
            else:
                ti = 1.0 / math.sqrt(norms[a + i]) if unit else 1.0
                tj = 1.0 / math.sqrt(norms[a + j]) if unit else 1.0
                d2 = 0.0
                for d in range(D):
                    r = mul_rn(float64(x[a + i, d]), ti) - mul_rn(float64(x[a + j, d]), tj)
                    d2 += r * r
                values[base + e] = log_affinity(d2, abs(j - i), D, distance, inv_two_sigma2,
                                                inv_scale)
            e += block
        cuda.syncthreads()
        i = t
        while i < L:
            m = -math.inf
            for c in range(width):
                if values[base + i * width + c] > m:
                    m = values[base + i * width + c]
            if m == -math.inf:
                lse[a + i] = m
            else:
                acc = 0.0
                for c in range(width):
                    acc += math.exp(values[base + i * width + c] - m)
                lse[a + i] = m + math.log(acc)
            i += block
        cuda.syncthreads()
        e = t
        while e < L * width:
            i = e // width
            c = e - i * width
            j = c if band == 0 else i + c - band
            aij = values[base + e]
            if aij == -math.inf or lse[a + i] == -math.inf:
                values[base + e] = 0.0
            else:
                values[base + e] = math.exp(aij - 0.5 * (lse[a + i] + lse[a + j]))
            e += block

    return similarity
