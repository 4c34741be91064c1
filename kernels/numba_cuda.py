"""numba.cuda twins of the propagation kernels: backend ``numba-cuda``.

One thread block per video for both kernels (the same math as :mod:`lanp.kernels.cpu` and
``lanp.cu``):

* ``similarity``: squared norms, log affinities a_ij by direct differences of the (unit-scaled)
  rows, row log-sum-exp, S_ij = exp(a_ij - (lse_i + lse_j)/2), dense or banded, written in the CPU
  layout (float64).
* ``cg``: the whole CG loop inside the kernel, per-video stopping on the recursive residual,
  dot products by a tree reduction in shared memory, iterations / true residual / converged per
  video.

Only barriers, shared arrays and atomics are used (no warp intrinsics, no libdevice-only calls), so
the kernels also run under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` set before numba is
first imported). Importing this module imports numba.cuda (which needs no GPU);
:mod:`lanp.kernels.backends` imports it only when the backend is first used.
"""
from __future__ import annotations

import math
import os
from functools import lru_cache

import numpy as np
from numba import cuda, float64

from . import cuda_plan
from .backends import to_numpy

BLOCK = 128
NO_BAD_ROW = cuda_plan.NO_BAD_ROW
SQEUCLIDEAN, RMS, COSINE = 0, 1, 2


def simulator() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


@lru_cache(maxsize=None)
def kernels(block: int = BLOCK):
    """Compile-once kernels for a block of ``block`` threads (a power of two)."""
    if block & (block - 1):
        raise ValueError(f"block={block!r} is invalid: it must be a power of two")

    @cuda.jit(device=True)
    def block_sum(red, partial):
        t = cuda.threadIdx.x
        red[t] = partial
        cuda.syncthreads()
        s = block // 2
        while s > 0:
            if t < s:
                red[t] += red[t + s]
            cuda.syncthreads()
            s //= 2
        total = red[0]
        cuda.syncthreads()
        return total

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
                status = 1
            elif unit and acc == 0.0:
                status = 2
            if status != 0:
                cuda.atomic.min(bad, v, 4 * i + status)
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
                    r = float64(x[a + i, d]) * ti - float64(x[a + j, d]) * tj
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

    @cuda.jit(device=True)
    def apply_row(values, base, width, band, L, alpha, p, a, i):
        acc = 0.0
        if band == 0:
            for j in range(L):
                acc += values[base + i * width + j] * p[a + j]
        else:
            lo = max(0, band - i)
            hi = min(width, L - i + band)
            for c in range(lo, hi):
                acc += values[base + i * width + c] * p[a + i + c - band]
        return p[a + i] - alpha * acc

    @cuda.jit(device=True)
    def within_reach(i, seeds, s0, s1, reach):
        """Row i within `reach` rows of one of the video's seeds seeds[s0:s1] (local positions;
        CG's j-th direction is zero beyond j k rows of them)."""
        for s in range(s0, s1):
            if seeds[s] - reach <= i <= seeds[s] + reach:
                return True
        return False

    @cuda.jit(device=True)
    def seed_value(i, seeds, s0, s1):
        """y_i: 1 at the video's seeds seeds[s0:s1]."""
        return 1.0 if within_reach(i, seeds, s0, s1, 0) else 0.0

    @cuda.jit
    def cg(values, offsets, graph_offsets, band, seeds, seed_offsets, alpha, tol, maxiter, z, r, p,
           q, iterations, residual, converged):
        red = cuda.shared.array(block, float64)
        v = cuda.blockIdx.x
        t = cuda.threadIdx.x
        a = offsets[v]
        L = offsets[v + 1] - a
        width = L if band == 0 else 2 * band + 1
        base = graph_offsets[v] if band == 0 else a * width
        s0 = seed_offsets[v]
        s1 = seed_offsets[v + 1]
        part = 0.0
        i = t
        while i < L:
            y = seed_value(i, seeds, s0, s1)
            z[a + i] = 0.0
            r[a + i] = y
            p[a + i] = y
            part += y * y
            i += block
        yy = block_sum(red, part)
        threshold = tol * tol * yy
        rr = yy
        it = 0
        while it < maxiter and rr > threshold:
            reach = L if band == 0 else (it + 1) * band     # rows q = A p may reach
            part = 0.0
            i = t
            while i < L:
                if within_reach(i, seeds, s0, s1, reach):
                    qi = apply_row(values, base, width, band, L, alpha, p, a, i)
                    q[a + i] = qi
                    part += p[a + i] * qi
                i += block
            pq = block_sum(red, part)
            if not pq > 0.0:
                break
            step = rr / pq
            part = 0.0
            i = t
            while i < L:
                if within_reach(i, seeds, s0, s1, reach):
                    z[a + i] += step * p[a + i]
                    r[a + i] -= step * q[a + i]
                    part += r[a + i] * r[a + i]
                i += block
            rr_new = block_sum(red, part)
            beta = rr_new / rr
            i = t
            while i < L:
                if within_reach(i, seeds, s0, s1, reach):
                    p[a + i] = r[a + i] + beta * p[a + i]
                i += block
            cuda.syncthreads()
            rr = rr_new
            it += 1
        cuda.syncthreads()
        part = 0.0
        reach = L if band == 0 else (it + 1) * band
        i = t
        while i < L:
            if within_reach(i, seeds, s0, s1, reach):
                e = seed_value(i, seeds, s0, s1) - apply_row(values, base, width, band, L, alpha, z, a, i)
                part += e * e
            i += block
        res = block_sum(red, part)
        if t == 0:
            iterations[v] = it
            residual[v] = math.sqrt(res / yy)
            converged[v] = 1 if rr <= threshold else 0

    return similarity, cg


# ---------------------------------------------------------------------------------------------
# array plumbing: numpy in -> numpy out, device arrays (cupy, torch, numba) in -> device out

def _device_kind(a) -> str:
    module = type(a).__module__
    if module.startswith("cupy"):
        return "cupy"
    if module.startswith("torch") and getattr(a, "is_cuda", False):
        return "torch"
    if hasattr(a, "__cuda_array_interface__"):
        return "numba"
    return "numpy"


def _to_device(cuda, a, dtype=None):
    kind = _device_kind(a)
    if kind == "numpy" or simulator():
        host = np.ascontiguousarray(to_numpy(a), dtype=dtype)
        return cuda.to_device(host)
    dev = cuda.as_cuda_array(a.detach() if kind == "torch" else a)
    if dtype is not None and dev.dtype != np.dtype(dtype):
        dev = cuda.to_device(np.ascontiguousarray(dev.copy_to_host(), dtype=dtype))
    return dev


def _out(dev, kind):
    if kind == "cupy":
        import cupy
        return cupy.asarray(dev)
    if kind == "torch":
        import torch
        return torch.as_tensor(dev, device="cuda")
    if kind == "numba":
        return dev
    return dev.copy_to_host()


class NumbaCudaBackend:
    """numba.cuda kernels, one thread block per video."""

    name = "numba-cuda"

    def __init__(self, block: int = BLOCK):
        self.block = block

    def available(self):
        try:
            ok = cuda.is_available()
        except Exception as exc:                            # pragma: no cover
            return False, f"numba.cuda found no usable CUDA driver ({exc})"
        if not ok:
            return False, "numba.cuda found no CUDA device (or no CUDA driver) on this machine"
        return True, ""

    # -- similarity ----------------------------------------------------------------------------
    def _similarity_device(self, cuda, x, offsets, graph, dt):
        lengths = np.diff(offsets)
        V = lengths.shape[0]
        plan = cuda_plan.similarity_plan(lengths, graph.band, rows_per_item=int(lengths.max()))
        goff = plan.graph_offsets if plan.graph_offsets is not None else np.zeros(V + 1, np.int64)
        values = cuda.to_device(np.full(int(np.prod(plan.values_shape)), np.nan))
        norms = cuda.to_device(np.full(x.shape[0], np.nan))
        lse = cuda.to_device(np.full(x.shape[0], np.nan))
        bad = cuda.to_device(np.full(V, NO_BAD_ROW, dtype=np.int32))
        sim, _ = kernels(self.block)
        sim[V, self.block](x, cuda.to_device(offsets), cuda.to_device(goff), graph.band,
                           graph.distance_code, graph.normalize or graph.distance == "cosine",
                           graph.inv_two_sigma2, graph.kernel_temporal_scale,
                           dt == np.float32, values, norms, lse, bad)
        return values, plan, bad.copy_to_host()

    def similarity(self, features, offsets, graph, dt, video_ids, where):
        from .api import Graph
        kind = _device_kind(features)
        x = _to_device(cuda, features, dt)
        values, plan, bad = self._similarity_device(cuda, x, offsets, graph, dt)
        cuda_plan.raise_bad_rows(bad, offsets, video_ids, graph, where)
        out = values if graph.window is None else values.reshape(plan.values_shape)
        return Graph(_out(out, kind), offsets, plan.graph_offsets, graph.window)

    # -- CG ------------------------------------------------------------------------------------
    def _solve_device(self, cuda, values, offsets, graph_offsets, band, solver, seeds):
        """seeds: (positions, seed_offsets) from :func:`lanp.kernels.params.pack_seeds`."""
        V, N = offsets.shape[0] - 1, int(offsets[-1])
        goff = graph_offsets if graph_offsets is not None else np.zeros(V + 1, np.int64)
        z = cuda.to_device(np.full(N, np.nan))
        r, p, q = (cuda.to_device(np.full(N, np.nan)) for _ in range(3))
        iterations = cuda.to_device(np.full(V, -1, dtype=np.int32))
        residual = cuda.to_device(np.full(V, np.nan))
        converged = cuda.to_device(np.zeros(V, dtype=np.uint8))
        _, cg = kernels(self.block)
        cg[V, self.block](values, cuda.to_device(offsets), cuda.to_device(goff), band,
                          *(cuda.to_device(np.asarray(s, np.int64)) for s in seeds), solver.alpha,
                          solver.tol, solver.maxiter, z, r, p, q, iterations, residual, converged)
        return z, iterations.copy_to_host(), residual.copy_to_host(), converged.copy_to_host().astype(bool)

    def solve(self, g, solver, seeds):
        from .api import Propagation
        kind = _device_kind(g.values)
        offsets = np.asarray(to_numpy(g.offsets), dtype=np.int64)
        values = _to_device(cuda, g.values, np.float64)
        if len(values.shape) != 1:
            values = values.reshape(values.size)
        band = 0 if g.window is None else g.window
        z, it, res, conv = self._solve_device(cuda, values, offsets, g.graph_offsets, band, solver, seeds)
        return Propagation(_out(z, kind), it, res, conv, self.name)

    def propagate(self, features, offsets, graph, solver, seeds, dt, video_ids, where):
        from .api import Propagation
        kind = _device_kind(features)
        x = _to_device(cuda, features, dt)
        values, plan, bad = self._similarity_device(cuda, x, offsets, graph, dt)
        cuda_plan.raise_bad_rows(bad, offsets, video_ids, graph, where)
        z, it, res, conv = self._solve_device(cuda, values, offsets, plan.graph_offsets, graph.band,
                                              solver, seeds)
        zc = z.copy_to_host().astype(dt) if kind == "numpy" else z
        return Propagation(zc if kind == "numpy" else _out(z, kind), it, res, conv, self.name)
