"""The conjugate gradient of ``solve_csr`` on a device, written once over a small tools object.

``ops`` supplies the vector operations (:class:`ArrayOps` over cupy, or numpy in the tests; the
numba-cuda backend has its own kernels) and the matvec is a callable, so a backend swaps the
operator and the vector tools, never the algorithm. Same iterates and stopping rule as the CPU
twin :func:`lanp.kernels.cpu.csr.conjugate_gradient` (dot products differ only in summation
order).
"""
from __future__ import annotations

import math


class ArrayOps:
    """The vector operations of :func:`conjugate_gradient` on an array module (cupy or numpy)."""

    def __init__(self, xp):
        self.xp = xp

    def zeros(self, n):
        return self.xp.zeros(n)

    def empty(self, n):
        return self.xp.empty(n)

    def copy(self, a):
        return a.copy()

    def dot(self, a, b) -> float:
        return float(self.xp.dot(a, b))

    def axpy(self, s, x, y):
        """y += s x"""
        y += s * x

    def xpby(self, x, b, y):
        """y = x + b y"""
        y *= b
        y += x

    def multiply(self, a, b, out):
        self.xp.multiply(a, b, out=out)


def conjugate_gradient(ops, apply, dinv, y, alpha: float, tol: float, maxiter: int):
    """CG for (I - alpha S) z = y from z = 0 until ||r|| <= tol ||y|| or ``maxiter``.

    apply(p, u, q) writes q = (I - alpha S) p, given u = dinv * p (S = D^-1/2 W D^-1/2).
    Returns (z, iterations, true relative residual ||y - (I - alpha S) z|| / ||y||, converged);
    y = 0 gives (0, 0, 0.0, True).
    """
    N = y.shape[0]
    z = ops.zeros(N)
    yy = ops.dot(y, y)
    if yy == 0.0:
        return z, 0, 0.0, True
    r = ops.copy(y)
    p = ops.copy(y)
    q = ops.empty(N)
    u = ops.empty(N)
    ops.multiply(dinv, p, u)
    rr = yy
    threshold = tol * tol * yy
    it = 0
    while it < maxiter and rr > threshold:
        apply(p, u, q)
        pq = ops.dot(p, q)
        if not pq > 0.0:                    # exact breakdown (r == 0) or lost definiteness
            break
        step = rr / pq
        ops.axpy(step, p, z)
        ops.axpy(-step, q, r)
        rr_new = ops.dot(r, r)
        ops.xpby(r, rr_new / rr, p)
        ops.multiply(dinv, p, u)
        rr = rr_new
        it += 1
    converged = rr <= threshold
    ops.multiply(dinv, z, u)
    apply(z, u, q)
    e = ops.copy(y)
    ops.axpy(-1.0, q, e)
    return z, it, math.sqrt(ops.dot(e, e) / yy), bool(converged)
