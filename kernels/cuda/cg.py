"""numba.cuda twin of :mod:`lanp.kernels.cpu.cg`: the whole CG loop of one video per block.

(I - alpha S) z = y with y = 1 at the video's seeds, or y = the video's rows of a given packed
y (N,) float64 (``has_y``), z = 0 first; stops per video when ||r||^2 <= tol^2 ||y||^2
(recursive residual) or at maxiter. Dot products are tree reductions in shared memory (fixed
order: deterministic). With seeds, iteration j works only on the rows within (j + 1) k of a
seed (banded S of half-width k): the others keep their exact zeros; a given y's support is not
tracked (every row from the first iteration, as lanp.cu's lanp_solve_y). y = 0: z = 0 after 0
iterations, residual 0.

values: the graph in the CPU layout (flat float64); z, r, p, q (N,) float64; iterations (V,)
int32, residual (V,) float64 (true ||y - A z|| / ||y||), converged (V,) uint8.
"""
from __future__ import annotations

import math
from functools import lru_cache

from numba import cuda, float64


@lru_cache(maxsize=None)
def cg_kernel(block: int):
    """The compiled kernel for blocks of ``block`` threads (a power of two); launch one block
    per video: kernel[V, block](values, offsets, graph_offsets, band, seeds, seed_offsets, y,
    has_y, alpha, tol, maxiter, z, r, p, q, iterations, residual, converged); y (N,) float64
    is read only when has_y (else any float64 array, e.g. of length 1)."""
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
    def rhs_value(i, seeds, s0, s1, y, has_y, a):
        """y_i: the given y[a + i] (has_y), else 1 at the video's seeds seeds[s0:s1]."""
        if has_y:
            return y[a + i]
        return 1.0 if within_reach(i, seeds, s0, s1, 0) else 0.0

    @cuda.jit(device=True)
    def active(i, seeds, s0, s1, reach, has_y):
        """Row i may be nonzero after `reach` band steps from y (every row for a given y)."""
        return has_y or within_reach(i, seeds, s0, s1, reach)

    @cuda.jit
    def cg(values, offsets, graph_offsets, band, seeds, seed_offsets, y, has_y, alpha, tol, maxiter, z,
           r, p, q, iterations, residual, converged):
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
            yi = rhs_value(i, seeds, s0, s1, y, has_y, a)
            z[a + i] = 0.0
            r[a + i] = yi
            p[a + i] = yi
            part += yi * yi
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
                if active(i, seeds, s0, s1, reach, has_y):
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
                if active(i, seeds, s0, s1, reach, has_y):
                    z[a + i] += step * p[a + i]
                    r[a + i] -= step * q[a + i]
                    part += r[a + i] * r[a + i]
                i += block
            rr_new = block_sum(red, part)
            beta = rr_new / rr
            i = t
            while i < L:
                if active(i, seeds, s0, s1, reach, has_y):
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
            if active(i, seeds, s0, s1, reach, has_y):
                e = rhs_value(i, seeds, s0, s1, y, has_y, a) - apply_row(values, base, width, band, L, alpha,
                                                                         z, a, i)
                part += e * e
            i += block
        res = block_sum(red, part)
        if t == 0:
            iterations[v] = it
            residual[v] = math.sqrt(res / yy) if yy > 0.0 else 0.0
            converged[v] = 1 if rr <= threshold else 0

    return cg
