"""The conjugate gradient of ``solve_csr`` on a device, written once over an array module.

``xp`` is cupy (or numpy: tests run this loop with numpy and the host twins of lanp.cu's cross-video section); the
matvec is a callable, so a backend swaps the operator, never the algorithm. Same iterates and
stopping rule as the CPU twin :func:`lanp.kernels.cpu.csr.conjugate_gradient` (dot products
differ only in summation order).
"""
from __future__ import annotations

import math


def conjugate_gradient(xp, apply, dinv, y, alpha: float, tol: float, maxiter: int):
    """CG for (I - alpha S) z = y from z = 0 until ||r|| <= tol ||y|| or ``maxiter``.

    apply(p, u, q) writes q = (I - alpha S) p, given u = dinv * p (S = D^-1/2 W D^-1/2).
    Returns (z, iterations, true relative residual ||y - (I - alpha S) z|| / ||y||, converged);
    y = 0 gives (0, 0, 0.0, True).
    """
    N = y.shape[0]
    z = xp.zeros(N)
    yy = float(xp.dot(y, y))
    if yy == 0.0:
        return z, 0, 0.0, True
    r = y.copy()
    p = y.copy()
    q = xp.empty(N)
    u = dinv * p
    rr = yy
    threshold = tol * tol * yy
    it = 0
    while it < maxiter and rr > threshold:
        apply(p, u, q)
        pq = float(xp.dot(p, q))
        if not pq > 0.0:                    # exact breakdown (r == 0) or lost definiteness
            break
        step = rr / pq
        z += step * p
        r -= step * q
        rr_new = float(xp.dot(r, r))
        p *= rr_new / rr
        p += r
        xp.multiply(dinv, p, out=u)
        rr = rr_new
        it += 1
    converged = rr <= threshold
    xp.multiply(dinv, z, out=u)
    apply(z, u, q)
    e = y - q
    return z, it, math.sqrt(float(xp.dot(e, e)) / yy), bool(converged)
