"""Backend ``numba-cuda`` with the cross-video kernels: :class:`NumbaCudaBackend` is
:class:`lanp.kernels.cuda.numba_backend.NumbaCudaBackend` plus ``anchor_neighbours`` and
``solve_csr`` in numba.cuda (the registered 'numba-cuda' backend; twins of cpu/neighbours.py,
cpu/csr.py and the cross-video section of lanp.cu, a thread per row).

numba.cuda has no BLAS: the dot products of ``anchor_neighbours`` are a thread per (row, anchor)
pair accumulating in float64 (exact enough to pick the same candidates as the compute dtype's
matmul up to near-ties; the kept similarities are rescored in float64 like every backend). Meant
for correctness and small inputs; the 'cupy' backend is the fast one. The CG of ``solve_csr`` is
:func:`lanp.kernels.cuda.csr_cg.conjugate_gradient` over :class:`DeviceOps` (dot products as
per-block partial sums, added on the host in order). Runs under the CUDA simulator.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numba import cuda

from ..arrays import to_numpy
from ..codes import (CSR_ASYMMETRIC, CSR_BAD_WEIGHT, CSR_COLUMN_RANGE, CSR_DIAGONAL, CSR_KEY_STRIDE,
                     CSR_UNSORTED, NO_BAD_ENTRY, STATUS_NONFINITE, STATUS_OK, STATUS_ZERO)
from ..contract import NEIGHBOUR_POISON, raise_for_anchor, raise_for_csr_key, raise_for_row
from ..results import CsrSolution, Neighbours
from . import numba_backend
from .csr_cg import conjugate_gradient

THREADS = 64


def _blocks(n: int, threads: int = THREADS) -> int:
    return max(1, -(-int(n) // threads))


# -- anchor_neighbours ---------------------------------------------------------------------------

@lru_cache(maxsize=None)
def kernels():
    """The numba.cuda kernels (compiled on first use)."""

    @cuda.jit
    def inverse_norms(x, dtype_max, inv, status):
        r = cuda.grid(1)
        if r >= x.shape[0]:
            return
        acc = 0.0
        for d in range(x.shape[1]):
            v = np.float64(x[r, d])
            acc += v * v
        if not (acc - acc == 0.0) or acc > dtype_max:
            status[r] = STATUS_NONFINITE
            inv[r] = 0.0
        elif acc == 0.0:
            status[r] = STATUS_ZERO
            inv[r] = 0.0
        else:
            status[r] = STATUS_OK
            inv[r] = 1.0 / math.sqrt(acc)

    @cuda.jit
    def dots(x, unit, sims):
        r, a = cuda.grid(2)
        if r >= x.shape[0] or a >= unit.shape[0]:
            return
        acc = 0.0
        for d in range(x.shape[1]):
            acc += np.float64(x[r, d]) * unit[a, d]
        sims[r, a] = acc

    @cuda.jit
    def topk(sims, x, inv, row_video, anchor_video, unit, index, similarity):
        r = cuda.grid(1)
        if r >= sims.shape[0]:
            return
        k = index.shape[1]
        scale = inv[r]
        video = row_video[r]
        for j in range(k):
            index[r, j] = -1
            similarity[r, j] = -math.inf
        worst = -math.inf
        for a in range(sims.shape[1]):
            s = sims[r, a] * scale
            if not s > worst or anchor_video[a] == video:
                continue
            j = k - 1
            while j > 0 and s > similarity[r, j - 1]:
                similarity[r, j] = similarity[r, j - 1]
                index[r, j] = index[r, j - 1]
                j -= 1
            similarity[r, j] = s
            index[r, j] = a
            worst = similarity[r, k - 1]
        for j in range(k):                          # rescore in float64, then re-sort
            if index[r, j] >= 0:
                acc = 0.0
                for d in range(x.shape[1]):
                    acc += np.float64(x[r, d]) * unit[index[r, j], d]
                similarity[r, j] = acc * scale
        for j in range(1, k):
            a = index[r, j]
            s = similarity[r, j]
            if a < 0:
                break
            m = j
            while m > 0 and (s > similarity[r, m - 1] or (s == similarity[r, m - 1] and a < index[r, m - 1])):
                similarity[r, m] = similarity[r, m - 1]
                index[r, m] = index[r, m - 1]
                m -= 1
            similarity[r, m] = s
            index[r, m] = a

    @cuda.jit
    def csr_check(indptr, indices, data, symmetry, keys):
        i = cuda.grid(1)
        N = indptr.shape[0] - 1
        if i >= N:
            return
        key = NO_BAD_ENTRY
        prev = -1
        for e in range(indptr[i], indptr[i + 1]):
            j = indices[e]
            w = data[e]
            if j < 0 or j >= N:
                key = e * CSR_KEY_STRIDE + CSR_COLUMN_RANGE
                break
            if symmetry:
                if j != i:
                    lo = indptr[j]
                    hi = indptr[j + 1]
                    mirror = 0.0
                    while lo < hi:
                        mid = (lo + hi) // 2
                        c = indices[mid]
                        if c < i:
                            lo = mid + 1
                        elif c > i:
                            hi = mid
                        else:
                            mirror = data[mid]
                            break
                    if w != mirror:
                        key = e * CSR_KEY_STRIDE + CSR_ASYMMETRIC
                        break
                continue
            if j <= prev:
                key = e * CSR_KEY_STRIDE + CSR_UNSORTED
                break
            if not (w >= 0.0 and w - w == 0.0):
                key = e * CSR_KEY_STRIDE + CSR_BAD_WEIGHT
                break
            if j == i and w != 0.0:
                key = e * CSR_KEY_STRIDE + CSR_DIAGONAL
                break
            prev = j
        keys[i] = key

    @cuda.jit
    def csr_degrees(indptr, data, dinv):
        i = cuda.grid(1)
        if i >= dinv.shape[0]:
            return
        d = 0.0
        for e in range(indptr[i], indptr[i + 1]):
            d += data[e]
        dinv[i] = 1.0 / math.sqrt(d) if d > 0.0 else 0.0

    @cuda.jit
    def csr_apply(indptr, indices, data, dinv, alpha, p, u, q):
        i = cuda.grid(1)
        if i >= q.shape[0]:
            return
        s = 0.0
        for e in range(indptr[i], indptr[i + 1]):
            s += data[e] * u[indices[e]]
        q[i] = p[i] - alpha * dinv[i] * s

    @cuda.jit
    def partial_dots(a, b, partial):
        """partial[blk] = sum of a_i b_i over block blk's rows (a fixed tree per block)."""
        shared = cuda.shared.array(THREADS, dtype=np.float64)
        t = cuda.threadIdx.x
        i = cuda.grid(1)
        shared[t] = a[i] * b[i] if i < a.shape[0] else 0.0
        cuda.syncthreads()
        s = THREADS // 2
        while s > 0:
            if t < s:
                shared[t] += shared[t + s]
            cuda.syncthreads()
            s //= 2
        if t == 0:
            partial[cuda.blockIdx.x] = shared[0]

    @cuda.jit
    def axpy(s, x, y):
        i = cuda.grid(1)
        if i < y.shape[0]:
            y[i] += s * x[i]

    @cuda.jit
    def xpby(x, b, y):
        i = cuda.grid(1)
        if i < y.shape[0]:
            y[i] = x[i] + b * y[i]

    @cuda.jit
    def multiply(a, b, out):
        i = cuda.grid(1)
        if i < out.shape[0]:
            out[i] = a[i] * b[i]

    @cuda.jit
    def fill(a, value):
        i = cuda.grid(1)
        if i < a.shape[0]:
            a[i] = value

    return locals()


class DeviceOps:
    """The vector operations of :func:`conjugate_gradient` on numba device arrays."""

    def __init__(self):
        self.k = kernels()

    def zeros(self, n):
        a = cuda.device_array(n, dtype=np.float64)
        self.k["fill"][_blocks(n), THREADS](a, 0.0)
        return a

    def empty(self, n):
        return cuda.device_array(n, dtype=np.float64)

    def copy(self, a):
        out = cuda.device_array(a.shape[0], dtype=np.float64)
        out.copy_to_device(a)
        return out

    def dot(self, a, b) -> float:
        n = a.shape[0]
        partial = cuda.device_array(_blocks(n), dtype=np.float64)
        self.k["partial_dots"][_blocks(n), THREADS](a, b, partial)
        return float(sum(partial.copy_to_host().tolist()))

    def axpy(self, s, x, y):
        self.k["axpy"][_blocks(y.shape[0]), THREADS](s, x, y)

    def xpby(self, x, b, y):
        self.k["xpby"][_blocks(y.shape[0]), THREADS](x, b, y)

    def multiply(self, a, b, out):
        self.k["multiply"][_blocks(out.shape[0]), THREADS](a, b, out)


class NumbaCudaBackend(numba_backend.NumbaCudaBackend):
    """The 'numba-cuda' backend: propagation (the parent class) and the cross-video kernels."""

    def anchor_neighbours(self, features, offsets, anchors, anchor_video, k, first_video, dt, video_ids, where):
        kind = numba_backend._device_kind(features)
        dtype_max = float(np.finfo(dt).max)
        kern = kernels()
        with numba_backend._on_device_of(features):
            x = numba_backend._to_device(cuda, features, dt)
            a = numba_backend._to_device(cuda, anchors, dt)
            N, A, D = x.shape[0], a.shape[0], x.shape[1]
            inv_a = cuda.device_array(A, dtype=np.float64)
            status_a = cuda.device_array(A, dtype=np.int8)
            if A:
                kern["inverse_norms"][_blocks(A), THREADS](a, dtype_max, inv_a, status_a)
                host_status = status_a.copy_to_host()
                bad = np.flatnonzero(host_status != STATUS_OK)
                if bad.size:
                    raise_for_anchor(int(bad[0]), int(host_status[bad[0]]), anchor_video, where)
            host_a = to_numpy(a.copy_to_host()) if A else np.zeros((0, D), dt)
            unit = cuda.to_device(np.ascontiguousarray(host_a * inv_a.copy_to_host()[:, None], dtype=np.float64)
                                  if A else np.zeros((1, D)))
            inv = cuda.device_array(N, dtype=np.float64)
            status = cuda.device_array(N, dtype=np.int8)
            kern["inverse_norms"][_blocks(N), THREADS](x, dtype_max, inv, status)
            host_status = status.copy_to_host()
            bad = np.flatnonzero(host_status != STATUS_OK)
            if bad.size:
                raise_for_row(int(bad[0]), int(host_status[bad[0]]), offsets, video_ids, where)
            sims = cuda.device_array((N, max(A, 1)), dtype=np.float64)
            if A:
                kern["dots"][(_blocks(N, 8), _blocks(A, 8)), (8, 8)](x, unit, sims)
            row_video = cuda.to_device(np.repeat(np.arange(offsets.shape[0] - 1, dtype=np.int64) + first_video,
                                                 np.diff(offsets)))
            index = cuda.to_device(np.full((N, k), NEIGHBOUR_POISON, dtype=np.int64))
            similarity = cuda.to_device(np.full((N, k), np.nan))
            kern["topk"][_blocks(N), THREADS](sims[:, :A], x, inv, row_video,
                                              cuda.to_device(np.ascontiguousarray(anchor_video, np.int64)
                                                             if A else np.zeros(1, np.int64)),
                                              unit, index, similarity)
            device = numba_backend.device_index(features)
            return Neighbours(numba_backend._out(index, kind, device), numba_backend._out(similarity, kind, device),
                              self.name)

    def solve_csr(self, indptr, indices, data, y, solver, where):
        kind = numba_backend._device_kind(y)
        kern = kernels()
        with numba_backend._on_device_of(data):
            ip = numba_backend._to_device(cuda, indptr, np.int64)
            ix = numba_backend._to_device(cuda, indices, np.int64)
            w = numba_backend._to_device(cuda, data, np.float64)
            yd = numba_backend._to_device(cuda, y, np.float64)
            N = yd.shape[0]
            keys = cuda.device_array(max(N, 1), dtype=np.int64)
            for symmetry in (False, True):          # structure first: the symmetry test needs sorted rows
                keys.copy_to_device(np.full(max(N, 1), NO_BAD_ENTRY, dtype=np.int64))
                kern["csr_check"][_blocks(N), THREADS](ip, ix, w, symmetry, keys)
                key = int(keys.copy_to_host().min())
                if key != NO_BAD_ENTRY:
                    raise_for_csr_key(key, to_numpy(ip), to_numpy(ix), to_numpy(w), where)
            dinv = cuda.device_array(N, dtype=np.float64)
            kern["csr_degrees"][_blocks(N), THREADS](ip, w, dinv)

            def apply(p, u, q):
                kern["csr_apply"][_blocks(N), THREADS](ip, ix, w, dinv, solver.alpha, p, u, q)

            z, it, residual, converged = conjugate_gradient(DeviceOps(), apply, dinv, yd, solver.alpha, solver.tol,
                                                            solver.maxiter)
            return CsrSolution(numba_backend._out(z, kind, numba_backend.device_index(y)), int(it), float(residual),
                               bool(converged), self.name)
